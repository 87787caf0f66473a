"""Data-parallel training (issue 8): DDP under torchrun with gloo, 2 CPU processes.

How close DDP must come to one process at the same global batch, and why: with BatchNorm
synced (or no BatchNorm) the two runs compute the same step and differ only in the order fp32
sums are taken (the all-reduce adds two half-batch gradients; one process sums the whole
batch). Adam then amplifies those rounding differences: an element whose gradient is near zero
moves by up to a whole lr whatever the gradient's size, so the largest gap depends on the CPU's
kernels (6e-7 on an AVX2 EPYC, 2.7e-5 on an AVX-512 BF16 Xeon, same code). The bound is
therefore measured on the machine that runs the test: the control is the single-process run
with every weight moved by one float32 ulp after step 1 (a rounding-level change, amplified by
the same Adam steps). DDP must stay within RATIO x that control's gap (or FLOOR, whichever is
larger). Measured on the AVX-512 BF16 Xeon: sync BN with every feature, DDP 2.68e-5 vs control
2.68e-5; no BatchNorm, DDP 3.7e-9 vs control 7.5e-9. The bound still tells a wrong computation:
a single process at the half batch is 1.7e-3 away (65x that control), and the tests check that
it is beyond 10x the bound. Unsynced BatchNorm normalises each half batch by its own
statistics: a different computation, as far from the single process as the half batch is.
"""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dcgan.app.stages import augment, evaluator, prepare
from dcgan.app.stages._common import run
from tests.conftest import tiny_params, venv_env, write_params

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
WORKER = ROOT / "tests" / "dist_worker.py"
RATIO = 4.0
FLOOR = 1e-5  # the bound used before the control: it held on AVX2 (gaps up to 6e-7)
FEATURES = {"r1_gamma": 0.1, "reg_every": 2, "gp_lambda": 1.0, "encoder": True,
            "latent_cycle_weight": 0.5, "ema_decay": 0.9,
            # two discriminators (each under its own DDP wrapper), GMAN softmax, standardised inputs
            "discriminators": 2, "d_aggregate": "softmax", "normalize": "meanstd"}


