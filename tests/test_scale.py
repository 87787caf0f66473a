"""The constant-memory pipeline on small N: prepare in worker processes, the LSUN LMDB loader,
augment streamed to disk, training from the file (and through the read-ahead source), a
training length in steps, and the bounded evaluation protocol."""

import dataclasses
import io
import os
import resource
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from dcgan.app.params.whole import parse_params
from dcgan.app.stages import augment as augment_stage
from dcgan.app.stages import prepare as prepare_stage
from dcgan.app.stages._common import run
from dcgan.core import files
from dcgan.core.errors import UserError
from dcgan.data import arrays, encoded, loaders, shaping
from dcgan.data.loaders import LsunOptions, Source
from dcgan.data.store import NpyReader
from tests.conftest import (
    CPU,
    REPO,
    ScriptedFid,
    digest,
    fit,
    setup,
    tiny_params,
    venv_env,
    write_params,
)
from tests.helpers import channel_stats, load_dataset

# ------------------------------------------------------------------------------ prepare


def jpeg_bytes(rng: np.random.Generator, h: int, w: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


@pytest.fixture
def image_folder(tmp_path):
    """45 JPEGs of assorted sizes in two class folders, and one corrupt file among them."""
    rng = np.random.default_rng(0)
    root = tmp_path / "images"
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
    for i in range(45):
        (root / ("a" if i % 3 else "b") / f"{i:03d}.jpg").write_bytes(
            jpeg_bytes(rng, int(rng.integers(20, 60)), int(rng.integers(20, 60))))
    (root / "a" / "017.jpg").write_bytes(b"\xff\xd8\xff truncated jpeg")
    return root


def prepare_with(tmp_path, root, workers, out="prepared", **over):
    write_params(tmp_path / "params.yaml", tiny_params(prepare={
        "dataset": "folder", "root": str(root), "image_size": 16, "channels": 3, "max_images": 0,
        "workers": workers, **over}))
    assert run(prepare_stage.main, ["--params", str(tmp_path / "params.yaml"), "--out", str(tmp_path / out)]) == 0
    return tmp_path / out


def test_prepare_output_is_byte_identical_for_any_worker_count(tmp_path, image_folder, monkeypatch, capsys):
    monkeypatch.setattr(shaping, "ITEM_CHUNK", 4)  # many chunks, so the pool's ordering matters
    one = prepare_with(tmp_path, image_folder, 1, "w1")
    three = prepare_with(tmp_path, image_folder, 3, "w3")
    names = sorted(os.listdir(one))
    assert names == sorted(os.listdir(three)) == [
        "digests.json", "holdout.npy", "holdout_labels.npy", "meta.json", "preview.png", "train.npy",
        "train_labels.npy"]
    for name in names:
        if name != "digests.json":  # it records mtimes
            assert (one / name).read_bytes() == (three / name).read_bytes(), name
    meta = files.read_json(one / "meta.json")
    assert meta["skipped_files"] == 1 and meta["n_train"] + meta["n_holdout"] == 44
    assert "skipped 1 unreadable image file(s), e.g." in capsys.readouterr().err
    rec = files.read_json(one / "digests.json")
    assert rec["train.npy"]["sha256"] == files.file_digest(one / "train.npy")


def test_prepare_streamed_equals_the_in_memory_path(tmp_path, image_folder):
    out = prepare_with(tmp_path, image_folder, 2)
    raw = load_dataset("folder", image_folder, 16, 3)  # whole, in memory
    tr, ho = arrays.split_indices(len(raw.images), 0.2, 0)
    for name, idx in (("train", tr), ("holdout", ho)):
        buf = io.BytesIO()
        np.save(buf, raw.images[idx])
        assert (out / f"{name}.npy").read_bytes() == buf.getvalue()
        assert np.array_equal(np.load(out / f"{name}_labels.npy"), raw.labels[idx])
    # exact integer statistics agree with float64 numpy to rounding
    meta = files.read_json(out / "meta.json")
    x = raw.images[tr].astype(np.float64) / 255
    np.testing.assert_allclose(meta["mean"], x.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(meta["std"], x.std(axis=(0, 2, 3)), rtol=1e-12)


def test_channel_stats_do_not_depend_on_chunking():
    x = np.random.default_rng(3).integers(0, 256, (257, 3, 5, 5), dtype=np.uint8)
    whole = arrays.ChannelSums(3).add(x).stats()
    parts = arrays.ChannelSums(3)
    for a in range(0, 257, 10):
        parts.add(x[a:a + 10])
    assert parts.stats() == whole == channel_stats(x)


def test_prepare_that_runs_out_of_disk_keeps_the_old_output_and_no_temp_files(tmp_path):
    """A real write failure (a file-size limit: EFBIG, as a full disk gives ENOSPC)."""
    write_params(tmp_path / "params.yaml", tiny_params(prepare={"max_images": 0, "image_size": 16}))
    cmd = [sys.executable, "-m", "dcgan.app.stages.prepare", "--out", "data/prepared"]
    env = {**venv_env(), "PYTHONPATH": str(REPO / "src")}
    subprocess.run(cmd, cwd=tmp_path, env=env, check=True, capture_output=True)
    before = {p.name: p.read_bytes() for p in (tmp_path / "data" / "prepared").iterdir()}
    write_params(tmp_path / "params.yaml", tiny_params(prepare={"max_images": 0, "image_size": 32}))

    def limit():  # any file past 200 KB fails; 32x32 train.npy is 1.4 MB
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))

    res = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, preexec_fn=limit)
    assert res.returncode == 2, res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("error: no space left while writing") and "is kept" in last, last
    after = {p.name: p.read_bytes() for p in (tmp_path / "data" / "prepared").iterdir()}
    assert after == before
    assert sorted(os.listdir(tmp_path / "data")) == ["prepared"]  # no temporary folder or file left


