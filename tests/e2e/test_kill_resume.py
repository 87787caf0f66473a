"""SIGKILL the train stage under `dvc repro` at several points; `dvc repro` resumes bitwise.

The reference is an uninterrupted `dvc repro`. One run is killed from inside (DCGAN_FAULTS) at
each point in turn, an exact step or halfway through a checkpoint write, each `dvc repro`
resuming what the last kill left; another is killed from outside at a moment the test picks.
Both finish with the reference's weights (hashes) and dvclive curves. The params switch on what a resume must restore: EMA (and
its BatchNorm buffers), DiffAugment and R1 draws, and a batch-size schedule that changes
mid-run.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import tiny_params
from tests.e2e.conftest import Project, make_project

pytestmark = pytest.mark.slow

# 480 images; batch 16 for steps 0-19, then 32: epoch 1 = 20 + 5 steps, later epochs 15 steps
PARAMS = tiny_params(train={"epochs": 3, "checkpoint_every": 4, "log_every": 2, "eval_every": 1,
                            "ema_decay": 0.9, "diffaug": ["translation", "color"], "r1_gamma": 0.1,
                            "batch_schedule": [[0, 16], [20, 32]], "lr_scaling": "linear",
                            # two discriminators (both in the checkpoint) and standardised inputs
                            "discriminators": 2, "d_aggregate": "softmax", "normalize": "meanstd"})
# model.json too: nothing run-dependent (like a wall time) may make a resumed model folder differ
WEIGHTS = ["generator.safetensors", "generator_best.safetensors", "discriminator.safetensors",
           "discriminator_1.safetensors", "model.json"]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def outcome(root: Path) -> dict[str, object]:
    """What must be identical: the weights, and every dvclive curve (step, value)."""
    out: dict[str, object] = {name: digest(root / "models/gan" / name) for name in WEIGHTS}
    for tsv in sorted((root / "dvclive/plots/metrics").rglob("*.tsv")):
        rows = [line.split("\t") for line in tsv.read_text().splitlines()]
        keep = [i for i, col in enumerate(rows[0]) if col != "timestamp"]
        out[str(tsv.relative_to(root))] = [[r[i] for i in keep] for r in rows]
    return out


def fresh_training(p: Project) -> None:
    """Forget the finished run: no checkpoints, no models, no curves."""
    for rel in ("checkpoints/train", "models/gan", "dvclive"):
        shutil.rmtree(p.root / rel, ignore_errors=True)


def repro_train(p: Project, faults: str = "") -> subprocess.CompletedProcess:
    env = dict(p.env, DCGAN_FAULTS=faults) if faults else p.env
    return subprocess.run(["dvc", "repro", "train"], cwd=p.root, env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Project, dict]:
    p = make_project(tmp_path_factory.mktemp("killresume"), PARAMS)
    p.dvc("repro", "train")
    return p, outcome(p.root)


# each kill comes later than the checkpoint the one before it left: every run resumes from there
KILLS = [
    "kill_after_step=1",        # before the first checkpoint: the next run starts over
    "kill_after_step=6",        # mid-epoch, between checkpoints
    "kill_in_checkpoint=8",     # half a checkpoint on disk, never renamed into place
    "kill_in_checkpoint=25",    # the end-of-epoch checkpoint, just after the batch size grew
    "kill_after_step=45",       # epoch 3, after two epochs of EMA/BN state and FID evaluations
]


def test_a_run_killed_at_every_point_in_turn_resumes_bitwise(reference):
    """One training run, killed five times (each kind of kill, each later than the last) and
    resumed each time from what the kill left: the finished run is the uninterrupted one."""
    p, expected = reference
    fresh_training(p)
    previous = ""
    for faults in KILLS:
        killed = repro_train(p, faults)
        out = killed.stdout + killed.stderr
        assert killed.returncode != 0, (faults, out)
        assert not (p.root / "models/gan/generator.safetensors").exists(), faults
        if previous and previous != "kill_after_step=1":  # a checkpoint was on disk: resumed from it
            assert "resuming from" in out, (faults, out)
        if previous.startswith("kill_in_checkpoint"):  # the half-written file never became a checkpoint
            step = int(previous.split("=")[1])
            assert f"ckpt-{step:09d}.pt is corrupt" not in out, out
        previous = faults
    resumed = repro_train(p)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resuming from" in resumed.stderr + resumed.stdout
    assert outcome(p.root) == expected


def test_external_sigkill_resumes_bitwise(reference):
    """SIGKILL from outside, once the second checkpoint is on disk (wherever training is then)."""
    p, expected = reference
    fresh_training(p)
    proc = subprocess.Popen(["dvc", "repro", "train"], cwd=p.root, env=p.env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    ckpts = p.root / "checkpoints/train"
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list(ckpts.glob("ckpt-*.pt"))) >= 2:
            break
        time.sleep(0.01)
    assert proc.poll() is None, "training finished before the test could kill it"
    os.killpg(proc.pid, signal.SIGKILL)  # dvc and the train stage under it
    proc.wait()
    resumed = repro_train(p)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resuming from" in resumed.stderr + resumed.stdout
    assert outcome(p.root) == expected


def test_a_retrain_s_checkpoints_outlive_its_temporary_copy(reference, tmp_path):
    """The retrain flow runs `dvc exp run --temp`, whose copy (and the checkpoints in it) vanish
    with a killed run; with DCGAN_CHECKPOINT_STORE set, the train stage keeps them outside it,
    under the run's fingerprint: the next attempt, in a new copy, resumes there (steps do not
    restart from 0) and ends with the uninterrupted run's weights."""
    p, expected = reference
    store = tmp_path / "store"

    def train(copy: str, faults: str = "") -> subprocess.CompletedProcess:
        out = tmp_path / copy  # a fresh folder per attempt, as each `dvc exp run --temp` copy is
        cmd = ["python", "-m", "dcgan.app.stages.train", "--out", str(out / "gan"),
               "--checkpoints", str(out / "ckpt"), "--live", str(out / "live")]
        env = {**p.env, "DCGAN_CHECKPOINT_STORE": str(store), **({"DCGAN_FAULTS": faults} if faults else {})}
        return subprocess.run(cmd, cwd=p.root, env=env, capture_output=True, text=True, timeout=600)

    killed = train("first", "kill_after_step=6")
    assert killed.returncode != 0 and not (tmp_path / "first/gan").exists(), killed.stderr
    [folder] = list(store.iterdir())  # one run, one fingerprint
    assert [c.name for c in folder.glob("ckpt-*.pt")] == ["ckpt-000000004.pt"]
    resumed = train("second")
    out = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, out
    assert f"resuming from {folder}/ckpt-000000004.pt" in out and "step 4" in out, out
    for name in WEIGHTS:
        assert digest(tmp_path / "second/gan" / name) == expected[name], name
    assert not folder.exists() and list((tmp_path / "second/ckpt").glob("ckpt-*.pt"))  # handed over
