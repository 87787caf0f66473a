"""The dataset loaders: the file to edit to add a dataset. Each loader says where a dataset's images
are; :mod:`dcgan.data.shaping` decodes and shapes them (chunk by chunk in the prepare stage).

A loader is a function ``load(src: Source, options) -> RawDataset`` registered under its name
(``prepare.dataset``) with :func:`register`. ``src`` holds what every loader gets (prepare.root,
prepare.download, prepare.max_images); ``options`` is the loader's own frozen dataclass, whose
field names are the ``prepare.*`` keys it reads (the prepare stage fills it from the section
with ``fill_from``; a loader that reads none declares :class:`NoOptions`).

Loaders read the datasets' real on-disk formats under ``root`` and never touch the network
unless ``download`` is true (then torchvision fetches the official files into ``root``).
Array datasets (digits, MNIST, CIFAR-10: at most 180 MB) come back as one array; image files
and LMDB records come back as an :class:`~dcgan.data.encoded.Encoded` list, decoded later in
worker processes.

============= =========================================================== ========
name          files read under root                                       labels
============= =========================================================== ========
digits        none: scikit-learn's bundled 8x8 digits (offline default)   0-9
mnist         MNIST/raw/train-images-idx3-ubyte (+ labels), torchvision   0-9
fashion_mnist FashionMNIST/raw/train-images-idx3-ubyte (+ labels)         0-9
cifar10       cifar-10-batches-py/data_batch_1..5 (python pickles)        0-9
celeba        celeba/img_align_celeba/*.jpg                               none
lsun          <prepare.lsun_category>_lmdb/ (the official LMDB export)    none
folder        root/**/*.{png,jpg,...}; class subfolders give labels       optional
============= =========================================================== ========
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dcgan.core.errors import SettingError, UserError
from dcgan.data.encoded import IMAGE_EXTENSIONS, FileList, LmdbRecords, RawDataset, open_lmdb


@dataclass(frozen=True)
class Source:
    """What every loader is given."""

    root: Path
    """prepare.root: where the dataset's files are (not read by digits)."""
    download: bool = False
    """prepare.download: the loader may fetch the official files into root."""
    max_images: int = 0
    """prepare.max_images: a loader that lists files may stop at this many (0 = all)."""


@dataclass(frozen=True)
class NoOptions:
    """The options of a loader that reads no ``prepare.*`` key of its own."""


@dataclass(frozen=True)
class LsunOptions:
    lsun_category: str = "bedroom_train"
    """prepare.lsun_category: the LMDB export read, root/<lsun_category>_lmdb."""


@dataclass(frozen=True)
class Loader:
    load: Callable[[Source, Any], RawDataset]
    options: type
    """A frozen dataclass: the ``prepare.*`` keys the loader reads, by name."""


_REGISTRY: dict[str, Loader] = {}


def register(name: str, options: type = NoOptions) -> Callable:
    """``@register("mnist")`` (or ``options=MyOptions`` for a loader with keys of its own)."""
    def deco(fn: Callable[[Source, Any], RawDataset]) -> Callable[[Source, Any], RawDataset]:
        _REGISTRY[name] = Loader(fn, options)
        return fn

    return deco


def dataset_names() -> list[str]:
    return sorted(_REGISTRY)


def check_name(name: str) -> None:
    """The dataset must name a registered loader (the one list of dataset names)."""
    if name not in _REGISTRY:
        raise SettingError("dataset", f"must be one of {', '.join(_REGISTRY)}, got {name!r}")


def options_type(name: str) -> type:
    """The options dataclass the loader ``name`` declared."""
    check_name(name)
    return _REGISTRY[name].options


def open_dataset(name: str, src: Source, options: Any = None) -> RawDataset:
    """The dataset's images at their native size (at most ``src.max_images``), not decoded yet
    where they are files or records. ``options``: an instance of :func:`options_type` (default:
    its defaults)."""
    check_name(name)
    loader = _REGISTRY[name]
    raw = loader.load(src, loader.options() if options is None else options)
    if isinstance(raw.images, np.ndarray) and src.max_images:
        raw.images, raw.labels = raw.images[:src.max_images], raw.labels[:src.max_images]
    if len(raw.images) == 0:
        raise UserError(f"dataset {name!r} under {src.root} is empty")
    return raw


# --------------------------------------------------------------------------------- loaders


@register("digits")
def load_digits(src: Source, options: NoOptions) -> RawDataset:
    """scikit-learn's bundled digits, read from the file its ``load_digits`` reads, as it reads
    it (a test checks they are equal): importing sklearn would cost each prepare run 1.7 s."""
    pixels, target = _sklearn_digits()
    # 16 grey levels (0..16) -> 0..255; shape (1797, 8, 8) -> (N, 1, 8, 8)
    images = np.rint(pixels.reshape(-1, 8, 8) * (255.0 / 16.0)).astype(np.uint8)[:, None]
    return RawDataset(images, target.astype(np.int64), "sklearn.datasets.load_digits",
                      [str(i) for i in range(10)])