# --------------------------------------------------------------------------------- LSUN


def make_lmdb(path, n: int, corrupt: set[int] = frozenset()) -> list[bytes]:
    import lmdb

    rng = np.random.default_rng(1)
    values = []
    env = lmdb.open(str(path), map_size=1 << 26)
    with env.begin(write=True) as txn:
        for i in range(n):
            v = b"not a jpeg" if i in corrupt else jpeg_bytes(rng, 48, 64)  # LSUN: JPEG, short side 256
            txn.put(f"{i:040x}".encode(), v)  # keys: 40-hex image ids
            values.append(v)
    env.close()
    return values


def test_lsun_reads_the_lmdb_export_in_key_order_skipping_corrupt_records(tmp_path):
    make_lmdb(tmp_path / "bedroom_train_lmdb", 30, corrupt={4})
    raw = load_dataset("lsun", tmp_path, 16, 3, lsun_category="bedroom_train")
    assert raw.images.shape == (29, 3, 16, 16) and (raw.labels == -1).all()
    assert raw.skipped_files == [f"bedroom_train_lmdb/{4:040x}"]
    first = encoded.decode_image("x", make_lmdb(tmp_path / "again_lmdb", 1)[0])
    ref = shaping.fit_square(torch.from_numpy(first)[None], 16)[0].numpy()
    assert np.array_equal(raw.images[0], ref)  # record 0 first, decoded as a file would be
    reopened = loaders.open_dataset("lsun", Source(tmp_path), LsunOptions("bedroom_train")).images
    reopened.reopen_every = 7  # the database is closed and reopened every 7 records
    assert [k for k, _ in reopened.items()] == [f"bedroom_train_lmdb/{i:040x}" for i in range(30)]
    assert len(load_dataset("lsun", tmp_path, 16, 3, max_images=5,  # the first 5 records,
                                     lsun_category="bedroom_train").images) == 4  # one corrupt
    out = prepare_with(tmp_path, tmp_path, 2, dataset="lsun", lsun_category="bedroom_train")
    assert files.read_json(out / "meta.json")["n_train"] + files.read_json(out / "meta.json")["n_holdout"] == 29


