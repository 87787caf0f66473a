"""Image arrays larger than memory: ``.npy`` files written and read a chunk at a time.

The on-disk format stays NumPy's ``.npy`` (byte-identical to ``np.save``), so any tool can still
``np.load(path, mmap_mode="r")`` the files. Inside the pipeline they are written with plain
sequential writes and read with positioned reads (``os.preadv``) rather than through a memory
map: pages of a mapped file count in the process's resident set for as long as they stay
mapped, so an epoch over a memory-mapped 40 GB file would show 40 GB of RSS (reclaimable, but
indistinguishable from a leak in every memory report). Positioned reads keep only the chunk
being worked on in the process; the operating system's page cache still caches the file.

- :class:`NpyWriter` writes to a temporary file beside the target, hashing (sha256) as it
  writes, and renames it into place only when every row was written; an error (a full disk
  included) removes the temporary file and leaves the old output as it was.
- :class:`NpyReader` reads row ranges (``reader[a:b]``) and gathers arbitrary rows
  (:meth:`NpyReader.take`: sorted, de-duplicated, runs coalesced into one read each), returning
  exactly the bytes ``np.load(path)[idx]`` would.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from numpy.lib import format as npformat

from dcgan.core.errors import UserError
from dcgan.core.files import DISK_FULL, disk_full, replace_durably, usual_mode

CHUNK_BYTES = 16 << 20
"""Bytes of image data per chunk in the streaming passes (prepare, augment, statistics)."""

def rows_per_chunk(row_bytes: int, budget: int = CHUNK_BYTES) -> int:
    """How many rows of ``row_bytes`` make a chunk of about ``budget`` bytes (at least 1)."""
    return max(1, budget // max(1, row_bytes))


def npy_header(shape: tuple[int, ...], dtype: np.dtype | type = np.uint8) -> bytes:
    """The header ``np.save`` writes for a C-ordered array of ``shape`` and ``dtype``."""
    import io

    buf = io.BytesIO()
    d = {"descr": npformat.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
         "shape": tuple(int(s) for s in shape)}
    npformat.write_array_header_1_0(buf, d)
    return buf.getvalue()


class NpyWriter:
    """Write a ``.npy`` of ``shape`` row chunk by row chunk; atomic, hashed, cleaned up on error.

    Use as a context manager: leaving the block normally renames the finished file into
    place; an exception removes the temporary file. :attr:`digest` is the sha256 of the whole
    file (as :func:`dcgan.core.files.file_digest` would compute it) once committed.
    """

    def __init__(self, path: str | Path, shape: tuple[int, ...], dtype: np.dtype | type = np.uint8):
        self.path = Path(path)
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        self.row_shape = self.shape[1:]
        self.rows = 0
        self.digest: str | None = None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self.tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        usual_mode(fd)
        self._fh = os.fdopen(fd, "wb")
        self._hash = hashlib.sha256()
        self._put(npy_header(self.shape, self.dtype))

    def _put(self, data) -> None:
        try:
            self._fh.write(data)
        except OSError as exc:
            self.abort()
            if exc.errno in DISK_FULL:
                raise disk_full(exc, self.path) from None
            raise
        self._hash.update(data)

    def write(self, chunk: np.ndarray) -> None:
        """Append rows (k, *row_shape) of the writer's dtype."""
        chunk = np.ascontiguousarray(chunk)
        if chunk.dtype != self.dtype or chunk.shape[1:] != self.row_shape:
            raise ValueError(f"{self.path}: rows of {chunk.dtype} {chunk.shape[1:]} do not fit "
                             f"{self.dtype} {self.row_shape}")
        if self.rows + len(chunk) > self.shape[0]:
            raise ValueError(f"{self.path}: more than the {self.shape[0]} rows declared")
        self._put(memoryview(chunk).cast("B"))
        self.rows += len(chunk)

    def commit(self) -> str:
        """fsync, rename over the target, return the sha256 (every declared row must be written)."""
        if self.rows != self.shape[0]:
            self.abort()
            raise ValueError(f"{self.path}: {self.rows} rows written of the {self.shape[0]} declared")
        try:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
        except OSError as exc:
            self.abort()
            if exc.errno in DISK_FULL:
                raise disk_full(exc, self.path) from None
            raise
        replace_durably(self.tmp, self.path)
        self.digest = self._hash.hexdigest()
        return self.digest

    def abort(self) -> None:
        """Close and remove the temporary file (the target is untouched)."""
        try:
            self._fh.close()
        except OSError:
            pass
        Path(self.tmp).unlink(missing_ok=True)

    def __enter__(self) -> NpyWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


