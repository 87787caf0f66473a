"""The speed harness compares like with like and runs (numbers come from running it, not tests)."""

from __future__ import annotations

import dataclasses
import importlib.util
import os

import numpy as np
import pytest

from dcgan.config import parse_params
from dcgan.models import GANConfig, build
from tests.conftest import REPO, tiny_params


@pytest.fixture(scope="module")
def harness():
    before = os.environ.get("TQDM_DISABLE")
    spec = importlib.util.spec_from_file_location("train_speed", REPO / "benchmarks/train_speed.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    if before is None:
        os.environ.pop("TQDM_DISABLE", None)
    return mod


def n_params(m) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize(("size", "channels", "width", "nz"), [(64, 3, 64, 100), (32, 1, 32, 64)])
def test_reference_networks_match_the_project_architecture(harness, size, channels, width, nz):
    g, d = build(GANConfig(size, channels, nz, width, width))
    assert n_params(harness.RefGenerator(nz, width, channels, size)) == n_params(g)
    assert n_params(harness.RefDiscriminator(width, channels, size)) == n_params(d)


def test_both_loops_run_and_report_images_per_second(harness):
    images = np.random.default_rng(0).integers(0, 256, (64, 1, 16, 16), dtype=np.uint8)
    ref = harness.Reference(images, nz=16, ngf=8, ndf=8, batch=16)
    assert ref.images_per_s(warmup=1, steps=2) > 0
    assert all(np.isfinite(ref.last))
    p = dataclasses.replace(parse_params(tiny_params()).train, batch_size=16)
    cfg = GANConfig(16, 1, p.latent_dim, p.g_width, p.d_width)
    assert harness.project_images_per_s(p, cfg, images, warmup=2, steps=2, seed=0) > 0


@pytest.mark.slow
def test_scaling_benchmark_runs_one_and_two_processes(tmp_path):
    """benchmarks/scaling.py end to end on tiny params (numbers come from running it, not here)."""
    import subprocess
    import sys

    from tests.conftest import venv_env, write_params

    params = write_params(tmp_path / "params.yaml", tiny_params())
    r = subprocess.run([sys.executable, str(REPO / "benchmarks/scaling.py"), "--params", str(params),
                        "--nproc", "1", "2", "--per-proc-batch", "8", "--steps", "2", "--warmup", "1",
                        "--rounds", "1"], capture_output=True, text=True, env=venv_env(), timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = [ln for ln in r.stdout.splitlines() if ln.startswith("| 1 |") or ln.startswith("| 2 |")]
    assert len(rows) == 2 and rows[0].endswith("| 1.00x | 100% |"), r.stdout


def test_timed_window_holds_no_epoch_end_and_refuses_one(harness):
    p = dataclasses.replace(parse_params(tiny_params()).train, batch_size=16)
    cfg = GANConfig(16, 1, p.latent_dim, p.g_width, p.d_width)
    n = harness.images_for(16, warmup=2, steps=40)
    assert n >= (2 + 40 + 1) * 16
    images = np.random.default_rng(0).integers(0, 256, (n, 1, 16, 16), dtype=np.uint8)
    assert harness.timed_window(p, cfg, images, warmup=2, steps=40)[1] == 0
    short = images[:48]  # 3 steps per epoch: epoch ends fall inside the window
    assert harness.timed_window(p, cfg, short, warmup=2, steps=4)[1] == 1  # at step 3 (6 stops the run)
    with pytest.raises(ValueError, match="epoch end"):
        harness.project_images_per_s(p, cfg, short, warmup=2, steps=4, seed=0)
