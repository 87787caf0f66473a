"""The `dcgan` command: sample, interpolate and info on a model folder; bad input is one line."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dcgan.app import cli
from dcgan.networks.gan import GANConfig, build
from dcgan.networks.model_dir import ModelCard, save_models
from tests.conftest import venv_env

CFG = GANConfig(image_size=16, channels=1, latent_dim=8, g_width=8, d_width=8)


def make_model(folder: Path, cfg: GANConfig = CFG, discriminator: bool = True) -> Path:
    torch.manual_seed(0)
    g, d = build(cfg)
    save_models(folder, ModelCard(cfg, step=12, epochs=1, best_fid=3.5, best_step=9), g, [d])
    if not discriminator:
        (folder / "discriminator.safetensors").unlink()
    return folder


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_sample_writes_a_grid_or_an_array(tmp_path, capsys):
    model = make_model(tmp_path / "gan")
    code, out, _ = run(capsys, "sample", "--model", str(model), "-n", "16", "-o", str(tmp_path / "g.png"),
                       "--device", "cpu")
    assert code == 0 and "16 images from the best generator" in out
    grid = Image.open(tmp_path / "g.png")
    side = ((16 + 2) * 4 + 2) * 4  # 4x4 tiles of 16 px with 2 px padding, enlarged 4x for viewing
    assert grid.size == (side, side)
    code, _, _ = run(capsys, "sample", "-m", str(model), "-n", "5", "-o", str(tmp_path / "a.npy"))
    a = np.load(tmp_path / "a.npy")
    assert code == 0 and a.shape == (5, 1, 16, 16) and a.dtype == np.uint8
    run(capsys, "sample", "-m", str(model), "-n", "5", "-o", str(tmp_path / "b.npy"))
    run(capsys, "sample", "-m", str(model), "-n", "5", "--seed", "1", "-o", str(tmp_path / "c.npy"))
    assert (np.load(tmp_path / "b.npy") == a).all()      # same seed, same images
    assert (np.load(tmp_path / "c.npy") != a).any()      # another seed, others


def test_sample_with_drs_needs_the_discriminator(tmp_path, capsys):
    model = make_model(tmp_path / "gan")
    code, out, _ = run(capsys, "sample", "-m", str(model), "-n", "8", "--drs", "-o", str(tmp_path / "d.npy"))
    assert code == 0 and "with DRS (kept" in out and np.load(tmp_path / "d.npy").shape[0] == 8
    bare = make_model(tmp_path / "bare", discriminator=False)
    code, _, err = run(capsys, "sample", "-m", str(bare), "--drs", "-o", str(tmp_path / "e.png"))
    assert code == 2 and err == f"error: --drs needs the discriminator, and {bare} has no discriminator.safetensors\n"


def test_interpolate_and_info(tmp_path, capsys):
    model = make_model(tmp_path / "gan")
    code, out, _ = run(capsys, "interpolate", "-m", str(model), "--rows", "3", "--steps", "5",
                       "-o", str(tmp_path / "w.npy"))
    assert code == 0 and "great circles" in out and np.load(tmp_path / "w.npy").shape == (15, 1, 16, 16)
    code, out, _ = run(capsys, "info", str(model))
    assert code == 0
    assert "architecture: DCGAN 1x16x16, latent 8 (normal prior)" in out
    assert "trained: 12 steps, 1 epochs" in out and "best in-training FID: 3.5 at step 9" in out
    assert "file: generator_best.safetensors" in out
    assert "inputs: [-1, 1]" in out and "discriminators: 1" in out
    code, out, _ = run(capsys, "info", str(model), "--json")
    assert json.loads(out) == json.loads((model / "model.json").read_text())


@pytest.mark.parametrize("argv, message", [
    (["sample", "-m", "{missing}"], "error: model folder {missing} does not exist"),
    (["sample", "-m", "{tmp}"], "error: {tmp} is not a dcgan model folder: it has no model.json"),
    (["sample", "-m", "{model}", "-n", "0"], "error: -n must be >= 1, got 0"),
    (["sample", "-m", "{model}", "-n", "-3"], "error: -n must be >= 1, got -3"),
    (["sample", "-m", "{model}", "-o", "{tmp}/x.jpg"], "error: output {tmp}/x.jpg must end in .png"),
    (["sample", "-m", "{model}", "--drs-percentile", "120"], "error: --drs-percentile must be in [0, 100]"),
    (["sample", "-m", "{other}"], "error: model weights {other}/generator_best.safetensors do not fit "
                                  "the architecture in model.json"),
    (["interpolate", "-m", "{model}", "--steps", "1"], "error: --steps must be >= 2"),
    (["info", "{missing}"], "error: model folder {missing} does not exist"),
])
def test_bad_input_is_one_line_and_exit_2_and_keeps_the_output(tmp_path, capsys, argv, message):
    model = make_model(tmp_path / "gan")
    other = make_model(tmp_path / "other")  # weights of another architecture under this model.json
    (other / "model.json").write_text((other / "model.json").read_text().replace('"g_width": 8', '"g_width": 16'))
    names = {"missing": tmp_path / "nope", "tmp": tmp_path, "model": model, "other": other}
    argv = [a.format(**names) for a in argv]
    out_file = tmp_path / "keep.png"
    out_file.write_bytes(b"a good earlier output")
    if argv[0] != "info" and "-o" not in argv:
        argv += ["-o", str(out_file)]
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert err.startswith(message.format(**names)) and err.count("\n") == 1, err
    assert out_file.read_bytes() == b"a good earlier output"


def test_the_installed_command_runs():
    res = subprocess.run(["dcgan", "--help"], capture_output=True, text=True, env=venv_env())
    assert res.returncode == 0 and "sample" in res.stdout and "interpolate" in res.stdout
    res = subprocess.run(["dcgan", "sample", "-m", "/nonexistent/gan"], capture_output=True, text=True,
                         env=venv_env())
    assert res.returncode == 2 and res.stderr.startswith("error: model folder /nonexistent/gan does not exist")
