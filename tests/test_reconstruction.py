import numpy as np
import pytest
import torch

from dcgan.metrics.reconstruction import invert_by_optimisation, reconstruction_metrics
from dcgan.networks.gan import GANConfig, build
from dcgan.networks.sampling import generate

CPU = torch.device("cpu")


def test_identical_images_score_perfectly():
    x = np.random.default_rng(0).integers(0, 256, (4, 3, 16, 16), dtype=np.uint8)
    m = reconstruction_metrics(x, x)
    assert m == {"recon_mse": 0.0, "recon_psnr": 100.0, "recon_ssim": pytest.approx(1.0)}


def test_metrics_match_scikit_image_definitions():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (1, 1, 16, 16), dtype=np.uint8)
    y = np.clip(x.astype(int) + rng.integers(-20, 21, x.shape), 0, 255).astype(np.uint8)
    m = reconstruction_metrics(x, y)
    mse = ((x / 255.0 - y / 255.0) ** 2).mean()
    assert m["recon_mse"] == pytest.approx(mse)
    assert m["recon_psnr"] == pytest.approx(10 * np.log10(1.0 / mse))
    assert 0 < m["recon_ssim"] < 1


def test_inversion_recovers_the_generators_own_images():
    torch.manual_seed(0)
    g, _ = build(GANConfig(16, 1, 8, 8, 8))
    for m in g.modules():  # DCGAN init makes near-constant images; wider weights give structure
        if isinstance(m, torch.nn.ConvTranspose2d):
            torch.nn.init.normal_(m.weight, 0.0, 0.3)
    g.eval()
    own = generate(g, 6, 8, seed=5, device=CPU)
    recon = invert_by_optimisation(g, own, 8, steps=150, restarts=2, lr=0.05, seed=0, device=CPU)
    start = invert_by_optimisation(g, own, 8, steps=1, restarts=1, lr=0.05, seed=0, device=CPU)
    after, before = reconstruction_metrics(own, recon), reconstruction_metrics(own, start)
    assert before["recon_mse"] > 0.01  # the images differ enough for the test to mean something
    assert after["recon_mse"] < 0.3 * before["recon_mse"]
    assert after["recon_psnr"] > before["recon_psnr"] + 3
    assert all(p.requires_grad for p in g.parameters())  # G left as found