def _sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    """(pixels (1797, 64) float64 in 0..16, labels): sklearn/datasets/data/digits.csv.gz parsed
    as ``sklearn.datasets.load_digits`` parses it; that function where the file is not there."""
    import gzip
    import importlib.util

    spec = importlib.util.find_spec("sklearn")  # finds the package without importing it
    roots = list(spec.submodule_search_locations or []) if spec else []
    path = Path(roots[0]) / "datasets/data/digits.csv.gz" if roots else None
    if path is None or not path.is_file():
        from sklearn.datasets import load_digits as sk_load

        bunch = sk_load()
        return bunch.data, bunch.target
    with gzip.open(path, mode="rt", encoding="utf-8") as fh:
        data = np.loadtxt(fh, delimiter=",")
    return data[:, :-1], data[:, -1].astype(int, copy=False)


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
        raise SettingError(
            "root", f"{root}: {cls_name} files not found under {root}/{cls_name}/raw "
                    f"(train-images-idx3-ubyte etc.); put them there or set {{download}}: true ({exc})"
        ) from None
    images = ds.data.numpy().astype(np.uint8)[:, None]  # (N, 28, 28) -> (N, 1, 28, 28)
    return RawDataset(images, ds.targets.numpy().astype(np.int64), f"torchvision.{cls_name}",
                      list(ds.classes))


@register("mnist")
def load_mnist(src: Source, options: NoOptions) -> RawDataset:
    return _torchvision_mnist("MNIST", src.root, src.download)


@register("fashion_mnist")
def load_fashion_mnist(src: Source, options: NoOptions) -> RawDataset:
    return _torchvision_mnist("FashionMNIST", src.root, src.download)


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
def load_cifar10(src: Source, options: NoOptions) -> RawDataset:
    folder = src.root / "cifar-10-batches-py"
    if src.download and not folder.is_dir():
        import torchvision.datasets as tvd

        tvd.CIFAR10(root=str(src.root), train=True, download=True)
    files = [folder / f"data_batch_{i}" for i in range(1, 6)]
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise SettingError(
            "root", f"{src.root}: CIFAR-10 file {missing[0]} not found; put the python-version batches "
                    f"in {folder} or set {{download}}: true"
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


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


@register("celeba")
def load_celeba(src: Source, options: NoOptions) -> RawDataset:
    folder = src.root / "celeba" / "img_align_celeba"
    if src.download and not folder.is_dir():
        import torchvision.datasets as tvd

        try:  # torchvision fetches CelebA from Google Drive through gdown, an optional dependency
            import gdown  # noqa: F401
        except ImportError:
            raise SettingError(
                "download", "true for CelebA needs the gdown package, which is not installed: "
                            f"pip install -e '.[celeba]' (the celeba extra), or put the images at {folder}") from None
        tvd.CelebA(root=str(src.root), split="train", download=True)
    if not folder.is_dir():
        raise SettingError(
            "root", f"{src.root}: CelebA images not found: expected {folder}/*.jpg; put them there or "
                    f"set {{download}}: true"
        )
    files = _image_files(folder)
    if src.max_images:
        files = files[:src.max_images]
    return RawDataset(FileList(files), np.full(len(files), -1, np.int64), "celeba/img_align_celeba")


@register("lsun", options=LsunOptions)
def load_lsun(src: Source, options: LsunOptions) -> RawDataset:
    category = options.lsun_category
    path = src.root / f"{category}_lmdb"
    if src.download:
        raise SettingError("download", "cannot fetch LSUN (no torchvision downloader): get it with "
                                       f"LSUN's download.py (-c {category.rsplit('_', 1)[0]}), unzip it to "
                                       f"{path}, and set {{download}}: false")
    env = open_lmdb(path)
    try:
        entries = int(env.stat()["entries"])
    finally:
        env.close()
    if entries == 0:
        raise UserError(f"LSUN LMDB {path} holds no records")
    count = min(entries, src.max_images) if src.max_images else entries
    return RawDataset(LmdbRecords(path, count), np.full(count, -1, np.int64), f"lsun:{category}_lmdb")


@register("folder")
def load_folder(src: Source, options: NoOptions) -> RawDataset:
    if not src.root.is_dir():
        raise SettingError("root", f"{src.root}: the image folder does not exist")
    files = _image_files(src.root)
    if src.max_images:
        files = files[:src.max_images]
    if not files:
        raise UserError(
            f"image folder {src.root} has no images (looked for {', '.join(IMAGE_EXTENSIONS)})"
        )
    rel_parents = [f.relative_to(src.root).parent for f in files]
    # Labels only when every image sits in a first-level class subfolder.
    if all(len(p.parts) == 1 for p in rel_parents):
        class_names = sorted({p.parts[0] for p in rel_parents})
        index = {c: i for i, c in enumerate(class_names)}
        all_labels = np.array([index[p.parts[0]] for p in rel_parents], np.int64)
    else:
        class_names, all_labels = [], np.full(len(files), -1, np.int64)
    return RawDataset(FileList(files), all_labels, f"folder:{src.root}", class_names)
