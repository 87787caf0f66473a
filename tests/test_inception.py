"""The Inception path end to end on a weights file with the right layout (random values)."""

import pickle

import numpy as np
import pytest
import torch

from dcgan.core.errors import UserError
from dcgan.metrics.inception import InceptionExtractor, check_weights

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """torchvision's Inception-v3 (no aux head, 1008 classes) has the FID network's layout."""
    from torchvision.models import inception_v3

    torch.manual_seed(0)
    net = inception_v3(weights=None, aux_logits=False, init_weights=True, num_classes=1008)
    path = tmp_path_factory.mktemp("inception") / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(net.state_dict(), path)
    return path


def test_inception_extracts_pool3_features_and_logits(weights):
    ext = InceptionExtractor(weights, CPU, batch_size=4)
    assert ext.id.startswith("inception-v3-2015-12-05:") and ext.id.endswith(":unofficial")
    grey = np.random.default_rng(0).integers(0, 256, (5, 1, 16, 16), dtype=np.uint8)
    f, logits = ext(grey)
    assert f.shape == (5, 2048) and logits.shape == (5, 1008) and f.dtype == np.float32
    assert np.isfinite(f).all() and f.std() > 0
    # grey images are repeated to RGB: an RGB image with three equal channels gives the same features
    f_rgb, _ = ext(np.repeat(grey, 3, axis=1))
    np.testing.assert_allclose(f, f_rgb, rtol=1e-6, atol=1e-6)


def test_missing_weights_say_where_to_put_them(tmp_path):
    with pytest.raises(UserError) as exc:
        check_weights(tmp_path / "pt_inception-2015-12-05-6726825d.pth")
    msg = str(exc.value)
    assert msg.startswith("inception_weights ") and "extractor: classifier" in msg and "never downloaded" in msg
    assert "evaluator." not in msg  # the library names its own setting; the stage names the key:
    keyed = exc.value.keyed(lambda name: f"evaluator.{name}")
    assert str(keyed).startswith("evaluator.inception_weights ") and "evaluator.extractor: classifier" in str(keyed)
    assert "unless evaluator.inception_download is true" in str(keyed)


def test_code_in_a_weights_file_never_runs(tmp_path):
    class Evil:
        def __reduce__(self):
            import os

            return (os.system, (f"touch {tmp_path}/pwned",))

    bad = tmp_path / "evil.pth"
    bad.write_bytes(pickle.dumps({"fc.weight": Evil()}))
    with pytest.raises(UserError, match="corrupt or unsafe"):
        InceptionExtractor(bad, CPU)
    assert not (tmp_path / "pwned").exists()


def test_weights_of_another_network_are_refused(tmp_path):
    path = tmp_path / "w.pth"
    torch.save({"fc.weight": torch.zeros(3, 3)}, path)
    with pytest.raises(UserError, match="do not fit Inception-v3"):
        InceptionExtractor(path, CPU)


def test_missing_weights_stop_the_evaluator_stage(tmp_path, monkeypatch, capsys):
    from dcgan.app.stages import evaluator, prepare
    from dcgan.app.stages._common import run
    from tests.conftest import tiny_params, write_params

    monkeypatch.chdir(tmp_path)
    write_params(tmp_path / "params.yaml", tiny_params(
        prepare={"max_images": 40}, evaluator={"extractor": "inception"}))
    assert run(prepare.main, []) == 0
    assert run(evaluator.main, []) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: evaluator.inception_weights models/inception/")
    assert "the Inception weights are not there" in err[-1] and "evaluator.inception_download is true" in err[-1]


