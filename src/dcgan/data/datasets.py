"""Dataset registry: each loader returns uint8 images (N, C, H, W) at the requested size.

Loaders read the datasets' real on-disk formats under ``root`` and never touch the network
unless ``download`` is true (then torchvision fetches the official files into ``root``).

======== =========================================================== ========
name     files read under root                                        labels
======== =========================================================== ========
digits   none: scikit-learn's bundled 8x8 digits (offline default)   0-9
mnist    MNIST/raw/train-images-idx3-ubyte (+ labels), torchvision    0-9
fashion  FashionMNIST/raw/train-images-idx3-ubyte (+ labels)          0-9
cifar10  cifar-10-batches-py/data_batch_1..5 (python pickles)         0-9
celeba   celeba/img_align_celeba/*.jpg                                none
folder   root/**/*.{png,jpg,...}; class subfolders give labels       optional
======== =========================================================== ========
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dcgan.errors import ConfigError, UserError
from dcgan.progress import progress

# torch, torchvision and PIL load where images are read or shaped, so that checking a dataset
# name (the validate stage) stays cheap
if TYPE_CHECKING:
    import torch

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


@dataclass
class RawDataset:
    """Images at their native size (uint8 N,C,H,W or a list of C,H,W) plus labels (-1 = none)."""

    images: np.ndarray | list[np.ndarray]
    labels: np.ndarray
    source: str
    class_names: list[str] = field(default_factory=list)
    skipped_files: list[str] = field(default_factory=list)


Loader = Callable[[Path, bool, int], RawDataset]
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
def load_digits(root: Path, download: bool, max_images: int) -> RawDataset:
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
def load_mnist(root: Path, download: bool, max_images: int) -> RawDataset:
    return _torchvision_mnist("MNIST", root, download)


@register("fashion_mnist")
def load_fashion_mnist(root: Path, download: bool, max_images: int) -> RawDataset:
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
def load_cifar10(root: Path, download: bool, max_images: int) -> RawDataset:
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


def _load_image(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        im = im.convert("RGB")
        return np.asarray(im, dtype=np.uint8).transpose(2, 0, 1).copy()  # H,W,C -> C,H,W


def _read_image_files(files: list[Path], what: str) -> tuple[list[np.ndarray], list[int], list[str]]:
    """Decode image files; corrupt or truncated files are skipped and reported, not fatal."""
    from PIL import UnidentifiedImageError

    images, kept, skipped = [], [], []
    for i, f in enumerate(progress(files, desc=f"reading {what}", unit="img", leave=False,
                               disable=len(files) < 2000)):
        try:
            images.append(_load_image(f))
            kept.append(i)
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
            skipped.append(str(f))
    return images, kept, skipped


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


@register("celeba")
def load_celeba(root: Path, download: bool, max_images: int) -> RawDataset:
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
    images, _, skipped = _read_image_files(files, "CelebA")
    return RawDataset(images, np.full(len(images), -1, np.int64), "celeba/img_align_celeba",
                      skipped_files=skipped)


@register("folder")
def load_folder(root: Path, download: bool, max_images: int) -> RawDataset:
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
    images, kept, skipped = _read_image_files(files, str(root))
    if not images:
        raise UserError(f"image folder {root}: none of its {len(files)} image files could be read")
    return RawDataset(images, all_labels[kept], f"folder:{root}", class_names, skipped)


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


def load_dataset(name: str, root: str | Path, image_size: int, channels: int,
                 download: bool = False, max_images: int = 0) -> RawDataset:
    """Load ``name`` and return a RawDataset whose images are uint8 (N, channels, size, size)."""
    import torch

    check_name(name)
    raw = _REGISTRY[name](Path(root), download, max_images)
    if isinstance(raw.images, np.ndarray):
        imgs = raw.images[:max_images] if max_images else raw.images
        labels = raw.labels[:max_images] if max_images else raw.labels
        out = []
        for start in range(0, len(imgs), 4096):  # chunks bound the float copy made by resize
            chunk = torch.from_numpy(np.ascontiguousarray(imgs[start:start + 4096]))
            out.append(fit_square(to_channels(chunk, channels), image_size))
        images = torch.cat(out) if out else torch.empty(0, channels, image_size, image_size, dtype=torch.uint8)
    else:
        labels = raw.labels
        images = torch.stack([
            fit_square(to_channels(torch.from_numpy(im)[None], channels), image_size)[0]
            for im in raw.images
        ]) if raw.images else torch.empty(0, channels, image_size, image_size, dtype=torch.uint8)
    if len(images) == 0:
        raise UserError(f"dataset {name!r} under {root} is empty")
    raw.images = images.numpy()
    raw.labels = np.asarray(labels, np.int64)
    return raw
