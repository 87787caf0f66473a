"""Each DCGAN-recipe technique does what it claims (issue: training techniques)."""

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dcgan.app.recipe import gan_config
from dcgan.networks.gan import GANConfig, build, build_encoder, sample_prior
from dcgan.networks.sampling import discriminator_rejection_sampling, drs_scores, interpolation_grid
from dcgan.training import losses
from dcgan.training.diffaug import cutout, diff_augment, translation
from dcgan.training.ema import EMA, ramped_decay
from dcgan.training.schedule import batch_size_at, count_steps, images_before, lr_for
from tests.conftest import CPU, digest, fit, tparams

OFF = {"r1_gamma": 0.0, "ema_decay": 0.0, "ema_rampup": 0.0}  # plain DCGAN: the techniques the shipped params switch on, off


# 1. latent prior -------------------------------------------------------------------------
def test_priors():
    g = torch.Generator().manual_seed(0)
    z = sample_prior(20000, 8, "uniform", g)
    assert z.min() >= -1 and z.max() <= 1 and abs(z.mean()) < 0.02 and abs(z.var() - 1 / 3) < 0.01
    z = sample_prior(20000, 8, "normal", g)
    assert abs(z.mean()) < 0.02 and abs(z.std() - 1) < 0.02


# 2. losses and penalties --------------------------------------------------------------------
def test_adversarial_losses():
    r, f = torch.tensor([2.0, -1.0]), torch.tensor([0.5, -3.0])
    expected = F.binary_cross_entropy_with_logits(r, torch.ones(2)) + \
        F.binary_cross_entropy_with_logits(f, torch.zeros(2))
    torch.testing.assert_close(losses.d_loss("bce", r, f), expected)
    assert losses.d_loss("hinge", r, f).item() == pytest.approx((0 + 2) / 2 + (1.5 + 0) / 2)
    assert losses.d_loss("wgan", r, f).item() == pytest.approx(-1.25 - 0.5)
    torch.testing.assert_close(losses.g_loss("bce", f), F.binary_cross_entropy_with_logits(f, torch.ones(2)))
    assert losses.g_loss("hinge", f).item() == pytest.approx(1.25)


class Linear(nn.Module):
    """D(x) = w . x: its input gradient is w everywhere."""

    def __init__(self, w):
        super().__init__()
        self.w = nn.Parameter(w)

    def forward(self, x):
        return (x.flatten(1) * self.w).sum(1)


def test_r1_and_gradient_penalty_on_a_linear_critic():
    w = torch.full((1 * 4 * 4,), 0.5)  # |w| = 0.5 * 4 = 2
    d = Linear(w)
    x = torch.randn(3, 1, 4, 4)
    assert losses.r1_penalty(d, x).item() == pytest.approx(4.0)  # |w|^2
    gp = losses.gradient_penalty(d, x, torch.randn(3, 1, 4, 4), torch.rand(3, 1, 1, 1))
    assert gp.item() == pytest.approx(1.0)  # (|w| - 1)^2
    gp.backward()  # the penalty trains D: it pulls |w| toward 1
    assert (d.w.grad > 0).all()


def test_reconstruction_losses():
    a, b = torch.zeros(4), torch.tensor([0.0, 0.5, 1.0, 3.0])
    assert losses.reconstruction_loss("l1", a, b).item() == pytest.approx(4.5 / 4)
    assert losses.reconstruction_loss("l2", a, b).item() == pytest.approx((0.25 + 1 + 9) / 4)
    assert losses.reconstruction_loss("smooth_l1", a, b).item() == pytest.approx((0.125 + 0.5 + 2.5) / 4)


# 3./4. encoder, normalisation, spectral norm ---------------------------------------------
def test_encoder_maps_images_to_the_prior_space():
    for prior in ("normal", "uniform"):
        e = build_encoder(GANConfig(16, 1, 8, 4, 4, prior=prior))
        z = e(torch.randn(5, 1, 16, 16) * 3)
        assert z.shape == (5, 8)
        if prior == "uniform":
            assert z.abs().max() <= 1