# evaluator.inception_download ----------------------------------------------------------------------
@pytest.fixture
def served(tmp_path):
    """A local HTTP server over a folder: (folder, base URL)."""
    import functools
    import http.server
    import threading

    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def sha256(path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_download_keeps_a_file_with_the_published_id(served, weights, tmp_path):
    from dcgan.metrics.inception import download_weights

    root, base = served
    (root / "w.pth").write_bytes(weights.read_bytes())
    dest = tmp_path / "models" / "inception" / "w.pth"
    logs = []
    got = download_weights(dest, f"{base}/w.pth", expected_prefix=sha256(weights)[:8], log=logs.append)
    assert got == dest and sha256(dest) == sha256(weights)
    assert not list(dest.parent.glob("*.part")) and "verified" in logs[-1]
    assert InceptionExtractor(dest, CPU).id.endswith(":unofficial")  # the test's id is not the real one
    # once there, the file is used as it is: no second download
    (root / "w.pth").unlink()
    assert download_weights(dest, f"{base}/w.pth", expected_prefix="00000000") == dest


def test_a_tampered_download_is_refused_and_removed(served, weights, tmp_path):
    from dcgan.metrics.inception import OFFICIAL_SHA256_PREFIX, download_weights

    root, base = served
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte
    (root / "w.pth").write_bytes(bytes(data))
    dest = tmp_path / "inception" / "w.pth"
    with pytest.raises(UserError) as exc:
        download_weights(dest, f"{base}/w.pth")  # the published id is expected by default
    msg = str(exc.value)
    assert "\n" not in msg and f"not the published {OFFICIAL_SHA256_PREFIX}" in msg and "deleted" in msg
    assert not dest.exists() and not list(dest.parent.glob("*"))


def test_offline_download_names_the_url_the_path_and_the_alternative(tmp_path):
    import socket

    from dcgan.metrics.inception import WEIGHTS_URL, download_weights

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now: a refused connection, like a machine without internet
    dest = tmp_path / "inception" / "w.pth"
    url = f"http://127.0.0.1:{port}/w.pth"
    with pytest.raises(UserError) as exc:
        download_weights(dest, url, timeout_s=5)
    msg = str(exc.value)
    assert url in msg and str(dest) in msg and "set extractor: classifier" in msg
    assert not dest.exists() and not list(dest.parent.glob("*.part"))
    with pytest.raises(UserError) as exc:  # the default URL is torch-fidelity's release
        check_weights(dest)
    assert "inception_download is true" in str(exc.value) and WEIGHTS_URL in str(exc.value)


def test_unofficial_weights_are_said_in_words_in_the_report_and_the_diff():
    from dcgan.app import retrain as rt
    from dcgan.app.report_md import render
    from dcgan.app.review import retrain_page
    from dcgan.metrics.registry import UNOFFICIAL_WEIGHTS

    data = {"dataset": "celeba", "source": "x", "n_train": 4, "n_holdout": 2, "channels": 3,
            "image_size": 16, "mean": [0.5] * 3, "std": [0.2] * 3}
    model = {"g_width": 8, "d_width": 8, "latent_dim": 16}
    metrics = {"fid": 1.0, "fid_floor": 0.5, "protocol.extractor_id": "inception-v3-2015-12-05:abc:unofficial",
               "protocol.weights_official": 0}
    assert UNOFFICIAL_WEIGHTS in render({}, data, model, metrics, [], {}, "figs")
    assert UNOFFICIAL_WEIGHTS not in render({}, data, model, {**metrics, "protocol.weights_official": 1},
                                            [], {}, "figs")
    c = rt.Comparison("fid", "lower", 2.0, 1.0, 1.0, 0.0, True, "fid improved")
    diff = {"fid": {"old": 2.0, "new": 1.0, "diff": -1.0},
            "protocol.weights_official": {"old": 1, "new": 0, "diff": -1}}
    out = retrain_page("exp", {}, diff, c, [])
    assert "**Warning** (candidate exp)" in out and UNOFFICIAL_WEIGHTS in out
    diff["protocol.weights_official"]["new"] = 1
    assert UNOFFICIAL_WEIGHTS not in retrain_page("exp", {}, diff, c, [])


@pytest.mark.slow
def test_celeba_walkthrough_downloads_the_weights_and_runs_end_to_end(served, weights, tmp_path, monkeypatch, capsys):
    """The README's CelebA walkthrough for an online user, on a tiny synthetic CelebA tree:
    celeba loader -> extractor inception with inception_download (from a local server standing in
    for torch-fidelity's release; the test's weights stand in for the published file) ->
    evaluator, train (in-training FID), sample, evaluate, report, all with the Inception
    extractor, here also with standardised inputs and two discriminators on RGB images."""
    import json

    from PIL import Image

    from dcgan.app.stages import augment, evaluate, evaluator, prepare, report, sample, train
    from dcgan.app.stages._common import run
    from dcgan.metrics import inception
    from tests.conftest import tiny_params, write_params

    root, base = served
    (root / "weights.pth").write_bytes(weights.read_bytes())
    monkeypatch.setattr(inception, "WEIGHTS_URL", f"{base}/weights.pth")
    monkeypatch.setattr(inception, "OFFICIAL_SHA256_PREFIX", sha256(weights)[:8])
    work = tmp_path / "repo"
    faces = work / "data/raw/celeba/img_align_celeba"
    faces.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(48):  # CelebA's aligned 178x218 JPEGs: a bright oval on a coloured background
        img = np.zeros((218, 178, 3), np.uint8) + rng.integers(0, 120, 3, dtype=np.uint8)
        yy, xx = np.mgrid[:218, :178]
        oval = ((yy - 110) / 70.0) ** 2 + ((xx - 89) / (45 + i % 10)) ** 2 < 1
        img[oval] = (220, 180 - i, 150 + i)
        Image.fromarray(img).save(faces / f"{i + 1:06d}.jpg", quality=95)
    monkeypatch.chdir(work)
    write_params(work / "params.yaml", tiny_params(
        prepare={"dataset": "celeba", "root": "data/raw", "channels": 3, "max_images": 48},
        augment={"copies": 0, "hflip": True},
        train={"eval_samples": 8, "normalize": "meanstd", "discriminators": 2, "d_aggregate": "softmax"},
        sample={"num_samples": 12, "drs": True, "drs_burnin": 12},
        evaluator={"extractor": "inception", "inception_download": True, "feature_batch_size": 16},
        evaluate={"num_samples": 8, "batch_size": 16, "is_splits": 2, "kid_subset_size": 8, "recon_images": 2,
                  "recon_steps": 2, "bootstrap": 2},  # each resample: a 2048-d FID
    ))
    target = work / "models/inception/pt_inception-2015-12-05-6726825d.pth"
    for stage in (prepare, augment, evaluator):
        assert run(stage.main, []) == 0, capsys.readouterr().err
    assert sha256(target) == sha256(weights)  # fetched once, by the first stage that needs it
    (root / "weights.pth").unlink()  # later stages never go back to the network
    for stage in (train, sample):
        assert run(stage.main, []) == 0, capsys.readouterr().err
    assert not (work / "models/evaluator/classifier.safetensors").exists()  # no classifier trained
    for stage in (evaluate, report):
        assert run(stage.main, []) == 0, capsys.readouterr().err
    assert "FID is unstable below 2049 images" in capsys.readouterr().err  # 8 images: warned, not hidden
    m = json.loads((work / "reports/metrics.json").read_text())
    assert m["protocol.extractor"] == "inception" and m["protocol.feature_dim"] == 2048
    assert m["protocol.weights_official"] == 1 and m["protocol.n_samples_enough_for_fid"] == 0
    assert np.isfinite(m["fid"]) and "is_mean" in m  # (random test weights: IS itself can overflow)
    meta = json.loads((work / "models/gan/model.json").read_text())
    assert meta["normalize"] == "meanstd" and len(meta["mean"]) == 3 and meta["discriminators"] == 2
    assert (work / "models/gan/discriminator_1.safetensors").is_file()
    assert np.load(work / "data/samples/samples.npy").shape == (12, 3, 16, 16)
    assert "Warning" not in (work / "reports/report.md").read_text()


# --- evaluator.resize: legacy (torch-fidelity) and clean (clean-fid) ------------------------

def test_clean_resize_is_clean_fid_s_own():
    """Our clean resize gives clean-fid's make_resizer("PIL", False, "bicubic") output exactly,
    for grey and colour images of several sizes."""
    from cleanfid.resize import make_resizer

    from dcgan.metrics.resize import clean_resize

    theirs = make_resizer("PIL", False, "bicubic", (299, 299))
    rng = np.random.default_rng(0)
    for shape in ((2, 3, 32, 32), (2, 3, 64, 48), (1, 1, 28, 28)):
        x = rng.integers(0, 256, shape, dtype=np.uint8)
        ours = clean_resize(x)
        for i in range(shape[0]):
            hwc = np.repeat(x[i].transpose(1, 2, 0), 3 // shape[1], axis=2)  # clean-fid takes RGB HWC
            want = theirs(hwc).transpose(2, 0, 1)
            np.testing.assert_array_equal(np.repeat(ours[i], 3 // shape[1], axis=0), want)


def test_the_float_forward_is_torch_fidelity_s_forward(weights):
    """forward_resized (the clean path's network pass) is torch-fidelity's forward layer for
    layer: on a 299×299 uint8 input, where its resize does nothing, the outputs are equal."""
    from dcgan.metrics.inception import forward_resized

    ext = InceptionExtractor(weights, CPU, batch_size=2)
    x = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (2, 3, 299, 299), dtype=np.uint8))
    with torch.inference_mode():
        f, lg = ext.net(x)
        f2, lg2 = forward_resized(ext.net, x.float())
    assert torch.equal(f, f2) and torch.equal(lg, lg2)


def test_legacy_features_are_torch_fidelity_s_extractor_s(weights):
    """The legacy path gives what torch-fidelity's own Inception extractor gives, loaded from the
    same weights file; clean gives other features and says so in its id."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"],
                                      feature_extractor_weights_path=str(weights)).eval()
    x = np.random.default_rng(2).integers(0, 256, (3, 3, 32, 32), dtype=np.uint8)
    with torch.inference_mode():
        want_f, want_lg = net(torch.from_numpy(x))
    legacy = InceptionExtractor(weights, CPU, batch_size=3)  # one batch, as above
    f, lg = legacy(x)
    np.testing.assert_array_equal(f, want_f.numpy())
    np.testing.assert_array_equal(lg, want_lg.numpy())
    clean = InceptionExtractor(weights, CPU, batch_size=3, resize="clean")
    fc, _ = clean(x)
    assert clean.id == legacy.id + ":clean" and not np.allclose(fc, f, atol=1e-3)
