"""Mean/std input normalisation and several discriminators (GMAN) (issue 16)."""

import dataclasses

import numpy as np
import pytest
import torch

from dcgan.app.params.whole import parse_params
from dcgan.app.recipe import gan_config
from dcgan.core.errors import ConfigError, UserError
from dcgan.core.pixels import to_uint8, to_unit
from dcgan.networks.gan import Discriminator, MeanLogit, build, pixels_of, to_network, to_pixels
from dcgan.networks.model_dir import (
    ModelCard,
    discriminator_file,
    load_config,
    load_discriminator,
    load_generator,
    save_models,
)
from dcgan.networks.sampling import discriminator_rejection_sampling, generate
from dcgan.training.loop import train_step
from dcgan.training.objective import aggregate
from tests.conftest import CPU, digest, first_batch, fit, frame, tiny_params, tparams
from tests.helpers import channel_stats

DIGITS = ([0.3049746017582972], [0.323406848645135])  # data/prepared/meta.json of the default dataset
CIFAR = ([0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616])


# 1. mean/std normalisation ----------------------------------------------------------------------
@pytest.mark.parametrize("normalize, stats, channels", [
    ("range", None, 1), ("meanstd", DIGITS, 1), ("meanstd", CIFAR, 3),
    ("meanstd", ([0.02], [0.01]), 1),  # a dark dataset: the standardised range is far from [-1, 1]
])
def test_every_uint8_value_round_trips_exactly(normalize, stats, channels):
    cfg = gan_config(tparams(normalize=normalize), 16, channels, stats)
    u = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16).repeat(2, channels, 1, 1)
    net = to_network(to_unit(u), cfg)
    assert torch.equal(to_uint8(to_pixels(net, cfg)), u)
    if normalize == "range":
        assert torch.equal(net, to_unit(u))
    else:  # what D sees: (x01 - mean) / std per channel
        x01 = u.double() / 255
        want = (x01 - torch.tensor(stats[0]).view(1, -1, 1, 1)) / torch.tensor(stats[1]).view(1, -1, 1, 1)
        assert torch.allclose(net.double(), want, atol=1e-5)


def test_meanstd_generator_output_covers_the_standardised_range_and_samples_round_trip(tmp_path):
    """G's tanh is mapped affinely onto the normalised range: its extremes are the standardised
    values of pixels 0 and 255. With the same weights, a meanstd G samples exactly the uint8
    images that a range G does, and a sample re-read as data maps back to itself."""
    p = tparams(normalize="meanstd")
    cfg = gan_config(p, 16, 1, DIGITS)
    cfg_range = gan_config(tparams(), 16, 1)
    torch.manual_seed(0)
    g, _ = build(cfg)
    g_range, _ = build(cfg_range)
    g_range.load_state_dict(g.state_dict())  # no extra weights: the map is fixed, not learnt
    g.eval(), g_range.eval()
    ends = g.net[-1](torch.tensor([-1.0, 1.0]).view(2, 1, 1, 1))
    assert torch.allclose(ends.flatten(), to_network(torch.tensor([-1.0, 1.0]).view(2, 1, 1, 1), cfg).flatten())
    assert ends.min() < -0.9 and ends.max() > 2.1  # (0 - 0.305) / 0.323 and (1 - 0.305) / 0.323
    a = generate(g, 64, p.latent_dim, 0, CPU, 32)
    b = generate(g_range, 64, p.latent_dim, 0, CPU, 32)
    assert a.dtype == np.uint8 and np.array_equal(a, b)
    again = to_uint8(pixels_of(g, to_network(to_unit(torch.from_numpy(a)), cfg))).numpy()
    assert np.array_equal(again, a)
    # the config travels with the weights: a reloaded G samples the same images
    save_models(tmp_path, ModelCard(cfg), g, [Discriminator(cfg)])
    assert load_config(tmp_path) == cfg and load_config(tmp_path).mean == tuple(DIGITS[0])
    assert np.array_equal(generate(load_generator(tmp_path), 64, p.latent_dim, 0, CPU, 32), a)