@pytest.mark.parametrize("norm, layer", [("batch", nn.BatchNorm2d), ("instance", nn.InstanceNorm2d),
                                         ("none", None)])
def test_norm_choice(norm, layer):
    g, d = build(GANConfig(32, 1, 8, 4, 4, g_norm=norm, d_norm=norm))
    for net in (g, d):
        kinds = {type(m) for m in net.modules()}
        assert (nn.BatchNorm2d in kinds) == (layer is nn.BatchNorm2d)
        assert (nn.InstanceNorm2d in kinds) == (layer is nn.InstanceNorm2d)


def test_spectral_norm_bounds_each_d_layer():
    torch.manual_seed(0)
    _, d = build(GANConfig(32, 1, 8, 8, 8, d_spectral=True))
    d.train()
    for _ in range(30):  # power iterations run in training-mode forwards
        d(torch.randn(4, 1, 32, 32))
    convs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(nn.utils.parametrize.is_parametrized(c, "weight") for c in convs)
    for c in convs:
        sigma = torch.linalg.matrix_norm(c.weight.flatten(1), ord=2)
        assert sigma.item() == pytest.approx(1.0, abs=0.05)


# 5. DiffAugment ---------------------------------------------------------------------------
def test_diffaugment_is_seeded_differentiable_and_does_what_it_says():
    x = torch.rand(8, 3, 16, 16, requires_grad=True)
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    a = diff_augment(x, ("color", "translation", "cutout"), g1)
    torch.testing.assert_close(a, diff_augment(x, ("color", "translation", "cutout"), g2))
    a.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    # cutout zeroes a square of half the side: about a quarter of the pixels
    ones = torch.ones(64, 1, 16, 16)
    zeroed = (cutout(ones, torch.Generator().manual_seed(0)) == 0).float().mean().item()
    assert 0.15 < zeroed <= 0.25
    # translation moves content by whole pixels: a single bright pixel stays a single pixel
    dot = torch.zeros(32, 1, 16, 16)
    dot[:, :, 8, 8] = 1
    moved = translation(dot, torch.Generator().manual_seed(0))
    assert (moved.flatten(1).sum(1) == 1).all()
    assert len({int(m.flatten().argmax()) for m in moved}) > 1


def phase_after_d_loss(monkeypatch, obj, phase: list[str]) -> None:
    """Set ``phase[0]`` to "g" once the objective's D loss is computed: what a view recorder
    sees after that comes from G's update."""
    d_loss = obj.d_loss

    def d_then_g(*args):
        out = d_loss(*args)
        phase[0] = "g"
        return out

    monkeypatch.setattr(obj, "d_loss", d_then_g)


def test_diffaugment_sees_reals_and_fakes_in_the_d_step_and_fakes_in_the_g_step(monkeypatch, data):
    """DiffAugment's own rule (its README): the same policy on every image D sees, reals and
    fakes, in both updates; R1 then takes its gradient at the augmented reals."""
    from dcgan.training import batches as batches_module
    from dcgan.training.loop import train_step
    from tests.conftest import first_batch, frame

    p = tparams(diffaug=("color", "translation", "cutout"), r1_gamma=0.1, reg_every=1)
    s, nets, obj = frame(p, gan_config(p, 16, 1))
    b = first_batch(s, data, p.batch_size)
    seen, phase = [], ["d"]
    real = b.real

    def recording(x, policy, gen):
        kind = "real" if x.data_ptr() == real.data_ptr() else "fake"
        seen.append((phase[0], kind, policy))
        return diff_augment(x, policy, gen)

    monkeypatch.setattr(batches_module, "diff_augment", recording)
    phase_after_d_loss(monkeypatch, obj, phase)
    train_step(nets, obj, b)
    policy = ("color", "translation", "cutout")
    assert seen == [("d", "real", policy), ("d", "fake", policy), ("d", "real", policy),  # R1 on augmented reals
                    ("g", "fake", policy)]


