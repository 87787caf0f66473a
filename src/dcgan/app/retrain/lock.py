"""One retrain at a time per workspace: an OS file lock, queued up to a timeout."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from dcgan.app.retrain.constants import LOCK_FILE
from dcgan.app.retrain.shell import Log
from dcgan.core.errors import UserError


class WorkspaceBusy(UserError):
    """Another retrain run holds the workspace."""


@contextlib.contextmanager
def workspace_lock(cwd: Path, timeout: float, log: Log, poll: float = 1.0) -> Iterator[Path]:
    """Hold an exclusive lock on the workspace for a whole retrain.

    Waits (queues) up to ``timeout`` seconds for another run to finish, then fails with
    :class:`WorkspaceBusy`, before any stage has started. The OS drops the lock when its holder
    dies, so a killed run never leaves the workspace locked.
    """
    path = cwd / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = open(path, "a+")  # noqa: SIM115 (held for the duration of the context)
    deadline = time.monotonic() + timeout
    announced = False
    try:
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                fh.seek(0)
                holder = fh.read().strip() or "unknown"
                if time.monotonic() >= deadline:
                    raise WorkspaceBusy(
                        f"another retrain run holds {path} ({holder}); waited {timeout:g} s. "
                        "Nothing was started; retry later or raise lock_timeout to queue.") from None
                if not announced:
                    log(f"waiting for another retrain run to finish ({holder})")
                    announced = True
                time.sleep(poll)
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} since {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC\n")
        fh.flush()
        yield path
    finally:
        fh.close()  # releases the lock
