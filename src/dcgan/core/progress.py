"""Progress bars that obey ``TQDM_DISABLE``.

tqdm reads ``TQDM_*`` environment variables only for arguments a call does not pass, so a bar
made with an explicit ``disable=False`` (the bars here hide themselves on short work) would
ignore ``TQDM_DISABLE=1``. :func:`progress` passes ``disable`` on only after or-ing it with the
variable, so ``TQDM_DISABLE=1`` silences every bar of the project (benchmarks, CI logs).
"""

from __future__ import annotations

import os
from typing import Any

from tqdm import tqdm


def disabled_by_env() -> bool:
    """``TQDM_DISABLE`` set to anything but empty/0/false/no."""
    return os.environ.get("TQDM_DISABLE", "").strip().lower() not in ("", "0", "false", "no")


def progress(iterable: Any = None, *, disable: bool = False, **kwargs: Any) -> tqdm:
    """``tqdm(iterable, **kwargs)``, off when ``disable`` or ``TQDM_DISABLE`` says so."""
    return tqdm(iterable, disable=bool(disable) or disabled_by_env(), **kwargs)