def test_lsun_errors_name_the_problem(tmp_path):
    with pytest.raises(UserError, match=r"LSUN LMDB .*church_outdoor_train_lmdb not found"):
        loaders.open_dataset("lsun", Source(tmp_path), LsunOptions("church_outdoor_train"))
    bad = tmp_path / "bedroom_train_lmdb"
    bad.mkdir()
    (bad / "data.mdb").write_bytes(b"\0garbage" * 512)
    with pytest.raises(UserError, match="is not a readable LMDB database"):
        loaders.open_dataset("lsun", Source(tmp_path), LsunOptions("bedroom_train"))
    with pytest.raises(UserError, match="cannot fetch LSUN"):
        loaders.open_dataset("lsun", Source(tmp_path, download=True))
    with pytest.raises(UserError, match="lsun_category must be a name like bedroom_train"):
        parse_params(tiny_params(prepare={"lsun_category": "../etc"}))


# ------------------------------------------------------------------------------ augment


def test_augment_stage_streams_the_same_bytes_as_the_in_memory_augment(tmp_path):
    from dcgan.app.params.typed import fill_from
    from dcgan.data.augment import Augmentation, augment

    write_params(tmp_path / "params.yaml", tiny_params(augment={"copies": 2}))
    x = np.random.default_rng(2).integers(0, 256, (2100, 1, 8, 8), dtype=np.uint8)  # 2 chunks of 2048
    (tmp_path / "prep").mkdir()
    np.save(tmp_path / "prep" / "train.npy", x)
    np.save(tmp_path / "prep" / "train_labels.npy", np.arange(2100))
    argv = ["--params", str(tmp_path / "params.yaml"), "--data", str(tmp_path / "prep"), "--out", str(tmp_path / "aug")]
    assert run(augment_stage.main, argv) == 0
    expected = augment(x, fill_from(Augmentation, parse_params(tiny_params(augment={"copies": 2})).augment), 0)
    assert np.array_equal(np.load(tmp_path / "aug" / "train.npy"), expected)
    assert np.array_equal(np.load(tmp_path / "aug" / "train_labels.npy"), np.tile(np.arange(2100), 3))
    assert files.recorded_digest(tmp_path / "aug" / "train.npy") == files.file_digest(tmp_path / "aug" / "train.npy")


# -------------------------------------------------------------------------------- train


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    return load_dataset("digits", ".", 16, 1, max_images=160).images


def test_training_from_the_file_and_through_the_read_ahead_source_is_bitwise_the_same(
        tmp_path, digits, monkeypatch):
    from dcgan.training import loop
    from dcgan.training.batches import PrefetchSource

    p, cfg = setup(epochs=2, batch_schedule=((0, 16), (5, 32)))
    np.save(tmp_path / "train.npy", digits)
    in_memory = fit(p, cfg, digits, tmp_path / "a", "fp")
    from_file = fit(p, cfg, NpyReader(tmp_path / "train.npy"), tmp_path / "b", "fp")
    made: list[PrefetchSource] = []

    def prefetching(images, device, log=print):  # the CUDA path, with the CPU standing in for the GPU
        made.append(PrefetchSource(images, device, depth=2, pin=False))
        return made[-1]

    monkeypatch.setattr(loop, "place_data", prefetching)
    ahead = fit(p, cfg, NpyReader(tmp_path / "train.npy"), tmp_path / "c", "fp")
    assert made and made[0].batches_read == in_memory.step
    assert digest(in_memory.g) == digest(from_file.g) == digest(ahead.g)
    assert digest(in_memory.ds[0]) == digest(from_file.ds[0]) == digest(ahead.ds[0])


def test_prefetch_source_refuses_batches_out_of_order_and_reports_reader_errors(tmp_path):
    from dcgan.training.batches import PrefetchSource

    x = np.arange(10 * 4, dtype=np.uint8).reshape(10, 1, 2, 2)
    src = PrefetchSource(x, CPU, pin=False)
    src.start_epoch([torch.tensor([3, 1]), torch.tensor([0, 9])])
    assert torch.equal(src.take(torch.tensor([3, 1])), torch.from_numpy(x[[3, 1]]))
    with pytest.raises(RuntimeError, match="out of the announced order"):
        src.take(torch.tensor([1, 2]))
    src.start_epoch([torch.tensor([42])])  # past the end: the reader thread's error surfaces here
    with pytest.raises(IndexError):
        src.take(torch.tensor([42]))
    src.close()


