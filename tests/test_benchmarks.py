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


# --- statistics over seeds (benchmarks/seedstats.py) and the ablation table --------------------


@pytest.fixture(scope="module")
def bench_modules():
    import sys

    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import ablation
        import seedstats
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    return seedstats, ablation


def test_spread_is_the_t_interval_and_welch_separates_only_real_gaps(bench_modules):
    st, _ = bench_modules
    s = st.spread([1.0, 2.0, 3.0])
    assert s.mean == 2.0 and s.n == 3
    assert s.half_width == pytest.approx(4.302653 * 1.0 / 3 ** 0.5, rel=1e-5)  # t(0.975, 2) * sd / sqrt(n)
    assert str(s) == "2 ± 2.5" and str(st.spread([4.0])) == "4 (1 seed)"
    assert st.welch_p([1.0, 1.1, 0.9], [5.0, 5.1, 4.9]) < 0.001
    assert st.welch_p([1.0, 2.0, 3.0], [1.5, 2.5, 2.0]) > 0.5
    assert st.welch_p([1.0], [2.0, 3.0]) != st.welch_p([1.0], [2.0, 3.0])  # nan: one seed
    assert st.verdict(0.01).startswith("differs") and st.verdict(0.3).startswith("within noise")


def run_entry(fids, iss, budget=80, drs=None):
    seeds = {}
    for i, (f, s) in enumerate(zip(fids, iss, strict=True)):
        m = {"fid": f, "is_mean": s, "kid_mean": 0.1, "precision": 0.7, "recall": 0.9,
             "fid_floor": 0.4, "is_mean_floor": 6.9, "protocol.n_samples": 359,
             "protocol.train_precision": "fp32"}
        if drs is not None:
            m["drs_acceptance_rate"] = drs
        seeds[str(i)] = {"metrics": m, "train_s": 80.0, "experiment": "abc"}
    return {"epochs": 17, "seconds_per_step": 0.11, "budget_s": budget, "seeds": seeds}


def test_ablation_table_reports_ci_welch_and_marks_single_seed_rows(bench_modules):
    _, ab = bench_modules
    runs = {
        "plain": run_entry([5.0, 5.2, 4.8], [3.5, 3.6, 3.4]),
        "hinge": run_entry([3.0, 3.1, 2.9], [4.0, 4.1, 3.9]),
        "default": run_entry([4.9, 5.3, 4.7], [3.5, 3.7, 3.5]),
        "ema": {"epochs": 23, "seconds_per_step": 0.165, "budget_s": 164, "train_s": 161,
                "metrics": run_entry([4.47], [3.6])["seeds"]["0"]["metrics"]},  # an old single-seed entry
    }
    text = ab.render(runs, "old table\n" + ab.NOTES + "\nWhy the default: kept.\n")
    rows = {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines() if line.startswith("| ")}
    assert "5 ± 0.5" in rows["plain DCGAN"] and "| — | — |" in rows["plain DCGAN"]
    assert "differs (p = " in rows["hinge loss"]
    assert rows["R1 γ 0.1 (the earlier default), DRS off"].count("within noise") == 2
    assert "4.47 (1 seed)" in rows["+ EMA generator (0.99)"]
    assert "n/a (other budget)" in rows["+ EMA generator (0.99)"]
    assert text.rstrip().endswith("Why the default: kept.") and "old table" not in text