class NpyReader:
    """Rows of a C-ordered ``.npy`` file, read on demand with positioned reads.

    ``len(r)``, ``r.shape``, ``r.dtype``, ``r[a:b]`` (contiguous rows), ``r[i]``, ``r.take(idx)``
    (any rows, in the order asked), :meth:`chunks` (sequential passes). Thread-safe: reads do
    not share a file position.
    """

    def __init__(self, path: str | Path, *, shape: tuple[int, ...] | None = None,
                 dtype: np.dtype | type | None = None, offset: int | None = None):
        self.path = Path(path)
        if not self.path.is_file():
            raise UserError(f"array file {self.path} does not exist")
        self._fd = os.open(self.path, os.O_RDONLY)
        try:
            if shape is None:  # a .npy: the header says what follows
                with open(self.path, "rb") as fh:
                    version = npformat.read_magic(fh)
                    read_header = (npformat.read_array_header_1_0 if version == (1, 0)
                                   else npformat.read_array_header_2_0)
                    shape, fortran, dtype = read_header(fh)
                    offset = fh.tell()
                if fortran or dtype.hasobject:
                    raise ValueError("Fortran-ordered or object arrays are not image arrays")
        except (ValueError, OSError, EOFError) as exc:
            os.close(self._fd)
            raise UserError(f"array file {self.path} is not a readable .npy file: {exc}") from None
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        self.offset = int(offset or 0)
        self.row_shape = self.shape[1:]
        self.row_bytes = int(np.prod(self.row_shape, dtype=np.int64)) * self.dtype.itemsize
        self.nbytes = self.row_bytes * self.shape[0]
        size = os.fstat(self._fd).st_size
        if size < self.offset + self.nbytes:
            os.close(self._fd)
            raise UserError(f"array file {self.path} is truncated: {size} bytes, the header "
                            f"promises {self.offset + self.nbytes}")

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:  # noqa: D105
        try:
            self.close()
        except (OSError, AttributeError):
            pass

    def __enter__(self) -> NpyReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _read_into(self, buf: np.ndarray, start: int) -> None:
        view = memoryview(buf).cast("B")
        pos, want = self.offset + start * self.row_bytes, len(view)
        got = 0
        while got < want:
            n = os.preadv(self._fd, [view[got:]], pos + got)
            if n <= 0:
                raise UserError(f"array file {self.path} ended early (rows from {start})")
            got += n

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` (clipped to the array) as a new array."""
        start, stop = max(0, start), min(len(self), stop)
        out = np.empty((max(0, stop - start), *self.row_shape), self.dtype)
        if len(out):
            self._read_into(out, start)
        return out

    def __getitem__(self, key):
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if step != 1:
                return self.take(np.arange(start, stop, step))
            return self.read(start, stop)
        if isinstance(key, (int, np.integer)):
            i = int(key) + (len(self) if key < 0 else 0)
            if not 0 <= i < len(self):
                raise IndexError(f"row {key} of an array of {len(self)}")
            return self.read(i, i + 1)[0]
        return self.take(np.asarray(key))

    def __array__(self, dtype=None, copy=None):  # np.asarray(reader): the whole array (small files)
        out = self.read(0, len(self))
        return out if dtype is None else out.astype(dtype)

    def take(self, idx) -> np.ndarray:
        """Rows ``idx`` (any order, repeats allowed) exactly as ``array[idx]``: the distinct rows
        are read in ascending order, one read per run of consecutive rows."""
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        if len(idx) and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"rows {idx.min()}..{idx.max()} of an array of {len(self)}")
        if len(idx) == 0:
            return np.empty((0, *self.row_shape), self.dtype)
        uniq, inverse = np.unique(idx, return_inverse=True)
        buf = np.empty((len(uniq), *self.row_shape), self.dtype)
        breaks = np.flatnonzero(np.diff(uniq) != 1) + 1
        lo = 0
        for hi in [*breaks.tolist(), len(uniq)]:
            self._read_into(buf[lo:hi], int(uniq[lo]))
            lo = hi
        if len(uniq) == len(idx) and (len(idx) < 2 or bool((np.diff(idx) > 0).all())):
            return buf  # already ascending and distinct
        return buf[inverse.reshape(-1)]

    def rows(self, idx) -> RowView:
        """A view of rows ``idx`` (read when sliced): ``view[a:b]`` is ``take(idx[a:b])``."""
        return RowView(self, np.asarray(idx, dtype=np.int64))

    def chunks(self, rows: int | None = None, start: int = 0, stop: int | None = None
               ) -> Iterator[tuple[int, np.ndarray]]:
        """``(first_row, rows)`` pieces of ``start:stop`` in order, ``rows`` at a time (default:
        about :data:`CHUNK_BYTES`)."""
        rows = rows or rows_per_chunk(self.row_bytes)
        stop = len(self) if stop is None else min(stop, len(self))
        for a in range(start, stop, rows):
            yield a, self.read(a, min(a + rows, stop))


class RowView:
    """Some rows of an :class:`NpyReader`, in a given order, read only when sliced."""

    def __init__(self, reader: NpyReader, idx: np.ndarray):
        self.reader, self.idx = reader, idx
        self.shape = (len(idx), *reader.row_shape)
        self.dtype = reader.dtype

    def __len__(self) -> int:
        return len(self.idx)

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            return self.reader[int(self.idx[key])]
        return self.reader.take(self.idx[key])