def test_ada_sees_reals_and_fakes_in_the_d_step_and_fakes_in_the_g_step_and_tunes_on_the_reals(monkeypatch, data):
    """ADA's rule (Karras et al. 2020, figure 2): every image D sees passes through the same
    pipeline, reals and fakes, in both updates (R1 too); r_t counts D's signs on the reals."""
    from dcgan.training import ada as ada_module
    from dcgan.training.loop import train_step
    from tests.conftest import first_batch, frame

    p = tparams(ada="bg", r1_gamma=0.1, reg_every=1, discriminators=2)
    s, nets, obj = frame(p, gan_config(p, 16, 1))
    assert obj.ada is not None and float(obj.ada.p) == 0.0
    b = first_batch(s, data, p.batch_size)
    seen, phase = [], ["d"]
    real = b.real
    original = ada_module.ada_augment

    def recording(x, p_, spec, draws):
        seen.append((phase[0], "real" if x.data_ptr() == real.data_ptr() else "fake"))
        return original(x, p_, spec, draws)

    monkeypatch.setattr(ada_module, "ada_augment", recording)
    phase_after_d_loss(monkeypatch, obj, phase)
    train_step(nets, obj, b)
    per_d = [("d", "real"), ("d", "fake"), ("d", "real")]  # R1 on augmented reals
    assert seen == per_d + per_d + [("g", "fake"), ("g", "fake")]
    assert obj.ada.sums[1] == 2 * p.batch_size  # both discriminators' verdicts on the reals
    assert abs(float(obj.ada.sums[0])) <= 2 * p.batch_size


def test_ada_params_are_checked_and_name_the_key():
    from dcgan.app.params.typed import ConfigError
    from dcgan.app.params.whole import parse_params
    from tests.conftest import tiny_params

    with pytest.raises(ConfigError, match="train.ada.*bgcx"):
        parse_params(tiny_params(train={"ada": "bgcx"}))
    with pytest.raises(ConfigError, match="train.ada_target"):
        parse_params(tiny_params(train={"ada_target": 1.5}))


# 6. EMA -------------------------------------------------------------------------------------
def test_ema_averages_parameters_and_copies_buffers():
    net = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    ema = EMA(net, decay=0.9)
    start = net[0].weight.detach().clone()
    with torch.no_grad():
        net[0].weight.add_(1.0)
        net[1].running_mean.fill_(5.0)
    ema.update(net)
    torch.testing.assert_close(ema.model[0].weight, start + 0.1)
    torch.testing.assert_close(ema.model[1].running_mean, torch.full((2,), 5.0))
    assert not any(p.requires_grad for p in ema.model.parameters())


def test_ema_rampup_follows_stylegan2_ada():
    """beta = 0.5 ** (batch / min(half-life of the decay, rampup * images seen)): a copy at the
    first step, the fixed decay once training is long enough, and in between the half-life is
    the given share of the images seen."""
    assert ramped_decay(0.999, 0.0, 10_000, 64) == 0.999  # off: the fixed decay
    assert ramped_decay(0.999, 0.05, 0, 64) == 0.0  # step 0: the average starts as a copy
    # 880 steps of 64: half-life 0.05 * 56,320 = 2,816 images -> beta = 0.5 ** (64 / 2816)
    assert ramped_decay(0.999, 0.05, 880 * 64, 64) == pytest.approx(0.5 ** (64 / 2816))
    full = 64 * np.log(0.5) / np.log(0.999)  # the fixed decay's half-life: 44,329 images
    assert ramped_decay(0.999, 0.05, int(full / 0.05) + 64_000, 64) == pytest.approx(0.999)
    # what the ramp-up is for: the initial weights' share after 880 steps
    initial = np.prod([ramped_decay(0.999, 0.05, i * 64, 64) for i in range(880)])
    assert 0.999 ** 880 > 0.4 and initial < 1e-6


