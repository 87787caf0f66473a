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
