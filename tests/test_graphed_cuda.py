"""train.compile graph on a CUDA device (skipped without one; benchmarks/gpu.sh runs these).

- fp32 with deterministic algorithms: the captured run against the eager one, within what
  rounding alone does (the eager run against itself with every weight moved by one ulp after
  step 1: the one-ulp control of tests/test_distributed.py).
- No host sync in steady state: replays under ``torch.cuda.set_sync_debug_mode("error")``.
- bf16: captured vs eager within the same control, measured in bf16.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from dcgan.app.recipe import gan_config
from dcgan.data.arrays import channel_stats
from tests.conftest import fit, tparams

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]
CUDA = torch.device("cuda")
OVER = {"diffaug": ("color", "translation", "cutout"), "gp_lambda": 1.0, "r1_gamma": 0.1, "reg_every": 2,
        "discriminators": 2, "d_aggregate": "softmax", "encoder": True, "latent_cycle_weight": 0.5,
        "ema_decay": 0.99, "ema_rampup": 0.05, "d_lr": 4e-4, "normalize": "meanstd", "channels_last": False}


def max_diff(a, b) -> float:
    sa, sb = a.state_dict(), b.state_dict()
    return max((sa[k].float() - sb[k].float()).abs().max().item() for k in sa if sa[k].is_floating_point())


def run(data, tmp_path, mode: str, precision: str, nudge: bool = False):
    p = tparams(epochs=2, compile=mode, precision=precision, **OVER)

    def nudged(step, nets):
        if nudge and step == 1:
            with torch.no_grad():
                for m in nets.values():
                    for t in (m.parameters() if m is not None else ()):
                        t.copy_(torch.nextafter(t, torch.full_like(t, float("inf"))))

    return fit(p, gan_config(p, 16, 1, channel_stats(data)), data, tmp_path / f"{mode}{precision}{nudge}",
               device=CUDA, on_step=nudged)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_captured_equals_eager_within_rounding(data, tmp_path, precision):
    if precision == "fp32":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        eager = run(data, tmp_path, "none", precision)
        control = run(data, tmp_path, "none", precision, nudge=True)
        graph = run(data, tmp_path, "graph", precision)
    finally:
        torch.use_deterministic_algorithms(False)
    bound = 4 * max(max_diff(eager.g, control.g), max_diff(eager.ds[0], control.ds[0]))
    gap = max(max_diff(eager.g, graph.g), max_diff(eager.ds[0], graph.ds[0]))
    print(f"{precision}: captured vs eager {gap:.3g}, one-ulp control {bound / 4:.3g}")
    assert gap <= bound


def test_replays_never_sync_with_the_host(data):
    from dcgan.app.recipe import train_settings
    from dcgan.training.distributed import SINGLE
    from dcgan.training.graphed import StaticStep
    from dcgan.training.inputs import draw_noise
    from dcgan.training.loop import epoch_order, make_objective, train_step
    from dcgan.training.nets import build_nets
    from dcgan.training.settings import Setup

    p = tparams(epochs=1, compile="graph", precision="bf16", **OVER)
    s = Setup(train_settings(p, batch_size=p.batch_size, precision=p.precision),
              gan_config(p, 16, 1, channel_stats(data)), 0, CUDA, SINGLE)
    nets = build_nets(s)
    static = StaticStep(s, nets, make_objective(s, nets), train_step)
    images = torch.from_numpy(np.asarray(data)).to(CUDA)
    order = epoch_order(0, 0, len(data)).to(CUDA)
    bs = p.batch_size
    for step in range(8):  # two kinds of step (reg_every 2): each eager once, warmed up, captured
        static(images[order[step * bs % 128:step * bs % 128 + bs]], draw_noise(s, step, bs), step, bs)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for step in range(8, 16):
            row = static(images[order[step * bs % 128:step * bs % 128 + bs]], draw_noise(s, step, bs), step, bs)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert torch.isfinite(row).all()
    assert all(k.graph is not None for k in static.kinds.values())
