"""Dataset registry: each loader says where the images are; :func:`load_dataset` (small sets, in
memory) and :mod:`dcgan.data.prepare` (any size, chunk by chunk) shape them to uint8 (N, C, S, S).

Loaders read the datasets' real on-disk formats under ``root`` and never touch the network
unless ``download`` is true (then torchvision fetches the official files into ``root``).
Array datasets (digits, MNIST, CIFAR-10: at most 180 MB) come back as one array; image files
and LMDB records come back as an :class:`Encoded` list, decoded later in worker processes.

======== =========================================================== ========
name     files read under root                                        labels
======== =========================================================== ========
digits   none: scikit-learn's bundled 8x8 digits (offline default)   0-9
mnist    MNIST/raw/train-images-idx3-ubyte (+ labels), torchvision    0-9
fashion  FashionMNIST/raw/train-images-idx3-ubyte (+ labels)          0-9
cifar10  cifar-10-batches-py/data_batch_1..5 (python pickles)         0-9
celeba   celeba/img_align_celeba/*.jpg                                none
lsun     <prepare.lsun_category>_lmdb/ (the official LMDB export)     none
folder   root/**/*.{png,jpg,...}; class subfolders give labels       optional
======== =========================================================== ========
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dcgan.base.errors import ConfigError, UserError

# torch, torchvision and PIL load where images are read or shaped, so that checking a dataset
# name (the validate stage) stays cheap
if TYPE_CHECKING:
    import torch

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
            env = _open_lmdb(self.path)
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


Loader = Callable[[Path, bool, int, dict], RawDataset]
_REGISTRY: dict[str, Loader] = {}


def register(name: str) -> Callable[[Loader], Loader]:
    def deco(fn: Loader) -> Loader:
        _REGISTRY[name] = fn
        return fn

    return deco


def dataset_names() -> list[str]:
    return sorted(_REGISTRY)


# --------------------------------------------------------------------------------- loaders


@register("digits")
def load_digits(root: Path, download: bool, max_images: int, options: dict) -> RawDataset:
    from sklearn.datasets import load_digits as sk_load

    bunch = sk_load()
    # 16 grey levels (0..16) -> 0..255; shape (1797, 8, 8) -> (N, 1, 8, 8)
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    return RawDataset(images, bunch.target.astype(np.int64), "sklearn.datasets.load_digits",
                      [str(i) for i in range(10)])


def _torchvision_mnist(cls_name: str, root: Path, download: bool) -> RawDataset:
    import torchvision.datasets as tvd

    cls = getattr(tvd, cls_name)
    raw = root / cls_name / "raw"
    try:
        ds = cls(root=str(root), train=True, download=download)
    except (ValueError, AssertionError, KeyError, OSError, RuntimeError) as exc:
        if (raw / "train-images-idx3-ubyte").is_file():  # there, but torchvision's idx parser failed
            raise UserError(
                f"{cls_name} files under {raw} could not be read (corrupt, truncated or empty idx "
                f"files): {exc or type(exc).__name__}"
            ) from None
        raise UserError(
            f"{cls_name} files not found under {root}/{cls_name}/raw "
            f"(train-images-idx3-ubyte etc.); put them there or set prepare.download: true"
            f" ({exc})"
        ) from None
    images = ds.data.numpy().astype(np.uint8)[:, None]  # (N, 28, 28) -> (N, 1, 28, 28)
    return RawDataset(images, ds.targets.numpy().astype(np.int64), f"torchvision.{cls_name}",
                      list(ds.classes))


@register("mnist")
def load_mnist(root: Path, download: bool, max_images: int, options: dict) -> RawDataset:
    return _torchvision_mnist("MNIST", root, download)


@register("fashion_mnist")
def load_fashion_mnist(root: Path, download: bool, max_images: int, options: dict) -> RawDataset:
    return _torchvision_mnist("FashionMNIST", root, download)


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only: a crafted file cannot run code."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):  # noqa: D102
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data file")


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, list[int]]:
    try:
        with open(path, "rb") as fh:
            batch = _ArrayOnlyUnpickler(fh, encoding="bytes").load()
        data = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = list(batch[b"labels"])
    except (pickle.UnpicklingError, KeyError, ValueError, EOFError, TypeError) as exc:
        raise UserError(f"CIFAR-10 batch {path} is corrupt or not in the python format: {exc}") from None
    return data, labels


@register("cifar10")
def load_cifar10(root: Path, download: bool, max_images: int, options: dict) -> RawDataset:
    folder = root / "cifar-10-batches-py"
    if download and not folder.is_dir():
        import torchvision.datasets as tvd

        tvd.CIFAR10(root=str(root), train=True, download=True)
    files = [folder / f"data_batch_{i}" for i in range(1, 6)]
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise UserError(
            f"CIFAR-10 file {missing[0]} not found; put the python-version batches in {folder} "
            f"or set prepare.download: true"
        )
    parts = [_read_cifar_batch(f) for f in files]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([np.asarray(p[1], dtype=np.int64) for p in parts])
    names = [str(i) for i in range(10)]
    meta = folder / "batches.meta"
    if meta.is_file():
        with open(meta, "rb") as fh:
            info = _ArrayOnlyUnpickler(fh, encoding="bytes").load()
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in info.get(b"label_names", names)]
    return RawDataset(images, labels, "cifar-10-batches-py", names)


def decode_image(name: str, payload: bytes | None = None) -> np.ndarray:
    """An encoded image (the file ``name``, or ``payload``'s bytes) -> uint8 RGB (3, H, W)."""
    from PIL import Image

    with Image.open(name if payload is None else io.BytesIO(payload)) as im:
        im.load()
        im = im.convert("RGB")
        return np.asarray(im, dtype=np.uint8).transpose(2, 0, 1).copy()  # H,W,C -> C,H,W


UNREADABLE = (OSError, ValueError, SyntaxError)  # PIL's UnidentifiedImageError is an OSError


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


@register("celeba")
def load_celeba(root: Path, download: bool, max_images: int, options: dict) -> RawDataset:
    folder = root / "celeba" / "img_align_celeba"
    if download and not folder.is_dir():
        import torchvision.datasets as tvd

        try:  # torchvision fetches CelebA from Google Drive through gdown, an optional dependency
            import gdown  # noqa: F401
        except ImportError:
            raise UserError(
                "prepare.download: true for CelebA needs the gdown package, which is not "
                "installed: pip install -e '.[celeba]' (the celeba extra), or put the images at "
                f"{folder}") from None
        tvd.CelebA(root=str(root), split="train", download=True)
    if not folder.is_dir():
        raise UserError(
            f"CelebA images not found: expected {folder}/*.jpg; put them there or set "
            f"prepare.download: true"
        )
    files = _image_files(folder)
    if max_images:
        files = files[:max_images]
    return RawDataset(FileList(files), np.full(len(files), -1, np.int64), "celeba/img_align_celeba")


def _open_lmdb(path: Path):
    import lmdb

    if not path.is_dir():
        raise UserError(f"LSUN LMDB {path} not found: put the official export there (a folder "
                        f"holding data.mdb), or set prepare.root / prepare.lsun_category")
    try:
        return lmdb.open(str(path), readonly=True, lock=False, readahead=False, meminit=False,
                         max_readers=64, subdir=True)
    except lmdb.Error as exc:
        raise UserError(f"LSUN LMDB {path} is not a readable LMDB database: {exc}") from None


@register("lsun")
def load_lsun(root: Path, download: bool, max_images: int, options: dict) -> RawDataset:
    category = options.get("lsun_category") or "bedroom_train"
    path = root / f"{category}_lmdb"
    if download:
        raise UserError("prepare.download cannot fetch LSUN (no torchvision downloader): get it with "
                        f"LSUN's download.py (-c {category.rsplit('_', 1)[0]}), unzip it to {path}, "
                        "and set prepare.download: false")
    env = _open_lmdb(path)
    try:
        entries = int(env.stat()["entries"])
    finally:
        env.close()
    if entries == 0:
        raise UserError(f"LSUN LMDB {path} holds no records")
    count = min(entries, max_images) if max_images else entries
    return RawDataset(LmdbRecords(path, count), np.full(count, -1, np.int64), f"lsun:{category}_lmdb")


@register("folder")
def load_folder(root: Path, download: bool, max_images: int, options: dict) -> RawDataset:
    if not root.is_dir():
        raise UserError(f"image folder {root} (prepare.root) does not exist")
    files = _image_files(root)
    if max_images:
        files = files[:max_images]
    if not files:
        raise UserError(
            f"image folder {root} has no images (looked for {', '.join(IMAGE_EXTENSIONS)})"
        )
    rel_parents = [f.relative_to(root).parent for f in files]
    # Labels only when every image sits in a first-level class subfolder.
    if all(len(p.parts) == 1 for p in rel_parents):
        class_names = sorted({p.parts[0] for p in rel_parents})
        index = {c: i for i, c in enumerate(class_names)}
        all_labels = np.array([index[p.parts[0]] for p in rel_parents], np.int64)
    else:
        class_names, all_labels = [], np.full(len(files), -1, np.int64)
    return RawDataset(FileList(files), all_labels, f"folder:{root}", class_names)


# ------------------------------------------------------------------------------ shaping


def to_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """uint8 (N, C, H, W) with C in {1, 3} -> ``channels`` (ITU-R 601 luma for RGB -> grey)."""
    import torch

    if x.shape[1] == channels:
        return x
    if channels == 3:
        return x.expand(-1, 3, -1, -1).contiguous()
    w = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (x.float() * w).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)