def test_ema_with_rampup_starts_as_a_copy_and_then_averages():
    net = nn.Sequential(nn.Linear(2, 2))
    ema = EMA(net, decay=0.999, rampup=0.05)
    with torch.no_grad():
        net[0].weight.add_(1.0)
    ema.set_images_seen(0, 64)
    ema.update(net)
    torch.testing.assert_close(ema.model[0].weight, net[0].weight)  # beta 0 at the first step
    before = ema.model[0].weight.detach().clone()
    with torch.no_grad():
        net[0].weight.add_(1.0)
    ema.set_images_seen(64 * 100, 64)
    ema.update(net)
    w = 1 - ramped_decay(0.999, 0.05, 6400, 64)
    torch.testing.assert_close(ema.model[0].weight, before + w * (net[0].weight - before))


def test_images_before_counts_every_scheduled_batch():
    schedule = ((0, 16), (3, 32), (5, 64))
    for step in range(9):
        assert images_before(step, schedule, 99) == sum(batch_size_at(i, schedule, 99) for i in range(step))
    assert images_before(7, (), 64) == 448


def test_ttur_gives_the_discriminators_their_own_lr_through_the_schedule(tmp_path, data):
    """train.d_lr: D's Adam runs at d_lr, G's at lr, and a scheduled batch size scales both alike."""
    from tests.conftest import frame

    p = tparams(lr=1e-4, d_lr=4e-4, batch_schedule=((0, 16), (2, 32)), lr_scaling="linear")
    _, nets, _ = frame(p, gan_config(p, 16, 1))
    assert nets.opt.g.param_groups[0]["lr"] == 1e-4 and nets.opt.ds[0].param_groups[0]["lr"] == 4e-4
    nets.opt.set_lr(2e-4)  # the schedule doubled the batch: linear scaling doubles both
    assert nets.opt.g.param_groups[0]["lr"] == 2e-4
    assert nets.opt.ds[0].param_groups[0]["lr"] == pytest.approx(8e-4)


# 7. batch-size schedule ---------------------------------------------------------------------
def test_batch_schedule_and_lr_rules():
    sched = ((0, 16), (10, 32), (30, 64))
    assert [batch_size_at(s, sched, 99) for s in (0, 9, 10, 29, 30, 1000)] == [16, 16, 32, 32, 64, 64]
    assert batch_size_at(5, (), 48) == 48
    assert lr_for(64, 16, 1e-4, "linear") == pytest.approx(4e-4)
    assert lr_for(64, 16, 1e-4, "sqrt") == pytest.approx(2e-4)
    assert lr_for(64, 16, 1e-4, "none") == pytest.approx(1e-4)
    # 100 images: epoch 1 takes 6 x 16 (steps 0-5); epoch 2 takes 4 x 16 (steps 6-9), then one
    # 32 (step 10) before the next 32 would overrun
    assert count_steps(100, 1, sched, 99) == 6
    assert count_steps(100, 2, sched, 99) == 6 + 5


def test_count_steps_closed_form_matches_stepping_through_every_epoch():
    def brute(n, epochs, schedule, default):
        step = 0
        for _ in range(epochs):
            offset = 0
            while offset + batch_size_at(step, schedule, default) <= n:
                offset += batch_size_at(step, schedule, default)
                step += 1
        return step

    rng = np.random.default_rng(0)
    for _ in range(200):
        n, epochs, default = int(rng.integers(20, 300)), int(rng.integers(1, 12)), int(rng.integers(1, 20))
        steps = sorted({0, *rng.integers(1, 60, int(rng.integers(0, 4))).tolist()})
        schedule = tuple((int(s), int(rng.integers(1, 20))) for s in steps) if rng.random() < 0.7 else ()
        assert count_steps(n, epochs, schedule, default) == brute(n, epochs, schedule, default)
    assert count_steps(4096, 10**6, (), 8) == 512 * 10**6  # instant, not half a billion iterations


