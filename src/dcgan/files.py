"""Files: atomic output (write to a temporary file beside the target, then rename), hashes,
and module weights as safetensors.

A kill at any moment leaves either the old good file or the new complete one, never a
truncated file where a good one was.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dcgan.errors import UserError

# torch and safetensors load only where weights are saved or loaded, so that the stages that
# never touch weights (validate, report) do not pay for importing them
if TYPE_CHECKING:
    import torch


def atomic_write(path: str | Path, write: Callable[[Any], None], mode: str = "wb") -> Path:
    """Call ``write(fileobj)`` on a temp file in ``path``'s folder, fsync, rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda fh: fh.write(data))


def write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda fh: fh.write(text), mode="w")


def write_json(path: str | Path, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_npy(path: str | Path, array: np.ndarray) -> Path:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return write_bytes(path, buf.getvalue())


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def file_digest(path: str | Path, chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes, as hex."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def save_module(module: torch.nn.Module, path: str | Path) -> Path:
    """Save a module's state dict as safetensors, atomically (contiguous CPU copies)."""
    from safetensors.torch import save

    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    return write_bytes(path, save(state))


def load_state(module: torch.nn.Module, path: str | Path,
               arch: str = "the architecture they were loaded into") -> torch.nn.Module:
    """Load safetensors weights into ``module``; a missing or corrupt file, or weights of
    another architecture, is a UserError naming the file."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise UserError(f"model weights {path} do not exist (run the train stage first)")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise UserError(f"model weights {path} are corrupt or not safetensors: {exc}") from None
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise UserError(
            f"model weights {path} do not fit {arch} ({first.strip()})") from None
    return module