def fit_square(x: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (N, C, H, W) -> (N, C, size, size): center-crop to a square, antialiased resize."""
    import torch
    from torchvision.transforms.v2 import functional as TF

    h, w = x.shape[-2:]
    side = min(h, w)
    if h != w:
        x = TF.center_crop(x, [side, side])
    if side != size:
        x = TF.resize(x.float(), [size, size], antialias=True).round().clamp(0, 255).to(torch.uint8)
    return x


def check_name(name: str) -> None:
    """``prepare.dataset`` must name a registered loader (the one list of dataset names)."""
    if name not in _REGISTRY:
        raise ConfigError(f"prepare.dataset must be one of {', '.join(_REGISTRY)}, got {name!r}")


def open_dataset(name: str, root: str | Path, download: bool = False, max_images: int = 0,
                 **options: object) -> RawDataset:
    """The dataset's images at their native size (at most ``max_images``), not decoded yet
    where they are files or records. ``options``: ``lsun_category``."""
    check_name(name)
    raw = _REGISTRY[name](Path(root), download, max_images, options)
    if isinstance(raw.images, np.ndarray) and max_images:
        raw.images, raw.labels = raw.images[:max_images], raw.labels[:max_images]
    if len(raw.images) == 0:
        raise UserError(f"dataset {name!r} under {root} is empty")
    return raw


ARRAY_CHUNK = 4096
"""Images of an array dataset shaped per call (bounds the float copy that resize makes)."""
ITEM_CHUNK = 256
"""Encoded images decoded per task (a worker process's unit of work)."""


def fit_items(items: list[tuple[str, bytes | None]], channels: int, size: int
              ) -> tuple[np.ndarray, list[int], list[str]]:
    """Decode and shape a chunk of encoded images: (uint8 (k, channels, size, size), the
    positions in ``items`` that were kept, the names of the unreadable ones, which are skipped)."""
    import torch

    out, kept, skipped = [], [], []
    for i, (name, payload) in enumerate(items):
        try:
            im = decode_image(name, payload)
        except UNREADABLE:
            skipped.append(name)
            continue
        out.append(fit_square(to_channels(torch.from_numpy(im)[None], channels), size)[0].numpy())
        kept.append(i)
    fitted = np.stack(out) if out else np.empty((0, channels, size, size), np.uint8)
    return fitted, kept, skipped


def _batched(it, n: int) -> Iterator[list]:
    batch = []
    for x in it:
        batch.append(x)
        if len(batch) == n:
            yield batch
            batch = []
    if batch:
        yield batch


def fitted_chunks(raw: RawDataset, channels: int, size: int, pool_map: Callable | None = None
                  ) -> Iterator[tuple[np.ndarray, np.ndarray, int]]:
    """``(images, item indices, items consumed)`` chunk by chunk in item order: images uint8
    (k, channels, size, size), the indices (into ``raw.labels``) of the items they came from.
    Unreadable files or records are skipped and their names added to ``raw.skipped_files``.
    ``pool_map(fn, chunks)``: an ordered map over worker processes (default: in this process)."""
    import functools

    import torch

    if isinstance(raw.images, np.ndarray):
        for start in range(0, len(raw.images), ARRAY_CHUNK):
            chunk = torch.from_numpy(np.ascontiguousarray(raw.images[start:start + ARRAY_CHUNK]))
            yield (fit_square(to_channels(chunk, channels), size).numpy(),
                   np.arange(start, start + len(chunk), dtype=np.int64), len(chunk))
        return
    fn = functools.partial(fit_items, channels=channels, size=size)
    start = 0
    for fitted, kept, skipped, count in (pool_map or _map_counted)(fn, _batched(raw.images.items(), ITEM_CHUNK)):
        raw.skipped_files += skipped
        yield fitted, start + np.asarray(kept, np.int64), count
        start += count


def _map_counted(fn: Callable, chunks: Iterator[list]) -> Iterator[tuple]:
    for chunk in chunks:
        yield (*fn(chunk), len(chunk))


def load_dataset(name: str, root: str | Path, image_size: int, channels: int,
                 download: bool = False, max_images: int = 0, **options: object) -> RawDataset:
    """Load ``name`` whole into memory: a RawDataset whose images are uint8 (N, channels,
    size, size) (small sets, tests; the prepare stage streams with :mod:`dcgan.data.prepare`)."""
    raw = open_dataset(name, root, download, max_images, **options)
    parts, kept = [], []
    for images, idx, _ in fitted_chunks(raw, channels, image_size):
        parts.append(images)
        kept.append(idx)
    if not kept or not sum(len(k) for k in kept):
        raise UserError(f"dataset {name!r} under {root}: none of its {len(raw.images)} images could "
                        f"be read (e.g. {raw.skipped_files[0] if raw.skipped_files else '?'})")
    raw.labels = np.asarray(raw.labels, np.int64)[np.concatenate(kept)]
    raw.images = np.concatenate(parts)
    return raw