def test_d_sees_standardised_reals(data):
    p = tparams(normalize="meanstd", batch_size=160)
    cfg = gan_config(p, 16, 1, channel_stats(data))
    s, _, _ = frame(p, cfg)
    b = first_batch(s, data, len(data))
    assert abs(float(b.real.mean())) < 1e-5 and abs(float(b.real.std(unbiased=False)) - 1) < 1e-4
    b_range = first_batch(frame(tparams(batch_size=160), gan_config(tparams(), 16, 1))[0], data, 160)
    assert float(b_range.real.min()) == -1.0 and float(b_range.real.max()) <= 1.0


def test_meanstd_needs_valid_stats():
    p = tparams(normalize="meanstd")
    with pytest.raises(UserError, match="needs the dataset's per-channel mean and std"):
        gan_config(p, 16, 1)
    with pytest.raises(UserError, match="std > 0"):
        gan_config(p, 16, 1, ([0.5], [0.0]))
    with pytest.raises(UserError, match="3 per-channel means"):
        gan_config(p, 16, 3, DIGITS)
    raw = tiny_params()
    raw["train"]["normalize"] = "zscore"
    with pytest.raises(ConfigError, match="train.normalize must be one of range, meanstd"):
        parse_params(raw)


def test_train_stage_reads_the_stats_from_meta_json(tmp_path):
    from dcgan.app.stages.train import dataset_stats
    from dcgan.core import files

    assert dataset_stats(tmp_path, "range") is None  # not read at all
    with pytest.raises(UserError, match=r"meta.json \(written by the prepare stage\)"):
        dataset_stats(tmp_path, "meanstd")
    files.write_json(tmp_path / "meta.json", {"mean": DIGITS[0], "std": DIGITS[1]})
    assert dataset_stats(tmp_path, "meanstd") == DIGITS


# 2. several discriminators ----------------------------------------------------------------------
def test_aggregate():
    losses = [torch.tensor(1.0, requires_grad=True), torch.tensor(3.0, requires_grad=True)]
    one = losses[0]
    assert aggregate("softmax", [one], 1.0) is one  # K = 1: the single-D loss itself
    with torch.no_grad():
        assert float(aggregate("mean", losses, 1.0)) == 2.0
        assert float(aggregate("max", losses, 1.0)) == 3.0
        assert float(aggregate("softmax", losses, 0.0)) == pytest.approx(2.0)  # temperature 0: mean
        assert float(aggregate("softmax", losses, 50.0)) == pytest.approx(3.0)  # large: the max
    w = torch.softmax(torch.tensor([1.0, 3.0]), 0)
    soft = aggregate("softmax", losses, 1.0)
    assert float(soft.detach()) == pytest.approx(float(w @ torch.tensor([1.0, 3.0])))
    soft.backward()  # the weights are constants in the gradient
    assert [float(t.grad) for t in losses] == pytest.approx(w.tolist())
    for t in losses:
        t.grad = None
    aggregate("max", losses, 1.0).backward()  # G answers the strictest D alone
    assert [float(t.grad) for t in losses] == [0.0, 1.0]
    # the weights follow the losses every rank agrees on (DDP: their all-reduced mean), not the local ones
    with torch.no_grad():
        assert float(aggregate("softmax", losses, 1.0, lambda t: torch.zeros_like(t))) == pytest.approx(2.0)
        assert float(aggregate("max", losses, 1.0, lambda t: -t)) == 1.0


def test_ensemble_members_are_independent_and_d0_is_the_single_d(data):
    one = frame(tparams(), gan_config(tparams(), 16, 1))[1]
    p = tparams(discriminators=3)
    three = frame(p, gan_config(p, 16, 1))[1]
    assert len(three.ds) == len(three.opt.ds) == 3
    assert digest(three.ds[0]) == digest(one.ds[0]) and digest(three.g) == digest(one.g)
    assert len({digest(d) for d in three.ds}) == 3
    assert len({id(o) for o in three.opt.ds}) == 3


