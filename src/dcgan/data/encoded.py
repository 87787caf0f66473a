"""What a dataset loader returns (:class:`RawDataset`): images at their native size, as one uint8
array (small sets) or still encoded (:class:`FileList`, :class:`LmdbRecords`), decoded later by
:func:`decode_image` in worker processes (:mod:`dcgan.data.shaping`)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dcgan.core.errors import SettingError, UserError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


class Encoded:
    """Images still encoded (files, or LMDB records), in a fixed order: ``items()`` yields
    ``(name, payload)`` pairs, payload the file's bytes or None (read the file ``name``)."""

    def __len__(self) -> int:
        raise NotImplementedError

    def items(self) -> Iterator[tuple[str, bytes | None]]:
        raise NotImplementedError


@dataclass
class FileList(Encoded):
    files: list[Path]

    def __len__(self) -> int:
        return len(self.files)

    def items(self) -> Iterator[tuple[str, bytes | None]]:
        return ((str(f), None) for f in self.files)


@dataclass
class LmdbRecords(Encoded):
    """The first ``count`` records of an LMDB database, in key order (LSUN: key = image id,
    value = the encoded image).

    LMDB memory-maps the database, and every page read stays resident in this process until the
    map is closed, so the database is reopened every :attr:`reopen_every` records (continuing
    after the last key): the resident part stays that many records' worth, not the whole file."""

    path: Path
    count: int
    reopen_every: int = 50_000

    def __len__(self) -> int:
        return self.count

    def items(self) -> Iterator[tuple[str, bytes | None]]:
        done, last = 0, None
        while done < self.count:
            env = open_lmdb(self.path)
            try:
                with env.begin(write=False, buffers=False) as txn:
                    cur = txn.cursor()
                    ok = cur.first() if last is None else cur.set_range(last)
                    if ok and last is not None and cur.key() == last:
                        ok = cur.next()
                    here = 0
                    while ok and done < self.count and here < self.reopen_every:
                        last = cur.key()
                        yield f"{self.path.name}/{last.decode('ascii', 'replace')}", cur.value()
                        done, here = done + 1, here + 1
                        ok = cur.next()
            finally:
                env.close()
            if not ok:
                break


@dataclass
class RawDataset:
    """Images at their native size plus labels (-1 = none): a uint8 (N, C, H, W) array, or
    :class:`Encoded` images (then ``labels`` has one entry per item, and ``skipped_files``
    is filled in as they are decoded)."""

    images: np.ndarray | Encoded
    labels: np.ndarray
    source: str
    class_names: list[str] = field(default_factory=list)
    skipped_files: list[str] = field(default_factory=list)


def decode_image(name: str, payload: bytes | None = None) -> np.ndarray:
    """An encoded image (the file ``name``, or ``payload``'s bytes) -> uint8 RGB (3, H, W)."""
    from PIL import Image

    with Image.open(name if payload is None else io.BytesIO(payload)) as im:
        im.load()
        im = im.convert("RGB")
        return np.asarray(im, dtype=np.uint8).transpose(2, 0, 1).copy()  # H,W,C -> C,H,W


UNREADABLE = (OSError, ValueError, SyntaxError)  # PIL's UnidentifiedImageError is an OSError


def open_lmdb(path: Path):
    import lmdb

    if not path.is_dir():
        raise SettingError("root", f"{path.parent}: LSUN LMDB {path} not found: put the official export "
                                   "there (a folder holding data.mdb), or set {root} / {lsun_category}")
    try:
        return lmdb.open(str(path), readonly=True, lock=False, readahead=False, meminit=False,
                         max_readers=64, subdir=True)
    except lmdb.Error as exc:
        raise UserError(f"LSUN LMDB {path} is not a readable LMDB database: {exc}") from None