def test_a_growing_batch_is_used_and_resume_stays_exact(tmp_path, data):
    p = tparams(epochs=3, batch_size=16, batch_schedule=((0, 16), (12, 32)), lr_scaling="sqrt",
                checkpoint_every=4, log_every=1)
    cfg = gan_config(p, 16, 1)
    seen = []

    class Rec:
        def metric(self, name, value, step):
            if name == "train/batch_size":
                seen.append((step, int(value)))

        def image(self, *a):
            pass

    full = fit(p, cfg, data, tmp_path / "a", "fp", logger=Rec())
    assert full.step == count_steps(160, 3, p.batch_schedule, 16)
    assert seen[0] == (1, 16) and seen[-1][1] == 32
    # interrupted after the schedule changed, mid-epoch
    fit(p, cfg, data, tmp_path / "b", "fp", stop_after=14)
    resumed = fit(p, cfg, data, tmp_path / "b", "fp")
    assert resumed.resumed_from_step == 12
    assert digest(resumed.g) == digest(full.g) and digest(resumed.ds[0]) == digest(full.ds[0])


# every switch changes what is trained, and resume stays exact with all of them on ----------
@pytest.fixture(scope="module")
def plain_run(tmp_path_factory, data):
    p = tparams(**OFF)
    return fit(p, gan_config(p, 16, 1), data, tmp_path_factory.mktemp("plain"), "fp")


@pytest.mark.parametrize("over", [
    {"prior": "uniform"},
    {"loss": "hinge"},
    {"loss": "wgan", "gp_lambda": 10.0, "d_norm": "instance"},
    {"r1_gamma": 1.0, "reg_every": 2},
    {"r1_gamma": 0.1, "reg_every": 4},  # the shipped R1
    {"d_spectral": True},
    {"g_norm": "none"},
    {"diffaug": ("color", "translation", "cutout")},
    {"ema_decay": 0.9},
    {"ema_decay": 0.999, "ema_rampup": 0.05},
    {"lr": 1e-4, "d_lr": 4e-4},
    {"encoder": True, "recon_loss": "smooth_l1", "latent_cycle_weight": 1.0},
    {"batch_schedule": ((0, 16), (3, 32)), "lr_scaling": "linear"},
])
def test_each_switch_changes_the_trained_model(tmp_path, data, plain_run, over):
    """Against the same run with the switch off: a switch that is silently ignored fails here."""
    p = tparams(**{**OFF, **over})
    r = fit(p, gan_config(p, 16, 1), data, tmp_path, "fp")
    # (EMA leaves D as it was: it averages G's weights, so the sampled G is what changes)
    assert digest(r.g) != digest(plain_run.g), over
    x = r.g(sample_prior(4, p.latent_dim, p.prior))
    assert torch.isfinite(x).all() and x.shape == (4, 1, 16, 16)
    if p.encoder:
        assert r.e is not None and r.e(x).shape == (4, p.latent_dim)


def test_resume_exact_with_every_technique_on(tmp_path, data):
    p = tparams(epochs=2, checkpoint_every=2, loss="hinge", r1_gamma=0.5, reg_every=2,
                diffaug=("color", "translation", "cutout"), ema_decay=0.99, ema_rampup=0.05, encoder=True,
                latent_cycle_weight=0.5, batch_schedule=((0, 16), (8, 32)), lr_scaling="linear")
    cfg = gan_config(p, 16, 1)
    full = fit(p, cfg, data, tmp_path / "a", "fp")
    fit(p, cfg, data, tmp_path / "b", "fp", stop_after=9)
    resumed = fit(p, cfg, data, tmp_path / "b", "fp")
    assert resumed.resumed_from_step == 8
    for a, b in ((full.g, resumed.g), (full.ds[0], resumed.ds[0]), (full.e, resumed.e), (full.g_raw, resumed.g_raw)):
        assert digest(a) == digest(b)
    assert digest(full.g) != digest(full.g_raw)  # the EMA generator is not the raw one


# 8. DRS ---------------------------------------------------------------------------------------
class TwoModes(nn.Module):
    """G: mode A (all +0.9) when z[0] > 0, else mode B (all -0.9): 50/50 under N(0, I)."""

    cfg = GANConfig(16, 1, 4, 1, 1)

    def forward(self, z):
        s = torch.where(z[:, :1] > 0, 0.9, -0.9)
        return s[:, :, None, None].expand(-1, 1, 16, 16)


