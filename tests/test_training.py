import dataclasses

import numpy as np
import pytest
import torch

from dcgan.core import files
from dcgan.training import checkpoint as ckpt
from tests.conftest import CPU, ScriptedFid, digest, fit, setup


def test_a_short_run_trains_and_logs(tmp_path, data):
    p, cfg = setup(epochs=2)
    logged: list[tuple[str, float, int]] = []

    class Rec:
        def metric(self, name, value, step):
            logged.append((name, value, step))

        def image(self, name, grid, step):
            logged.append((name, float(grid.shape[0]), step))

    r = fit(p, cfg, data, tmp_path, "fp", logger=Rec())
    steps = 2 * (160 // p.batch_size)
    assert r.step == steps and r.epoch == 2
    losses = [v for n, v, _ in logged if n == "train/loss_d"]
    assert len(losses) == steps // p.log_every and all(np.isfinite(losses))
    assert [s for n, _, s in logged if n == "fixed_noise.png"] == [steps // 2, steps]
    assert ckpt.list_checkpoints(tmp_path)  # checkpoints were written
    assert len(ckpt.list_checkpoints(tmp_path)) <= ckpt.KEEP


def test_resume_is_bitwise_identical_to_an_uninterrupted_run(tmp_path, data):
    p, cfg = setup(epochs=2, checkpoint_every=2)
    full = fit(p, cfg, data, tmp_path / "a", "fp")
    # interrupted after step 7: the last checkpoint is at step 6 (mid-epoch 1 of 2)
    part = fit(p, cfg, data, tmp_path / "b", "fp", stop_after=7)
    assert part.step == 7
    msgs: list[str] = []
    resumed = fit(p, cfg, data, tmp_path / "b", "fp", log=msgs.append)
    assert resumed.resumed_from_step == 6 and any("resuming" in m for m in msgs)
    assert resumed.step == full.step
    assert digest(resumed.g) == digest(full.g)
    assert digest(resumed.ds[0]) == digest(full.ds[0])


def test_an_ada_run_tunes_p_and_resumes_bitwise_with_it(tmp_path, data):
    """ADA's p moves with D's verdicts (here: fast, 0.05k images from 0 to 1), is kept in the
    checkpoints, and a resumed run goes on from the p and the half-summed interval it stopped at."""
    p, _ = setup(epochs=2, checkpoint_every=10)
    p = dataclasses.replace(p, ada="bgc", ada_interval=2, ada_kimg=0.05)
    _, cfg = setup()
    logged: list[tuple[str, float, int]] = []

    class Rec:
        def metric(self, name, value, step):
            logged.append((name, value, step))

        def image(self, name, grid, step):
            pass

    full = fit(p, cfg, data, tmp_path / "a", "fp", logger=Rec())
    ps = [v for n, v, _ in logged if n == "train/ada_p"]
    assert full.ada is not None and full.ada["p"] == ps[-1] and len(ps) >= 2 and len(set(ps)) > 1  # p moved
    part = fit(p, cfg, data, tmp_path / "b", "fp", stop_after=7)  # the last checkpoint: epoch 1's end, step 5
    state = torch.load(ckpt.list_checkpoints(tmp_path / "b")[0], weights_only=True)
    assert state["step"] == 5 and set(state["ada"]) == {"p", "r_t", "sums"}
    assert float(state["ada"]["sums"][1]) == p.batch_size  # step 5 of an interval of 2: half summed
    assert part.step == 7
    resumed = fit(p, cfg, data, tmp_path / "b", "fp")
    assert resumed.resumed_from_step == 5 and resumed.ada == full.ada
    assert digest(resumed.g) == digest(full.g) and digest(resumed.ds[0]) == digest(full.ds[0])
    plain = fit(dataclasses.replace(p, ada="none"), cfg, data, tmp_path / "c", "fp")
    assert plain.ada is None and digest(plain.g) != digest(full.g)


def test_a_different_seed_gives_different_weights(tmp_path, data):
    p, cfg = setup()
    a = fit(p, cfg, data, tmp_path / "a", "fp")
    b = fit(p, cfg, data, tmp_path / "b", "fp", seed=1)
    assert digest(a.g) != digest(b.g)


def test_checkpoint_from_other_params_is_not_resumed(tmp_path, data):
    p, cfg = setup(checkpoint_every=2)
    fit(p, cfg, data, tmp_path, "old-run", stop_after=3)
    msgs: list[str] = []
    r = fit(p, cfg, data, tmp_path, "new-run", log=msgs.append)
    fresh = fit(p, cfg, data, tmp_path / "fresh", "new-run")
    assert r.resumed_from_step is None
    assert any("other training params" in m for m in msgs)
    assert digest(r.g) == digest(fresh.g)


def test_a_refused_resume_names_the_changed_keys(tmp_path, data):
    """Checkpoints keep the fingerprint's inputs, so the message says what changed."""
    p, cfg = setup(checkpoint_every=2)
    images = tmp_path / "train.npy"
    np.save(images, data)
    fp = ckpt.fingerprint(dataclasses.asdict(p), 0, files.file_digest(images), fid_extractor="classifier:abc")
    fit(p, cfg, data, tmp_path / "c", fp, stop_after=3)
    assert ckpt.load_latest(tmp_path / "c")[0]["fingerprint_inputs"]["train.lr"] == p.lr
    same: list[str] = []
    r = fit(p, cfg, data, tmp_path / "c", dict(fp), log=same.append, stop_after=4)
    assert r.resumed_from_step == 2  # an equal fingerprint resumes
    q = dataclasses.replace(p, lr=1e-3, beta1=0.0)
    fp2 = ckpt.fingerprint(dataclasses.asdict(q), 0, files.file_digest(images), fid_extractor="classifier:abc")
    msgs: list[str] = []
    fit(q, cfg, data, tmp_path / "c", fp2, log=msgs.append, stop_after=1)
    assert any(f"(changed: train.beta1 0.5 -> 0.0, train.lr {p.lr!r} -> 0.001); training from scratch" in m
               for m in msgs), msgs
    assert ckpt.changed_keys({"code": "a", "seed": 0}, {"code": "b", "seed": 1}) == "code, seed 0 -> 1"


def test_corrupt_newest_checkpoint_falls_back_to_the_previous(tmp_path, data):
    p, cfg = setup(checkpoint_every=1)
    fit(p, cfg, data, tmp_path, "fp", stop_after=3)
    newest, previous = ckpt.list_checkpoints(tmp_path)
    newest.write_bytes(newest.read_bytes()[:100])  # truncated, as by a crash mid-write
    msgs: list[str] = []
    state, path = ckpt.load_latest(tmp_path, warn=msgs.append)
    assert path == previous and state["step"] == 2
    assert len(msgs) == 1 and newest.name in msgs[0] and "corrupt" in msgs[0]


def test_checkpoints_load_without_unpickling_code(tmp_path):
    import pickle

    class Evil:
        def __reduce__(self):
            import os

            return (os.system, (f"touch {tmp_path}/pwned",))

    (tmp_path / "ckpt-000000005.pt").write_bytes(pickle.dumps({"fingerprint": Evil()}))
    msgs: list[str] = []
    state, path = ckpt.load_latest(tmp_path, warn=msgs.append)
    assert state is None and not (tmp_path / "pwned").exists()
    assert "unsafe" in msgs[0]


def test_best_generator_is_the_one_with_the_lowest_fid(tmp_path, data):
    p, cfg = setup(epochs=3, eval_every=1)
    fid = ScriptedFid([5.0, 3.0, 4.0])
    r = fit(p, cfg, data, tmp_path, "fp", fid_fn=fid)
    steps_per_epoch = 160 // p.batch_size
    assert r.best_fid == 3.0 and r.best_step == 2 * steps_per_epoch
    best = type(r.g)(cfg)
    best.load_state_dict(r.g_best)
    assert digest(best.eval()) == fid.digests[1] != digest(r.g)


def test_fid_every_n_epochs_and_after_the_last(tmp_path, data):
    p, cfg = setup(epochs=3, eval_every=2)
    fid = ScriptedFid([2.0, 1.0])
    r = fit(p, cfg, data, tmp_path, "fp", fid_fn=fid)
    assert len(fid.digests) == 2 and r.best_fid == 1.0 and r.best_step == r.step  # epochs 2 and 3


def test_in_training_fids_never_change_a_trained_weight(tmp_path, data):
    """Each in-training FID draws G's samples from its own noise, with G in eval mode, so how
    often it runs (train.eval_every, stretched with the epochs by train.min_images) changes the
    wall time and the kept best generator, never the weights the run ends with. The check can
    fail: a draw with G in train mode (its batch-norm statistics move) changes the run."""
    from dcgan.networks.sampling import generate

    p, cfg = setup(epochs=3, eval_every=1, ema_decay=0.0)

    def eval_mode(g):
        return float(generate(g, 64, cfg.latent_dim, 7, CPU).mean())

    def train_mode(g):  # a slip
        g.train()
        g(torch.randn(8, cfg.latent_dim, 1, 1, generator=torch.Generator().manual_seed(7)))
        return eval_mode(g)

    runs = {name: fit(p, cfg, data, tmp_path / name, "fp", fid_fn=fn)
            for name, fn in (("none", None), ("eval", eval_mode), ("train", train_mode))}
    ends = {name: (digest(r.g), digest(r.ds[0])) for name, r in runs.items()}
    assert ends["eval"] == ends["none"]
    assert ends["train"] != ends["none"]


def test_resume_keeps_the_best_generator(tmp_path, data):
    p, cfg = setup(epochs=3, eval_every=1, checkpoint_every=2)
    full = fit(p, cfg, data, tmp_path / "a", "fp", fid_fn=ScriptedFid([3.0, 5.0, 4.0]))
    fit(p, cfg, data, tmp_path / "b", "fp", fid_fn=ScriptedFid([3.0, 5.0]), stop_after=12)
    resumed = fit(p, cfg, data, tmp_path / "b", "fp", fid_fn=ScriptedFid([4.0]))
    assert resumed.resumed_from_step is not None
    assert (resumed.best_fid, resumed.best_step) == (full.best_fid, full.best_step) == (3.0, 5)
    assert all(torch.equal(resumed.g_best[k], full.g_best[k]) for k in full.g_best)


def test_divergence_stops_naming_the_step_and_loss_and_keeps_the_checkpoints(tmp_path, data):
    from dcgan.training.loop import TrainingDiverged

    p, cfg = setup(epochs=3, checkpoint_every=1, log_every=2)
    fit(p, cfg, data, tmp_path, "fp", stop_after=4)
    before = {c.name: c.read_bytes() for c in ckpt.list_checkpoints(tmp_path)}
    assert sorted(before) == ["ckpt-000000003.pt", "ckpt-000000004.pt"]
    # same run identity, absurd learning rate: G's weights blow up within a step or two
    with pytest.raises(TrainingDiverged) as exc:
        fit(dataclasses.replace(p, lr=1e30), cfg, data, tmp_path, "fp")
    msg = str(exc.value)
    assert msg.startswith("training diverged at step 5: ") and "=nan" in msg, msg
    assert "ckpt-000000004.pt is left as it was" in msg
    after = {c.name: c.read_bytes() for c in ckpt.list_checkpoints(tmp_path)}
    assert after == before  # nothing newer written, nothing overwritten


def test_checkpoint_from_another_world_size_is_refused_and_kept(tmp_path, data):
    from dcgan.core.errors import UserError

    p, cfg = setup(checkpoint_every=2)
    fit(p, cfg, data, tmp_path, "run", stop_after=2)
    path = ckpt.list_checkpoints(tmp_path)[0]
    state = torch.load(path, weights_only=True)
    assert state["world_size"] == 1
    state["world_size"] = 2
    torch.save(state, path)
    before = path.read_bytes()
    with pytest.raises(UserError, match=r"^nproc is 1, but .* saved by 2 processes and this run has 1: resume "
                                         r"with nproc: 2"):
        fit(p, cfg, data, tmp_path, "run")
    assert path.read_bytes() == before


def test_a_torchrun_world_that_is_not_train_nproc_is_refused(monkeypatch):
    from dcgan.app.params.typed import keyed
    from dcgan.core.errors import UserError
    from dcgan.training.distributed import init_from_env

    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(UserError, match="^nproc is 1 but this process runs in a torchrun world of 2: set nproc: 2"):
        init_from_env(CPU, 1)
    # the library names its own setting; the train stage names the key the value came from
    with pytest.raises(UserError, match="^train.nproc is 1 but .* world of 2: set train.nproc: 2, or let"):
        with keyed("train"):
            init_from_env(CPU, 1)