def worker(out: Path, nproc: int, *args: str) -> dict:
    """The worker under torchrun with ``nproc`` processes, or for one process here, in this one."""
    if nproc == 1:
        from tests import dist_worker

        dist_worker.main([str(out), "--steps", "4", *args])
        return torch.load(out / "dist.pt")
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
    r = subprocess.run([*launcher, str(WORKER), str(out), "--steps", "4", *args],
                       capture_output=True, text=True, env=venv_env(), cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return torch.load(out / "dist.pt")


def max_diff(a: dict, b: dict) -> float:
    return max((x.float() - b[net][k].float()).abs().max().item()
               for net in a for k, x in a[net].items() if x.is_floating_point())


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    root = tmp_path_factory.mktemp("single")
    runs = {"bn": [], "features": ["--train", json.dumps(FEATURES)],
            "nonorm": ["--train", json.dumps({"g_norm": "none", "d_norm": "none"})], "half": ["--batch", "16"]}
    runs.update({f"{k}_nudged": ["--nudge", *runs[k]] for k in ("bn", "features", "nonorm")})
    return {name: worker(root / name, 1, *args) for name, args in runs.items()}


def bound(single: dict, name: str) -> float:
    """What rounding alone may do to config ``name`` on this machine: RATIO x the gap between
    its single-process run and the same run nudged by one ulp (at least FLOOR)."""
    control = max_diff(single[f"{name}_nudged"]["state"], single[name]["state"])
    assert control > 0  # the nudge reached the weights
    return max(RATIO * control, FLOOR)


def test_the_bound_tells_a_wrong_batch_from_rounding(single):
    wrong = max_diff(single["half"]["state"], single["bn"]["state"])
    assert wrong > 10 * max(bound(single, name) for name in ("bn", "features", "nonorm"))


def test_ranks_hold_identical_weights_after_every_step_and_match_one_process(tmp_path, single):
    """Synced BatchNorm, with R1 and WGAN-GP (double backward), an encoder (G called twice per
    step), EMA and two discriminators: every rank's parameters and buffers are equal after each step, and the
    result is the single-process run's within the rounding bound."""
    two = worker(tmp_path, 2, "--sync-bn", "--train", json.dumps(FEATURES))
    assert two["world_size"] == 2 and len(two["agree"]) == 4
    assert all(all(step.values()) for step in two["agree"]), two["agree"]
    assert max_diff(two["state"], single["features"]["state"]) < bound(single, "features")
    assert {"d", "d1"} <= set(two["state"]) and two["agree"][-1]["d1.parameters"]


def test_ada_moves_p_alike_on_every_rank_from_the_whole_batch(tmp_path):
    """ADA's r_t is the global batch's (the signs all-reduced every interval), so every rank
    moves p alike; each rank's own half batch would give another r_t."""
    ada = {"ada": "bgc", "ada_interval": 1, "ada_kimg": 0.1}
    two = worker(tmp_path, 2, "--sync-bn", "--train", json.dumps(ada))
    assert all(all(step.values()) for step in two["agree"]), two["agree"]
    first, second = two["ada"]
    assert first == second and first["r_t"] is not None
    assert first["p"] > 0 or first["r_t"] < 0.6  # p moved by the last r_t


def test_without_batchnorm_ddp_is_the_single_process_step(tmp_path, single):
    two = worker(tmp_path, 2, "--train", json.dumps({"g_norm": "none", "d_norm": "none"}))
    assert all(all(step.values()) for step in two["agree"])
    assert max_diff(two["state"], single["nonorm"]["state"]) < bound(single, "nonorm")


def test_unsynced_batchnorm_keeps_weights_equal_but_is_another_computation(tmp_path, single):
    two = worker(tmp_path, 2)
    # parameters equal on both ranks after every step (gradients all-reduced) ...
    assert all(s["g.parameters"] and s["d.parameters"] for s in two["agree"])
    # ... running statistics are each rank's own until DDP copies rank 0's at the next forward
    assert not all(s["g.buffers"] for s in two["agree"])
    diff = max_diff(two["state"], single["bn"]["state"])
    assert diff > 10 * bound(single, "bn")  # per-rank BatchNorm statistics are not the global ones


# --- the train stage under torchrun ---------------------------------------------------------


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def stage_dir(root: Path) -> Path:
    root.mkdir(parents=True)
    write_params(root / "params.yaml", tiny_params(
        train={"nproc": 2, "checkpoint_every": 4, "log_every": 2, "eval_every": 1, "eval_samples": 64}))
    cwd = os.getcwd()
    os.chdir(root)
    try:
        for stage in (prepare, augment, evaluator):
            assert run(stage.main, []) == 0
    finally:
        os.chdir(cwd)
    return root


def train_stage(root: Path, faults: str = "") -> subprocess.CompletedProcess:
    env = venv_env()
    env.pop("DCGAN_FAULTS", None)
    if faults:
        env["DCGAN_FAULTS"] = faults
    return subprocess.run([sys.executable, "-m", "dcgan.app.stages.train"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=600)


def test_train_stage_launches_torchrun_writes_one_set_of_outputs_and_resumes(tmp_path):
    full = stage_dir(tmp_path / "full")
    r = train_stage(full)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "2 processes under torchrun" in r.stderr and "2 processes (DDP, gloo)" in r.stderr
    assert r.stderr.count("train: 15 steps in") == 1  # rank 0 alone reports
    assert sorted(p.name for p in (full / "models/gan").iterdir()) == [
        "discriminator.safetensors", "generator.safetensors", "generator_best.safetensors", "model.json"]
    ckpts = sorted((full / "checkpoints/train").iterdir())
    assert [p.name for p in ckpts] == ["ckpt-000000012.pt", "ckpt-000000015.pt"]
    assert torch.load(ckpts[-1], weights_only=True)["world_size"] == 2
    rows = (full / "dvclive/plots/metrics/train/loss_g.tsv").read_text().splitlines()[1:]
    steps = [int(r.split("\t")[0]) for r in rows]
    assert steps == sorted(set(steps)) == list(range(2, 15, 2))  # logged once, not once per rank
    fid_rows = (full / "dvclive/plots/metrics/train/fid.tsv").read_text().splitlines()[1:]
    assert len(fid_rows) == 1
    assert not list(full.glob("dvclive*/**/*rank*")) and len(list(full.glob("dvclive*"))) == 1

    # killed after step 9 (a checkpoint at step 8), then run again: resumes and ends bit-identical
    cut = stage_dir(tmp_path / "cut")
    r = train_stage(cut, "kill_after_step=9")
    assert r.returncode != 0 and "failed" in r.stderr
    assert not (cut / "models/gan/generator.safetensors").exists()
    r = train_stage(cut)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resuming from" in r.stderr and "step 8" in r.stderr
    for f in ("generator.safetensors", "discriminator.safetensors", "generator_best.safetensors"):
        assert sha(cut / "models/gan" / f) == sha(full / "models/gan" / f), f