class PrefersA(nn.Module):
    """An optimal D for p_data = 80% A / 20% B against p_g = 50/50: D = log(p_data / p_g)."""

    def forward(self, x):
        a = x.flatten(1).mean(1) > 0
        return torch.where(a, np.log(0.8 / 0.5), np.log(0.2 / 0.5)).float()


def test_drs_scores_give_the_density_ratio():
    logits = torch.tensor([0.0, -1.0, -3.0])
    p = torch.sigmoid(drs_scores(logits, max_logit=0.0))
    torch.testing.assert_close(p, torch.exp(logits.double() - 1e-6), rtol=1e-5, atol=1e-9)


def test_drs_corrects_the_mode_balance_by_the_expected_amount():
    res = discriminator_rejection_sampling(TwoModes(), PrefersA(), 4000, 4, seed=0, device=CPU,
                                           batch_size=500, burnin=500, percentile=None)
    share_a = (res.images.astype(float).mean(axis=(1, 2, 3)) > 127).mean()
    # exact rejection sampling: accepted share of A = 0.8 (binomial sd over 4000: 0.006)
    assert share_a == pytest.approx(0.8, abs=0.025)
    # acceptance = E_pg[r / r_max] = 0.5 * 1 + 0.5 * 0.25 = 0.625
    assert res.acceptance_rate == pytest.approx(0.625, abs=0.03)
    shifted = discriminator_rejection_sampling(TwoModes(), PrefersA(), 2000, 4, seed=0, device=CPU,
                                               batch_size=500, burnin=500, percentile=80.0)
    assert (shifted.images.astype(float).mean(axis=(1, 2, 3)) > 127).mean() > 0.5


# 9. interpolation -----------------------------------------------------------------------------
def test_interpolation_grid_endpoints_are_samples():
    g, _ = build(GANConfig(16, 1, 8, 4, 4))
    grid = interpolation_grid(g.eval(), 8, seed=0, device=CPU, rows=3, steps=5)
    assert grid.shape == (15, 1, 16, 16) and grid.dtype == np.uint8


def test_auto_batch_size_search():
    """The search on a measured peak (a line, like a conv net's memory in the batch, plus a
    fixed part): the largest multiple of 8 within the budget, found with few trials, never a
    trial that the line said would not fit; 0 when not even 16 fits; out-of-memory is a no."""
    from dcgan.training.autobatch import auto_batch_size, largest_within

    def line(fixed, per_image, oom_over=None):
        tried = []

        def peak(bs):
            tried.append(bs)
            if oom_over is not None and bs > oom_over:
                raise torch.OutOfMemoryError("CUDA out of memory")
            return fixed + per_image * bs
        return peak, tried

    peak, tried = line(1000, 10)
    best, measured = largest_within(peak, budget=10_000)
    assert best == 896 and 1000 + 10 * 896 <= 10_000 < 1000 + 10 * 904
    assert all(1000 + 10 * b <= 10_000 for b in tried[:-1]) and len(tried) <= 8, tried
    assert largest_within(line(0, 1)[0], budget=10**9, cap=4096)[0] == 4096
    assert largest_within(line(1000, 10)[0], budget=1100)[0] == 0
    # a step that takes more than the line says (cuDNN picks another algorithm): step down
    jump = lambda bs: 1000 + 10 * bs + (5000 if bs > 600 else 0)  # noqa: E731
    assert largest_within(jump, budget=10_000)[0] == 592  # 896, 784, 680 measured over; 592 fits
    peak, tried = line(1000, 10, oom_over=300)
    assert largest_within(peak, budget=10_000)[0] == 288  # 512 ran out of memory: 504 ... 336 too
    msgs = []
    assert auto_batch_size(None, CPU, 0, log=msgs.append) == 64 and "CPU" in msgs[0]
    # the training set, when it will live on the GPU, comes off the budget
    big, _ = line(1000, 10)
    with_data = auto_batch_size(None, torch.device("cuda"), 2_000, log=msgs.append, peak=big, free_bytes=12_000)
    without = auto_batch_size(None, torch.device("cuda"), 0, log=msgs.append, peak=big, free_bytes=12_000)
    assert with_data < without and "training set" in msgs[-2]