def test_max_steps_ends_mid_epoch_evaluates_and_resumes_exactly(tmp_path, digits):
    from dcgan.training import checkpoint as ckpt

    p, cfg = setup(epochs=5, max_steps=7, eval_every=2, checkpoint_every=2)  # 5 steps per epoch
    fid = ScriptedFid([1.0, 2.0])
    full = fit(p, cfg, digits, tmp_path / "a", "fp", fid_fn=fid)
    assert (full.step, full.epoch) == (7, 1)
    assert len(fid.digests) == 1 and full.best_step == 7  # evaluated once: at the run's end
    state, _ = ckpt.load_latest(tmp_path / "a")
    assert state["step"] == 7 and state["finished"]
    fit(p, cfg, digits, tmp_path / "b", "fp", fid_fn=ScriptedFid([1.0]), stop_after=6)
    resumed = fit(p, cfg, digits, tmp_path / "b", "fp", fid_fn=ScriptedFid([1.0]))
    assert resumed.resumed_from_step == 6 and resumed.step == 7
    assert digest(resumed.g) == digest(full.g) and digest(resumed.ds[0]) == digest(full.ds[0])
    again = fit(p, cfg, digits, tmp_path / "a", "fp", fid_fn=ScriptedFid([]))
    assert again.step == 7 and digest(again.g) == digest(full.g)  # a finished run is not extended
    exact = dataclasses.replace(p, max_steps=10)  # == 2 epochs exactly: an ordinary end
    r = fit(exact, cfg, digits, tmp_path / "c", "fp", fid_fn=ScriptedFid([1.0, 2.0]))
    assert (r.step, r.epoch) == (10, 2)


# ----------------------------------------------------------------------------- evaluate


