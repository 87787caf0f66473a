"""ADA's augmentation (dcgan.training.ada): what it does to images, that it is differentiable and
draws the same numbers live and from a tape, and how its strength p is tuned. Its images are
checked bit for bit against the reference implementation by benchmarks/ada_reference.py (the
reference's licence keeps it out of this repository): reports/ada_reference.json."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from dcgan.training.ada import PIPELINES, AdaPipe, AdaSpec, AdaTuner, ada_augment
from dcgan.training.draws import Call, LiveDraws, Recorder, Schema, TapeDraws, rehearse

CPU = torch.device("cpu")
OFF = AdaSpec(xflip=0, rotate90=0, xint=0, scale=0, rotate=0, aniso=0, xfrac=0)


def smooth(n: int = 8, c: int = 3, s: int = 32, seed: int = 0) -> torch.Tensor:
    """Images without detail near the Nyquist frequency, in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, c, s // 4, s // 4, generator=g) * 2 - 1
    return torch.nn.functional.interpolate(low, size=(s, s), mode="bilinear", align_corners=False)


def live(seed: int = 0) -> LiveDraws:
    return LiveDraws(torch.Generator().manual_seed(seed), CPU)


def test_at_strength_zero_the_resampling_alone_leaves_smooth_images_nearly_as_they_were():
    x = smooth()
    y = ada_augment(x, 0.0, PIPELINES["bgc"], live())
    assert (y - x).abs().max() < 0.02  # the anti-aliasing filters, no transform
    assert (ada_augment(x, 1.0, PIPELINES["bgc"], live()) - x).abs().mean() > 0.2


def test_a_flip_at_strength_one_mirrors_about_half_the_images():
    x = smooth(n=64)
    y = ada_augment(x, 1.0, dataclasses.replace(OFF, xflip=1.0), live())
    same = ((y - x).abs().flatten(1).max(1).values < 1e-4)
    # the symlet filter is not symmetric: a mirror through it is a mirror to within ~0.04, as the
    # reference's (benchmarks/ada_reference.py: bit-identical)
    mirrored = ((y - x.flip(3)).abs().flatten(1).max(1).values < 0.1)
    assert bool((same ^ mirrored).all()) and 16 < int(mirrored.sum()) < 48


def test_colour_transforms_draw_no_hue_or_saturation_for_grey_images():
    calls: list[Call] = []
    spec = dataclasses.replace(OFF, brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1)
    ada_augment(smooth(c=1), 0.5, spec, Recorder(live(), ("ada", 0), calls))
    grey = len(calls)
    calls.clear()
    ada_augment(smooth(c=3), 0.5, spec, Recorder(live(), ("ada", 0), calls))
    assert grey == 6 and len(calls) == 10


def test_gradients_reach_the_images_and_the_tape_gives_the_live_images():
    x = smooth(n=4).requires_grad_(True)
    calls: list[Call] = []
    y = ada_augment(x, 0.7, PIPELINES["bgc"], Recorder(live(3), ("ada", 0), calls))
    y.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    schema = Schema(tuple(calls))
    n_f, n_i = schema.sizes()
    floats, ints = torch.empty(n_f), torch.empty(n_i, dtype=torch.long)
    rehearse(schema, lambda key: torch.Generator().manual_seed(3), floats, ints)
    again = ada_augment(x.detach(), 0.7, PIPELINES["bgc"], TapeDraws(schema, ("ada", 0), floats, ints))
    assert torch.equal(again, y.detach())
    assert any(c.kind == "randn" for c in calls)


def test_the_tuner_moves_p_by_the_sign_of_the_overfitting_heuristic():
    t = AdaTuner(target=0.6, interval=2, speed_images=1000)
    assert t.adjust(20.0, 20, 10) == pytest.approx(10 * 2 / 1000)  # r_t = 1 > 0.6: up
    assert t.adjust(6.0, 10, 5) == pytest.approx(10 * 2 / 1000)  # r_t = 0.6 exactly: no move
    assert t.adjust(-20.0, 20, 100) == 0.0  # r_t = -1: down by 0.2, never below 0
    assert t.r_t == -1.0


def test_the_pipe_sums_on_the_device_adjusts_every_interval_and_resumes_where_it_stood():
    pipe = AdaPipe("bgc", CPU, target=0.6, interval=2, kimg=1)
    pipe.observe(torch.tensor([3.0, 2.0, -1.0, 5.0]))  # signs sum 2 of 4
    assert not pipe.after_step(1, 10) and pipe.sums.tolist() == [2.0, 4.0]
    pipe.observe(torch.ones(4))
    assert pipe.after_step(2, 10)  # r_t = 6 / 8 > 0.6: up by 10 * 2 / 1000
    assert float(pipe.p) == pytest.approx(0.02) and pipe.sums.tolist() == [0.0, 0.0]
    pipe.observe(torch.ones(4))
    again = AdaPipe("bgc", CPU, target=0.6, interval=2, kimg=1)
    again.load_state_dict(pipe.state_dict())
    for q in (pipe, again):
        q.observe(-torch.ones(4))
        assert q.after_step(4, 10)  # r_t = 0 < 0.6: back down
    assert float(again.p) == float(pipe.p) == 0.0
    # under DDP the heuristic is the processes' mean, not this process's own sums
    local = AdaPipe("bgc", CPU, target=0.6, interval=1, kimg=1)
    local.observe(torch.ones(4))  # this rank alone: r_t = 1, up
    assert local.after_step(1, 10, all_mean=lambda t: torch.tensor([-4.0, 4.0]))
    assert local.tuner.r_t == -1.0 and float(local.p) == 0.0
    with pytest.raises(ValueError, match="unknown ADA pipeline 'bgcx'"):
        AdaPipe("bgcx", CPU)
