"""Shared fixtures: the shipped params with tiny overrides, and a place to run stages."""

from __future__ import annotations

import copy
import os
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]

# Seconds, not minutes: 16x16 digits, narrow nets, one epoch.
TINY = {
    "prepare": {"image_size": 16, "max_images": 300},
    "augment": {"copies": 1},
    "evaluator": {"epochs": 2, "width": 8, "feature_dim": 8, "batch_size": 64},
    "train": {"epochs": 1, "batch_size": 32, "g_width": 8, "d_width": 8, "latent_dim": 16,
              "log_every": 2, "checkpoint_every": 3, "sample_grid": 16, "eval_every": 1,
              "eval_samples": 40,
              # the number format is pinned: `auto` would be bf16 on CPUs with AVX-512 BF16 and
              # fp32 elsewhere; its resolution has tests of its own (test_precision.py)
              "precision": "fp32"},
    "sample": {"num_samples": 100, "batch_size": 50, "grid_size": 16},
    "evaluate": {"batch_size": 50, "is_splits": 5, "kid_subsets": 10, "kid_subset_size": 20,
                 "recon_images": 8, "recon_steps": 10, "recon_restarts": 2},
}


def shipped_params() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


def merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for section, values in over.items():
        out.setdefault(section, {}).update(values)
    return out


def tiny_params(**sections: dict) -> dict:
    """Shipped params + TINY + per-test section overrides (``train={"lr": 1e-3}``)."""
    return merge(merge(shipped_params(), TINY), sections)


def write_params(path: Path, params: dict) -> Path:
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary working directory holding a tiny params.yaml."""
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path / "params.yaml", tiny_params())
    return tmp_path


def venv_env() -> dict[str, str]:
    """Environment whose PATH finds this interpreter's python/dvc first (as `make` sets it)."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["DVC_NO_ANALYTICS"] = "1"
    return env