def test_streaming_feature_stats_match_the_one_pass_ones():
    from dcgan.metrics.fid import StreamingStats, feature_stats, stats_in_chunks

    f = np.random.default_rng(4).normal(size=(1000, 12)).astype(np.float32) * 3 + 1
    mu, sigma = feature_stats(f)
    one = stats_in_chunks(f, rows=4096)
    assert np.array_equal(one[0], mu) and np.array_equal(one[1], sigma)  # one chunk: bit for bit
    many = stats_in_chunks(f, rows=97)
    np.testing.assert_allclose(many[0], mu, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(many[1], sigma, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError):
        StreamingStats().result()


def test_precision_recall_runs_on_a_bounded_seeded_subset():
    from dcgan.app.params.typed import fill_from
    from dcgan.core.seeding import derive_seed
    from dcgan.metrics.prdc import precision_recall
    from dcgan.metrics.sets import FeatureSet, Reference
    from dcgan.metrics.suite import ScoreOptions, get, pr_count

    rng = np.random.default_rng(5)
    ref = Reference.from_features(rng.normal(size=(300, 6)).astype(np.float32))
    gen = FeatureSet(rng.normal(size=(120, 6)).astype(np.float32) + 0.3)
    opts = fill_from(ScoreOptions, parse_params(tiny_params(evaluate={"pr_max_images": 50})).evaluate)
    assert pr_count(120, opts) == 50 and pr_count(30, opts) == 30
    got = get("pr")(gen, ref, opts, 7)
    real = ref.features[np.random.default_rng(7).permutation(300)[:50]]
    fake = gen.features[np.sort(np.random.default_rng(derive_seed(7, "pr_subset")).permutation(120)[:50])]
    assert got == dict(zip(("precision", "recall"), precision_recall(real, fake, opts.pr_k), strict=True))
    full = parse_params(tiny_params(evaluate={"pr_max_images": 1000})).evaluate
    unbounded = get("pr")(gen, ref, full, 7)  # below the cap: every scored image, as before
    real = ref.features[np.random.default_rng(7).permutation(300)[:120]]
    assert unbounded == dict(zip(("precision", "recall"), precision_recall(real, gen.features, 3), strict=True))


class MeanPixels:
    """A stand-in extractor: per-channel means and a few pixels as features."""

    kind, id, feature_dim = "classifier", "test:0", 4

    def __call__(self, images, desc=""):
        x = np.asarray(images[0:len(images)], np.float32)
        f = np.stack([x.mean(axis=(1, 2, 3)), x[:, 0, 0, 0], x[:, 0, 1, 1], x[:, 0, 2, 3]], 1)
        return f.astype(np.float32), f[:, :2].copy()


def test_reference_uses_at_most_max_images_per_split_and_train_reads_only_the_stats(tmp_path):
    from dcgan.metrics.fid import feature_stats
    from dcgan.metrics.reference import load_reference, subset_rows, write_reference

    rng = np.random.default_rng(6)
    for name, n in (("train", 40), ("holdout", 9)):
        np.save(tmp_path / f"{name}.npy", rng.integers(0, 256, (n, 1, 8, 8), dtype=np.uint8))
    meta = write_reference(tmp_path / "ev", MeanPixels(), tmp_path, max_images=12, seed=3)
    assert (meta["n_train_used"], meta["n_train"], meta["n_holdout_used"]) == (12, 40, 9)
    rows = subset_rows(40, 12, 3, "train")
    assert len(rows) == 12 and np.all(np.diff(rows) > 0) and not np.array_equal(rows, np.arange(12))
    ref, hold, _ = load_reference(tmp_path / "ev", tmp_path, "classifier")
    expected = MeanPixels()(np.load(tmp_path / "train.npy")[rows])[0]
    assert np.array_equal(ref.features, expected) and ref.features.dtype == np.float32
    assert all(np.array_equal(a, b) for a, b in zip((ref.mu, ref.sigma), feature_stats(expected), strict=True))
    assert len(hold.features) == 9
    stats_only, none, _ = load_reference(tmp_path / "ev", tmp_path, "classifier", features=False)
    assert stats_only.features is None and none is None and np.array_equal(stats_only.mu, ref.mu)


def test_in_training_fid_refuses_a_reference_made_by_another_extractor(tmp_path):
    """A reference from the classifier's embedding-only features (before issue 37), or from other
    weights, is refused with one line naming both ids, not a shape error mid-training."""
    import torch

    from dcgan.core.errors import UserError
    from dcgan.metrics.classifier import Classifier, ClassifierConfig, save_classifier
    from dcgan.metrics.reference import write_reference
    from dcgan.metrics.training_fid import make_fid_fn

    rng = np.random.default_rng(0)
    for name, n in (("train", 20), ("holdout", 6)):
        np.save(tmp_path / f"{name}.npy", rng.integers(0, 256, (n, 1, 8, 8), dtype=np.uint8))
    save_classifier(Classifier(ClassifierConfig(8, 1, 3, 4, 4)), tmp_path / "ev")
    old = type("Old", (MeanPixels,), {"id": "classifier:0123456789ab"})()
    write_reference(tmp_path / "ev", old, tmp_path, max_images=20, seed=0)
    with pytest.raises(UserError, match=r"made by classifier:0123456789ab, but the extractor is now "
                                        r"classifier-ms:\w+; rerun the evaluator stage"):
        make_fid_fn(str(tmp_path / "ev"), str(tmp_path), extractor="classifier", inception_weights="",
                    batch_size=8, samples=8, seed=0, device=torch.device("cpu"))


def test_auto_workers_decode_a_small_set_in_this_process():
    from dcgan.data.prepare import SMALL_SET, resolve_workers

    assert resolve_workers("auto", SMALL_SET - 1) == 1  # spawning a worker costs more than the set
    assert resolve_workers("auto", SMALL_SET) == resolve_workers("auto") >= 1
    assert resolve_workers(3, 10) == 3  # a count the user gave is kept
