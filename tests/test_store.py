"""Chunked .npy files (data/store.py), recorded digests and staged output folders (files.py)."""

import io
import os

import numpy as np
import pytest

from dcgan.core import files
from dcgan.core.errors import UserError
from dcgan.data.store import NpyReader, NpyWriter, npy_header


def npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


@pytest.mark.parametrize("shape", [(0, 1, 4, 4), (7, 3, 5, 5), (300, 1, 16, 16)])
def test_writer_writes_what_np_save_writes_and_hashes_it(tmp_path, shape):
    a = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    with NpyWriter(tmp_path / "a.npy", shape) as w:
        for start in range(0, len(a), 64):
            w.write(a[start:start + 64])
    assert (tmp_path / "a.npy").read_bytes() == npy_bytes(a)
    assert w.digest == files.file_digest(tmp_path / "a.npy")
    assert npy_header(shape) == npy_bytes(a)[:len(npy_header(shape))]
    assert os.stat(tmp_path / "a.npy").st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


def test_writer_keeps_the_old_file_on_error_and_refuses_short_or_long_writes(tmp_path):
    path = tmp_path / "a.npy"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError), NpyWriter(path, (4, 1, 2, 2)) as w:
        w.write(np.zeros((2, 1, 2, 2), np.uint8))
        raise RuntimeError("killed half-way")
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["a.npy"]
    with pytest.raises(ValueError, match="2 rows written of the 4"), NpyWriter(path, (4, 1, 2, 2)) as w:
        w.write(np.zeros((2, 1, 2, 2), np.uint8))
    with pytest.raises(ValueError, match="more than the 1 rows"):
        NpyWriter(path, (1, 1, 2, 2)).write(np.zeros((2, 1, 2, 2), np.uint8))
    with pytest.raises(ValueError, match="do not fit"):
        NpyWriter(path, (1, 1, 2, 2)).write(np.zeros((1, 3, 2, 2), np.uint8))
    assert path.read_bytes() == b"old"


def test_reader_gathers_exactly_what_indexing_the_array_gives(tmp_path):
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (500, 3, 8, 8), dtype=np.uint8)
    np.save(tmp_path / "a.npy", a)
    r = NpyReader(tmp_path / "a.npy")
    assert len(r) == 500 and r.shape == a.shape and r.dtype == np.uint8
    for idx in (rng.permutation(500)[:64], np.array([3, 3, 2, 499, 0, 1, 2]), np.arange(10, 74),
                np.array([], np.int64), rng.integers(0, 500, 200)):
        got = r.take(idx)
        assert got.shape == (len(idx), 3, 8, 8) and np.array_equal(got, a[idx])
    assert np.array_equal(r[10:20], a[10:20]) and np.array_equal(r[-1], a[-1])
    assert np.array_equal(r[5:50:7], a[5:50:7]) and np.array_equal(np.asarray(r), a)
    assert np.array_equal(np.concatenate([c for _, c in r.chunks(rows=77)]), a)
    view = r.rows(np.array([9, 1, 4]))
    assert len(view) == 3 and np.array_equal(view[0:2], a[[9, 1]]) and np.array_equal(view[2], a[4])
    with pytest.raises(IndexError):
        r.take(np.array([500]))


def test_reader_refuses_missing_truncated_and_non_npy_files(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        NpyReader(tmp_path / "nope.npy")
    (tmp_path / "junk.npy").write_bytes(b"not an array at all")
    with pytest.raises(UserError, match="not a readable .npy file"):
        NpyReader(tmp_path / "junk.npy")
    data = npy_bytes(np.zeros((10, 1, 4, 4), np.uint8))
    (tmp_path / "short.npy").write_bytes(data[:-5])
    with pytest.raises(UserError, match="truncated"):
        NpyReader(tmp_path / "short.npy")


def test_recorded_digest_is_used_only_while_the_file_is_unchanged(tmp_path):
    path = tmp_path / "train.npy"
    np.save(path, np.zeros((4, 1, 2, 2), np.uint8))
    true = files.file_digest(path)
    files.record_digests(tmp_path, {"train.npy": "recorded"})  # a stand-in value: proves it is read
    assert files.recorded_digest(path) == "recorded"
    said: list[str] = []
    np.save(path, np.ones((4, 1, 2, 2), np.uint8))  # same size, new mtime: the record is stale
    os.utime(path, ns=(1, 1))
    assert files.recorded_digest(path, said.append) == files.file_digest(path) != true
    assert said and "hashing it again" in said[0]


def test_staged_dir_swaps_in_a_complete_folder_or_leaves_the_old_one(tmp_path):
    out = tmp_path / "prepared"
    out.mkdir()
    (out / "train.npy").write_text("old")
    with pytest.raises(OSError), files.staged_dir(out) as tmp:
        (tmp / "train.npy").write_text("new, half")
        raise OSError("disk full")
    assert (out / "train.npy").read_text() == "old" and sorted(os.listdir(tmp_path)) == ["prepared"]
    with files.staged_dir(out) as tmp:
        (tmp / "train.npy").write_text("new")
    assert (out / "train.npy").read_text() == "new" and sorted(os.listdir(tmp_path)) == ["prepared"]
    assert os.stat(out).st_mode & 0o777 == 0o777 & ~_umask()


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield 0o640
    os.umask(old)


def _writers(tmp_path):
    import torch

    from dcgan.training import checkpoint

    def npy(path):
        with NpyWriter(path, (2, 1, 2, 2)) as w:
            w.write(np.zeros((2, 1, 2, 2), np.uint8))

    return {
        "metrics.json": lambda p: files.write_json(p, {"fid": 1.0}),
        "generator.safetensors": lambda p: files.save_module(torch.nn.Linear(2, 2), p),
        "train.npy": npy,
        "ckpt": lambda p: checkpoint.save_checkpoint(p, 3, {"step": 3}),
    }


def test_outputs_get_the_umasks_mode_not_mkstemps_0600(tmp_path, umask_027):
    """A team's group (umask 027) can read every output: mkstemp's 0600 is not left on them."""
    for name, write in _writers(tmp_path).items():
        write(tmp_path / name)
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(written) >= 4
    for p in written:
        assert p.stat().st_mode & 0o777 == umask_027, p
    with files.staged_dir(tmp_path / "prepared") as d:
        (d / "x").write_text("1")
    assert (tmp_path / "prepared").stat().st_mode & 0o777 == 0o750


def test_the_folder_is_fsynced_after_each_rename(tmp_path, monkeypatch):
    """The rename that publishes a file is made durable: the folder holding it is fsynced after
    os.replace (the file's own fsync does not cover the folder entry)."""
    events: list[tuple[str, str]] = []
    real_replace, real_fsync = os.replace, os.fsync

    def replace(src, dst):
        events.append(("replace", os.path.dirname(os.fspath(dst))))
        real_replace(src, dst)

    def fsync(fd):
        st = os.fstat(fd)
        if __import__("stat").S_ISDIR(st.st_mode):
            events.append(("fsync_dir", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(os, "fsync", fsync)
    for name, write in _writers(tmp_path).items():
        events.clear()
        write(tmp_path / name)
        last_replace = max(i for i, e in enumerate(events) if e[0] == "replace")
        folder = events[last_replace][1]
        assert ("fsync_dir", folder) in events[last_replace + 1:], (name, events)