@pytest.mark.parametrize("mode", ["none", "graph"])
def test_an_auto_batch_trial_runs_the_runs_own_step(monkeypatch, mode):
    """A trial is the run's step: both kinds of lazy-R1 step four times each (on CUDA with the
    captured step: eager, warm-up, capture, replay), every discriminator and the encoder trained,
    through the static step when the run uses it."""
    from dcgan.app.recipe import make_run
    from dcgan.training import autobatch
    from dcgan.training.distributed import SINGLE
    from dcgan.training.graphed import StaticStep
    from dcgan.training.settings import Setup

    p = tparams(compile=mode, r1_gamma=0.1, reg_every=4, encoder=True, discriminators=2)
    s = Setup(make_run(p, gan_config(p, 16, 1), batch_size=16, precision="fp32"), 0, CPU, SINGLE)
    steps = autobatch.trial_steps(s)
    assert steps == [0, 1, 2, 3, 4, 5, 8, 12] and [s.run.objective.regularises(k) for k in steps].count(True) == 4
    calls = []

    class Counted(StaticStep):
        def __call__(self, raw, z, step, bs):
            calls.append((step, raw.shape[0]))
            return super().__call__(raw, z, step, bs)

    monkeypatch.setattr(autobatch, "StaticStep", Counted)
    autobatch.run_trial(s)
    assert calls == ([(k, 16) for k in steps] if mode == "graph" else [])
    assert autobatch.trial_steps(Setup(make_run(tparams(r1_gamma=0.0), gan_config(p, 16, 1), batch_size=16,
                                                precision="fp32"), 0, CPU, SINGLE)) == [0, 1, 2, 3]


def test_ema_batchnorm_statistics_are_recalibrated_for_the_averaged_weights():
    torch.manual_seed(0)
    g, _ = build(GANConfig(16, 1, 8, 4, 4))
    ema = EMA(g, decay=0.9)
    with torch.no_grad():  # averaged weights that no longer match the copied statistics
        for p in ema.model.parameters():
            p.mul_(3.0)
    z = lambda i: sample_prior(512, 8, "normal", torch.Generator().manual_seed(i))  # noqa: E731
    model = ema.recalibrated(z)
    assert not model.training
    bn = model.net[1]
    with torch.no_grad():
        h = model.net[0](z(99)[:, :, None, None])  # activations entering the first BatchNorm
    torch.testing.assert_close(bn.running_mean, h.mean(dim=(0, 2, 3)), rtol=0.1, atol=0.02)


# --- precision and memory format ---------------------------------------------------------------


def test_bf16_autocast_changes_the_arithmetic_but_keeps_fp32_state(tmp_path, data):
    p = tparams(epochs=1, precision="bf16", encoder=True, latent_cycle_weight=0.5)
    cfg = gan_config(p, 16, 1)
    r = fit(p, cfg, data, tmp_path / "bf16", "fp", stop_after=3)
    ref = fit(dataclasses.replace(p, precision="fp32"), cfg, data, tmp_path / "fp32", "fp", stop_after=3)
    for net in (r.g, *r.ds, r.e):
        assert all(t.dtype == torch.float32 for t in net.state_dict().values() if t.is_floating_point())
        assert all(torch.isfinite(t).all() for t in net.parameters())
    assert digest(r.g) != digest(ref.g)  # bf16 really ran
    # ... yet stays close to the fp32 run after a few steps (bf16 keeps fp32's exponent range)
    for a, b in zip(r.g.parameters(), ref.g.parameters(), strict=True):
        assert (a - b).abs().max() < 0.05
    from dcgan.training.checkpoint import load_latest

    state, _ = load_latest(tmp_path / "bf16")
    moments = [v for s in state["opt_g"]["state"].values() for v in s.values() if torch.is_tensor(v) and v.ndim]
    assert moments and all(m.dtype == torch.float32 for m in moments)


