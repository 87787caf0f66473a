"""Fault injection for the kill-and-resume tests (a test seam; inert unless the variable is set).

``DCGAN_FAULTS="kill_after_step=17"`` SIGKILLs the training process right after step 17;
``"kill_in_checkpoint=10"`` SIGKILLs it halfway through writing the step-10 checkpoint (the
temporary file holds half the bytes, the rename never happens). Comma-separate several.
SIGKILL, not an exception: nothing in the process gets a chance to clean up, as with a real
power cut or OOM kill.
"""

from __future__ import annotations

import os
import signal

ENV = "DCGAN_FAULTS"


def _faults() -> dict[str, int]:
    out = {}
    for item in filter(None, os.environ.get(ENV, "").split(",")):
        key, _, value = item.partition("=")
        out[key.strip()] = int(value)
    return out


def armed(point: str, step: int) -> bool:
    """Whether ``point`` is set to fire at ``step``."""
    return bool(os.environ.get(ENV)) and _faults().get(point) == step


def kill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)
