"""Files: atomic output (write to a temporary file beside the target, then rename), hashes,
and module weights as safetensors.

A kill at any moment leaves either the old good file or the new complete one, never a
truncated file where a good one was.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dcgan.core.errors import UserError

# torch and safetensors load only where weights are saved or loaded, so that the stages that
# never touch weights (validate, report) do not pay for importing them
if TYPE_CHECKING:
    import torch


DISK_FULL = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
"""errnos of a write that ran out of room (a full disk or quota, a file-size limit)."""


def disk_full(exc: OSError, path: str | Path) -> UserError:
    """The one-line error for a write that ran out of space (the caller has cleaned up)."""
    return UserError(f"no space left while writing {path} ({os.strerror(exc.errno)}): the partial "
                     f"file was removed and the previous {Path(path).name} (if any) is kept; free "
                     "disk space (or lower prepare.max_images / augment.copies) and rerun")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def usual_mode(fd: int, folder: bool = False) -> None:
    """Give a file made by ``mkstemp``/``mkdtemp`` (mode 0600/0700) the mode a plain ``open``
    would (0666/0777 less the umask), so outputs are readable as usual."""
    os.fchmod(fd, (0o777 if folder else 0o666) & ~_umask())


def fsync_dir(folder: str | Path) -> None:
    """fsync a folder, so that a rename into it survives a crash (the file's own fsync does not
    cover the folder entry that names it)."""
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_durably(src: str | Path, dst: str | Path) -> None:
    """``os.replace(src, dst)``, then fsync ``dst``'s folder so that the rename is on disk."""
    os.replace(src, dst)
    fsync_dir(Path(dst).parent)


def atomic_write(path: str | Path, write: Callable[[Any], None], mode: str = "wb") -> Path:
    """Call ``write(fileobj)`` on a temp file in ``path``'s folder, fsync, rename over ``path``
    (the file gets the umask's usual mode, not mkstemp's 0600; the folder is fsynced after)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        usual_mode(fd)
        with os.fdopen(fd, mode) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        replace_durably(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno in DISK_FULL:
            raise disk_full(exc, path) from None
        raise
    return path


@contextmanager
def staged_dir(out: str | Path) -> Iterator[Path]:
    """Build a folder's new content in a temporary folder beside it, then swap it in.

    Leaving the block normally replaces ``out`` with the new folder (two renames); an
    exception (a full disk, a bad file half-way, Ctrl-C) removes the temporary folder and
    leaves ``out`` as it was: never a folder with some files old and some new.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    tmp.chmod(0o777 & ~_umask())  # mkdtemp makes it 0700; the output folder gets the usual mode
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
    replace_durably(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


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


DIGESTS = "digests.json"
"""Per output folder: the sha256, size and mtime of each large file, as its stage wrote it."""


def record_digests(folder: str | Path, digests: dict[str, str]) -> Path:
    """Record ``{file name: sha256}`` for files in ``folder`` (with their size and mtime now),
    so later stages take the digest from here instead of re-reading the file."""
    folder = Path(folder)
    out = {}
    for name, sha in sorted(digests.items()):
        st = (folder / name).stat()
        out[name] = {"sha256": sha, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    return write_json(folder / DIGESTS, out)


def recorded_digest(path: str | Path, log: Callable[[str], None] | None = None) -> str:
    """sha256 of ``path``: the one its stage recorded in ``digests.json`` beside it when the file
    still has the recorded size and mtime (DVC's hardlink and copy checkouts keep both), else
    computed by reading the file (and said through ``log``: at LSUN scale that takes minutes)."""
    path = Path(path)
    rec_path = path.parent / DIGESTS
    try:
        rec = read_json(rec_path)[path.name]
        st = path.stat()
        if st.st_size == rec["size"] and st.st_mtime_ns == rec["mtime_ns"]:
            return str(rec["sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    if log is not None and rec_path.is_file():
        log(f"{path} differs from the size/mtime recorded in {rec_path}: hashing it again")
    return file_digest(path)
