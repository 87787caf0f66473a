import pytest
import torch

from dcgan.core.errors import UserError
from dcgan.networks.gan import GANConfig, build
from dcgan.networks.model_dir import (
    ModelCard,
    load_discriminator,
    load_generator,
    pick_generator,
    read_card,
    save_models,
)


@pytest.mark.parametrize("size", [16, 32, 64, 128, 256])
@pytest.mark.parametrize("channels", [1, 3])
def test_any_power_of_two_size(size, channels):
    cfg = GANConfig(size, channels, latent_dim=8, g_width=4, d_width=4)
    g, d = build(cfg)
    x = g(torch.randn(2, 8))
    assert x.shape == (2, channels, size, size)
    assert x.abs().max() <= 1.0  # Tanh
    assert d(x).shape == (2,)


def test_64x64_matches_the_paper_model():
    # the official PyTorch example: nz=100, ngf=ndf=64, nc=3 -> these exact parameter counts
    g, d = build(GANConfig(64, 3, 100, 64, 64))
    assert sum(p.numel() for p in g.parameters()) == 3_576_704
    assert sum(p.numel() for p in d.parameters()) == 2_765_568


def test_init_is_dcgan_normal():
    g, _ = build(GANConfig(32, 1, 16, 32, 32))
    w = g.net[0].weight
    assert abs(w.mean().item()) < 0.002 and abs(w.std().item() - 0.02) < 0.002


def test_save_load_round_trip(tmp_path):
    cfg = GANConfig(16, 1, 8, 4, 4)
    g, d = build(cfg)
    save_models(tmp_path, ModelCard(cfg), g, [d])
    g2, d2 = load_generator(tmp_path), load_discriminator(tmp_path)
    z = torch.randn(3, 8)
    g.eval()
    d.eval()
    torch.testing.assert_close(g2(z), g(z), rtol=0, atol=0)
    x = g(z)
    torch.testing.assert_close(d2(x), d(x), rtol=0, atol=0)


def test_auto_picks_the_last_generator_only_when_g_had_an_ema(tmp_path):
    cfg = GANConfig(16, 1, 8, 4, 4)
    g, d = build(cfg)
    best, _ = build(cfg)  # another init: the two files differ
    save_models(tmp_path / "plain", ModelCard(cfg), g, [d], g_best=best.state_dict())
    save_models(tmp_path / "ema", ModelCard(cfg, ema_decay=0.999), g, [d], g_best=best.state_dict())
    z = torch.randn(3, 8)
    best.eval()
    g.eval()
    torch.testing.assert_close(load_generator(tmp_path / "plain", which="auto")(z), best(z), rtol=0, atol=0)
    torch.testing.assert_close(load_generator(tmp_path / "ema", which="auto")(z), g(z), rtol=0, atol=0)
    torch.testing.assert_close(load_generator(tmp_path / "ema", which="best")(z), best(z), rtol=0, atol=0)
    assert pick_generator("auto", read_card(tmp_path / "ema").ema_decay) == "last"
    assert pick_generator("auto", read_card(tmp_path / "plain").ema_decay) == "best"
    assert read_card(tmp_path / "ema").ema_decay == 0.999


def test_weights_of_another_architecture_are_refused(tmp_path):
    g, d = build(GANConfig(16, 1, 8, 4, 4))
    save_models(tmp_path, ModelCard(GANConfig(16, 1, 8, 4, 4)), g, [d])
    (tmp_path / "model.json").write_text(
        '{"image_size": 32, "channels": 1, "latent_dim": 8, "g_width": 4, "d_width": 4}')
    with pytest.raises(UserError, match="do not fit the architecture"):
        load_generator(tmp_path)


def test_missing_or_corrupt_weights(tmp_path):
    with pytest.raises(UserError, match="model config .* does not exist"):
        load_generator(tmp_path)
    cfg = GANConfig(16, 1, 8, 4, 4)
    g, d = build(cfg)
    save_models(tmp_path, ModelCard(cfg), g, [d])
    (tmp_path / "generator.safetensors").write_bytes(b"\x00" * 10)
    with pytest.raises(UserError, match="corrupt or not safetensors"):
        load_generator(tmp_path)