def test_each_discriminator_has_its_own_augment_draws_and_penalties(data):
    p = tparams(discriminators=2, diffaug=("translation", "cutout"), batch_size=32)
    cfg = gan_config(p, 16, 1)
    b = first_batch(frame(p, cfg)[0], data, 32)
    x0, x1 = b.augment(b.real, 0), b.augment(b.real, 1)  # each generator's first draw
    assert not torch.equal(x0, x1)
    p1 = tparams(diffaug=("translation", "cutout"), batch_size=32)
    b1 = first_batch(frame(p1, cfg)[0], data, 32)
    assert torch.equal(x0, b1.augment(b1.real))  # D0 draws as a single D does

    def d1_after_one_step(**pen):
        q = tparams(discriminators=2, reg_every=1, batch_size=32, **pen)
        sq, nets, objective = frame(q, cfg)
        train_step(nets, objective, first_batch(sq, data, 32))  # G's update leaves D1 as D's update made it
        return digest(nets.ds[1])

    plain = d1_after_one_step()
    assert d1_after_one_step(r1_gamma=10.0) != plain  # R1 reaches the second discriminator
    assert d1_after_one_step(gp_lambda=10.0) != plain  # and so does WGAN-GP


@pytest.mark.parametrize("over", [
    {"discriminators": 2},
    {"discriminators": 3, "d_aggregate": "softmax", "d_temperature": 2.0},
    {"normalize": "meanstd"},
])
def test_each_new_switch_changes_the_trained_model(tmp_path, data, over):
    base = tparams()
    p = tparams(**over)
    stats = channel_stats(data)
    a = fit(base, gan_config(base, 16, 1, stats), data, tmp_path / "a", "fp")
    b = fit(p, gan_config(p, 16, 1, stats), data, tmp_path / "b", "fp")
    assert digest(a.g) != digest(b.g)
    assert len(b.ds) == p.discriminators and all(not d.training for d in b.ds)


def test_resume_is_bitwise_with_three_discriminators_and_meanstd(tmp_path, data):
    p = tparams(epochs=2, checkpoint_every=2, discriminators=3, d_aggregate="softmax",
                normalize="meanstd", r1_gamma=0.5, reg_every=2, diffaug=("color", "translation"))
    cfg = gan_config(p, 16, 1, channel_stats(data))
    full = fit(p, cfg, data, tmp_path / "a", "fp")
    fit(p, cfg, data, tmp_path / "b", "fp", stop_after=9)
    state = torch.load(sorted((tmp_path / "b").glob("ckpt-*.pt"))[-1], weights_only=True)
    assert len(state["d"]) == len(state["opt_d"]) == 3  # the checkpoint holds all K
    resumed = fit(p, cfg, data, tmp_path / "b", "fp")
    assert resumed.resumed_from_step == 8
    assert digest(resumed.g) == digest(full.g)
    assert [digest(d) for d in resumed.ds] == [digest(d) for d in full.ds]
    # the same checkpoint (same run id) offered to a run with another K is refused, not half-loaded
    q = dataclasses.replace(p, discriminators=2)
    fit(p, cfg, data, tmp_path / "c", "fp", stop_after=3)
    with pytest.raises(UserError, match="holds 3 discriminators and this run has 2"):
        fit(q, cfg, data, tmp_path / "c", "fp")


def test_saved_ensemble_loads_as_its_mean_logit_and_drs_uses_it(tmp_path):
    p = tparams(discriminators=2)
    cfg = gan_config(p, 16, 1)
    torch.manual_seed(0)
    g, d0 = build(cfg)
    d1 = Discriminator(cfg)
    save_models(tmp_path, ModelCard(cfg, discriminators=2), g, [d0, d1])
    assert (tmp_path / discriminator_file(1)).is_file()
    d = load_discriminator(tmp_path)
    assert isinstance(d, MeanLogit) and len(d.members) == 2
    x = torch.randn(5, 1, 16, 16)
    d0.eval(), d1.eval()
    with torch.no_grad():
        assert torch.allclose(d(x), (d0(x) + d1(x)) / 2)
    g.eval()
    res = discriminator_rejection_sampling(g, d, 40, p.latent_dim, 0, CPU, batch_size=20, burnin=40)
    assert res.images.shape == (40, 1, 16, 16) and 0 < res.acceptance_rate <= 1
    alone = discriminator_rejection_sampling(g, d0, 40, p.latent_dim, 0, CPU, batch_size=20, burnin=40)
    assert res.max_logit != alone.max_logit  # ranked by the ensemble, not by its first member
    (tmp_path / discriminator_file(1)).unlink()
    with pytest.raises(UserError, match="discriminator_1.safetensors"):
        load_discriminator(tmp_path)
