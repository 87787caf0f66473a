"""Each loader on small files written in that dataset's real on-disk format."""

import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dcgan.core.errors import UserError
from dcgan.data.loaders import dataset_names
from tests.conftest import REPO
from tests.helpers import load_dataset


def write_idx(path: Path, array: np.ndarray) -> None:
    """MNIST's idx format: magic (0, 0, dtype=0x08 ubyte, ndim), big-endian dims, raw bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def make_mnist(root: Path, folder: str, n: int = 20) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    raw = root / folder / "raw"
    write_idx(raw / "train-images-idx3-ubyte", images)
    write_idx(raw / "train-labels-idx1-ubyte", labels)
    write_idx(raw / "t10k-images-idx3-ubyte", images[:5])
    write_idx(raw / "t10k-labels-idx1-ubyte", labels[:5])
    return images, labels


def test_registry_holds_the_datasets_the_project_promises():
    assert {"digits", "mnist", "fashion_mnist", "cifar10", "celeba", "lsun", "folder"} <= set(dataset_names())


def test_the_docs_name_the_registered_datasets():
    """Issue 39: the loaders' table and prepare.dataset's docstring name every registered dataset,
    by its registered name, and nothing else (they had drifted: 'fashion', no lsun)."""
    import re

    from dcgan.data import loaders

    lines = loaders.__doc__.splitlines()
    rules = [i for i, line in enumerate(lines) if line.startswith("=====")]
    assert len(rules) == 3  # a table: a header between the first two rules, its rows before the third
    assert sorted(line.split()[0] for line in lines[rules[1] + 1:rules[2]]) == dataset_names()
    source = (REPO / "src/dcgan/app/params/prepare.py").read_text()
    doc = source.split("    dataset: Str\n", 1)[1].split('"""')[1]
    named = set(re.findall(r"\b[a-z][a-z0-9_]+\b", doc)) & {*dataset_names(), "fashion", "lsun_bedroom"}
    assert named == set(dataset_names()), doc
    readme = (REPO / "README.md").read_text().split("## Switch dataset", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (`.*?) \|", readme, re.M)  # the first cell of each row of the table
    assert sorted(n for row in rows for n in re.findall(r"`([a-z0-9_]+)`", row)) == dataset_names(), rows


def test_digits_offline_upscaled():
    raw = load_dataset("digits", "unused", 32, 1)
    assert raw.images.shape == (1797, 1, 32, 32) and raw.images.dtype == np.uint8
    assert set(np.unique(raw.labels)) == set(range(10))
    assert raw.images.max() >= 250  # 16 grey levels mapped to the full 0..255 range


def test_digits_are_sklearn_s_load_digits():
    """The digits loader reads sklearn's bundled file itself (no sklearn import at stage start):
    the same pixels and labels as ``sklearn.datasets.load_digits``."""
    from sklearn.datasets import load_digits

    from dcgan.data.loaders import _sklearn_digits

    pixels, target = _sklearn_digits()
    bunch = load_digits()
    np.testing.assert_array_equal(pixels, bunch.data)
    np.testing.assert_array_equal(target, bunch.target)
    assert pixels.dtype == bunch.data.dtype


@pytest.mark.parametrize("shape", [(3, 1, 8, 8), (2, 3, 218, 178), (2, 3, 45, 64), (1, 3, 33, 32), (1, 1, 5, 9),
                                   (2, 3, 12, 12)])
@pytest.mark.parametrize("size", [16, 64])
def test_fit_square_is_torchvision_s_center_crop_and_resize(shape, size):
    """fit_square (torch alone) gives what torchvision's v2 center_crop + antialiased resize give,
    bit for bit: down and up, grey and colour, odd margins, portrait and landscape."""
    import torch
    from torchvision.transforms.v2 import functional as TF

    from dcgan.data.shaping import fit_square

    x = torch.from_numpy(np.random.default_rng(sum(shape) + size).integers(0, 256, shape, dtype=np.uint8))
    side = min(shape[-2:])
    want = TF.center_crop(x, [side, side])
    if side != size:
        want = TF.resize(want.float(), [size, size], antialias=True).round().clamp(0, 255).to(torch.uint8)
    got = fit_square(x, size)
    assert got.dtype == torch.uint8 and got.shape == (*shape[:2], size, size)
    assert torch.equal(got, want)



@pytest.mark.parametrize(("name", "folder"), [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_mnist_family_reads_idx_files(tmp_path, name, folder):
    images, labels = make_mnist(tmp_path, folder)
    raw = load_dataset(name, tmp_path, 32, 1)
    assert raw.images.shape == (20, 1, 32, 32)
    np.testing.assert_array_equal(raw.labels, labels)
    # resizing 28 -> 32 keeps the picture: mean brightness within a couple of levels
    assert abs(raw.images.astype(float).mean() - images.astype(float).mean()) < 3
    assert load_dataset(name, tmp_path, 16, 1).images.shape == (20, 1, 16, 16)


def test_mnist_missing_files_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match=r"^root .*: MNIST files not found under .*set download: true"):
        load_dataset("mnist", tmp_path, 32, 1)


def make_cifar(root: Path, per_batch: int = 4) -> np.ndarray:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    all_data = []
    for i in range(1, 6):
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        all_data.append(data)
        batch = {b"batch_label": f"training batch {i} of 5".encode(), b"labels": [i % 10] * per_batch,
                 b"data": data, b"filenames": [b"x.png"] * per_batch}
        with open(folder / f"data_batch_{i}", "wb") as fh:
            pickle.dump(batch, fh, protocol=2)
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({b"label_names": [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog",
                                      b"frog", b"horse", b"ship", b"truck"]}, fh, protocol=2)
    return np.concatenate(all_data).reshape(-1, 3, 32, 32)


def test_cifar10_reads_python_batches(tmp_path):
    expected = make_cifar(tmp_path)
    raw = load_dataset("cifar10", tmp_path, 32, 3)
    np.testing.assert_array_equal(raw.images, expected)  # 32 -> 32: untouched
    assert raw.labels.tolist() == [i % 10 for i in range(1, 6) for _ in range(4)]
    assert raw.class_names[0] == "airplane"
    grey = load_dataset("cifar10", tmp_path, 16, 1)
    assert grey.images.shape == (20, 1, 16, 16)


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("touch pwned",))


def test_cifar10_refuses_code_in_pickles(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_cifar(tmp_path)
    with open(tmp_path / "cifar-10-batches-py" / "data_batch_3", "wb") as fh:
        pickle.dump({b"data": _Evil(), b"labels": []}, fh, protocol=2)
    with pytest.raises(UserError, match="data_batch_3 is corrupt.*refusing to load posix.system"):
        load_dataset("cifar10", tmp_path, 32, 3)
    assert not (tmp_path / "pwned").exists()


def test_cifar10_missing(tmp_path):
    with pytest.raises(UserError, match="data_batch_1 not found"):
        load_dataset("cifar10", tmp_path, 32, 3)


def test_celeba_reads_aligned_jpegs(tmp_path):
    folder = tmp_path / "celeba" / "img_align_celeba"
    folder.mkdir(parents=True)
    for i in range(6):
        arr = np.full((218, 178, 3), (40 * i, 100, 200), dtype=np.uint8)  # CelebA's 178x218
        Image.fromarray(arr).save(folder / f"{i + 1:06d}.jpg", quality=95)
    raw = load_dataset("celeba", tmp_path, 64, 3)
    assert raw.images.shape == (6, 3, 64, 64)
    assert (raw.labels == -1).all()
    assert abs(int(raw.images[3, 0].mean()) - 120) <= 3  # colour survives decode + resize
    assert load_dataset("celeba", tmp_path, 64, 3, max_images=2).images.shape[0] == 2


def test_folder_with_class_subfolders_and_a_corrupt_file(tmp_path):
    for cls, value in (("cats", 30), ("dogs", 220)):
        (tmp_path / cls).mkdir()
        for i in range(3):
            Image.fromarray(np.full((40, 50, 3), value, np.uint8)).save(tmp_path / cls / f"{i}.png")
    (tmp_path / "dogs" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    raw = load_dataset("folder", tmp_path, 16, 1)
    assert raw.images.shape == (6, 1, 16, 16)
    assert raw.class_names == ["cats", "dogs"]
    assert raw.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert len(raw.skipped_files) == 1 and raw.skipped_files[0].endswith("broken.png")
    assert raw.images[0].max() == 30 and raw.images[-1].min() == 220


def test_folder_without_subfolders_has_no_labels(tmp_path):
    for i in range(2):
        Image.fromarray(np.zeros((20, 20), np.uint8)).save(tmp_path / f"{i}.png")
    raw = load_dataset("folder", tmp_path, 16, 3)
    assert raw.images.shape == (2, 3, 16, 16) and (raw.labels == -1).all()


def test_folder_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_dataset("folder", tmp_path / "nope", 16, 1)
    (tmp_path / "notes.txt").write_text("no images here")
    with pytest.raises(UserError, match="has no images"):
        load_dataset("folder", tmp_path, 16, 1)
    (tmp_path / "bad.jpg").write_bytes(b"garbage")
    with pytest.raises(UserError, match="none of its 1 images could be read"):
        load_dataset("folder", tmp_path, 16, 1)


def test_unknown_dataset():
    from dcgan.data.loaders import _REGISTRY

    names = ", ".join(_REGISTRY)  # registration order
    assert names.startswith("digits, mnist, fashion_mnist, cifar10, celeba, lsun, folder")
    with pytest.raises(UserError, match=f"^dataset must be one of {names}, got 'imagenet'"):
        load_dataset("imagenet", ".", 16, 1)


def test_empty_or_truncated_mnist_files_are_named(tmp_path):
    make_mnist(tmp_path, "MNIST", n=0)  # idx files holding zero images
    with pytest.raises(UserError, match=r"MNIST files under .*MNIST/raw could not be read"):
        load_dataset("mnist", tmp_path, 16, 1)
    make_mnist(tmp_path / "t", "MNIST", n=5)
    images = tmp_path / "t/MNIST/raw/train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:-100])  # truncated download
    with pytest.raises(UserError, match=r"MNIST files under .*MNIST/raw could not be read"):
        load_dataset("mnist", tmp_path / "t", 16, 1)


def test_celeba_download_without_gdown_names_the_extra(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "gdown", None)  # as if not installed: `import gdown` fails
    with pytest.raises(UserError, match=r"needs the gdown package.*pip install -e '\.\[celeba\]'"):
        load_dataset("celeba", tmp_path, 64, 3, download=True)
    assert not (tmp_path / "celeba").exists()  # nothing half-downloaded


def test_each_loader_declares_the_prepare_keys_it_reads():
    """The loader contract is typed: a loader's options are a dataclass whose fields are prepare.*
    keys (the prepare stage fills it with fill_from); no loader is special-cased in the stage."""
    from dataclasses import fields

    from dcgan.app.params.prepare import PrepareParams
    from dcgan.data.loaders import options_type

    keys = {f.name for f in fields(PrepareParams)}
    for name in dataset_names():
        assert {f.name for f in fields(options_type(name))} <= keys, name
    assert [f.name for f in fields(options_type("lsun"))] == ["lsun_category"]
    assert "lsun" not in (REPO / "src/dcgan/app/stages/prepare.py").read_text()