def test_fp16_needs_cuda(tmp_path, data):
    """The library says what is wrong with the value; the train stage's plan names the key."""
    from dcgan.app.recipe import plan_run
    from dcgan.core.errors import UserError

    p = tparams(precision="fp16")
    cfg = gan_config(p, 16, 1)
    with pytest.raises(UserError, match="^precision fp16 needs a CUDA device") as err:
        fit(p, cfg, data, tmp_path, "fp", stop_after=1)
    assert "train." not in str(err.value)
    with pytest.raises(UserError, match="^train.precision fp16 needs a CUDA device"):
        plan_run(p, data, 16, 1, None, CPU)


def test_channels_last_trains_the_same_model(tmp_path, data):
    from dcgan.networks.model_dir import ModelCard, load_generator, save_models

    p = tparams(epochs=1, r1_gamma=0.1, reg_every=1)
    cfg = gan_config(p, 16, 1)
    nhwc = fit(dataclasses.replace(p, channels_last=True), cfg, data, tmp_path / "a", "fp", stop_after=4)
    nchw = fit(dataclasses.replace(p, channels_last=False), cfg, data, tmp_path / "b", "fp", stop_after=4)

    def conv(net):  # one with several input channels: with one, both layouts are the same strides
        return next(m for m in net.modules() if isinstance(m, nn.Conv2d) and m.in_channels > 1).weight

    # each side really ran in its own layout (the shipped params turn channels_last on)
    assert conv(nhwc.ds[0]).is_contiguous(memory_format=torch.channels_last)
    assert conv(nchw.ds[0]).is_contiguous() and not conv(nchw.ds[0]).is_contiguous(memory_format=torch.channels_last)
    assert digest(nhwc.g) != digest(nchw.g)  # other summation order: not bit-identical
    for a, b in zip(nhwc.g.parameters(), nchw.g.parameters(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-3)  # same math, other summation order
    save_models(tmp_path / "m", ModelCard(cfg), nhwc.g, nhwc.ds)  # safetensors wants contiguous tensors
    loaded = load_generator(tmp_path / "m", CPU).state_dict()
    for k, v in nhwc.g.state_dict().items():
        assert torch.equal(loaded[k], v), k


@pytest.mark.slow
def test_compile_trains_the_same_model(tmp_path, data):
    """torch.compile (inductor, CPU here) with the R1 step (eager double backward) and an encoder:
    same model as eager within fp32 reordering, state dicts without compile's prefixes."""
    p = tparams(epochs=1, r1_gamma=0.1, reg_every=2, encoder=True)
    cfg = gan_config(p, 16, 1)
    comp = fit(dataclasses.replace(p, compile="default"), cfg, data, tmp_path / "a", "fp", stop_after=4)
    eager = fit(p, cfg, data, tmp_path / "b", "fp", stop_after=4)
    assert digest(comp.g) != digest(eager.g) or digest(comp.ds[0]) != digest(eager.ds[0])  # compiled code ran
    for net, x, y in (("g", comp.g, eager.g), ("d", comp.ds[0], eager.ds[0]), ("e", comp.e, eager.e)):
        a, b = x.state_dict(), y.state_dict()
        assert a.keys() == b.keys()  # no "_orig_mod." keys in models or checkpoints
        for k in a:
            torch.testing.assert_close(a[k], b[k], atol=1e-3, rtol=1e-3, msg=f"{net}.{k}")


def test_dataset_placement_rule():
    from dcgan.training.batches import dataset_fits, place_data

    assert dataset_fits(1 << 30, 8 << 30) and not dataset_fits(3 << 30, 8 << 30)
    x = np.zeros((4, 1, 8, 8), np.uint8)
    assert place_data(x, CPU, log=lambda m: None).data.device == CPU
