"""The Inception path end to end on a weights file with the right layout (random values)."""

import pickle

import numpy as np
import pytest
import torch

from dcgan.errors import UserError
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
    assert f.shape == (5, 2048) and logits.shape == (5, 1008) and f.dtype == np.float64
    assert np.isfinite(f).all() and f.std() > 0
    # grey images are repeated to RGB: an RGB image with three equal channels gives the same features
    f_rgb, _ = ext(np.repeat(grey, 3, axis=1))
    np.testing.assert_allclose(f, f_rgb, rtol=1e-6, atol=1e-6)


def test_missing_weights_say_where_to_put_them(tmp_path):
    with pytest.raises(UserError) as exc:
        check_weights(tmp_path / "pt_inception-2015-12-05-6726825d.pth")
    msg = str(exc.value)
    assert "evaluate.inception_weights" in msg and "evaluate.extractor: classifier" in msg
    assert "never downloaded" in msg


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


@pytest.mark.slow
def test_inception_extractor_through_the_pipeline(weights, tmp_path, monkeypatch, capsys):
    """evaluator -> train (in-training FID) -> sample -> evaluate, all with extractor: inception."""
    import json

    from dcgan.stages import augment, evaluate, evaluator, prepare, sample, train
    from dcgan.stages._common import run
    from tests.conftest import tiny_params, write_params

    monkeypatch.chdir(tmp_path)
    write_params(tmp_path / "params.yaml", tiny_params(
        prepare={"max_images": 60},
        augment={"copies": 0},
        train={"eval_samples": 8},
        sample={"num_samples": 12},
        evaluate={"extractor": "inception", "inception_weights": str(weights), "num_samples": 12,
                  "batch_size": 16, "is_splits": 2, "kid_subset_size": 12, "recon_images": 2,
                  "recon_steps": 2},
    ))
    for stage in (prepare, augment, evaluator, train, sample):
        assert run(stage.main, []) == 0, capsys.readouterr().err
    assert not (tmp_path / "models/evaluator/classifier.safetensors").exists()  # no classifier trained
    assert run(evaluate.main, []) == 0, capsys.readouterr().err
    err = capsys.readouterr().err
    assert "FID is unstable below 2049 images" in err  # 12 images: warned, not hidden
    m = json.loads((tmp_path / "reports/metrics.json").read_text())
    assert m["protocol.extractor"] == "inception" and m["protocol.feature_dim"] == 2048
    assert m["protocol.weights_official"] == 0 and m["protocol.n_samples_enough_for_fid"] == 0
    assert np.isfinite(m["fid"]) and np.isfinite(m["kid_mean"]) and 0 <= m["precision"] <= 1


def test_missing_weights_stop_the_evaluator_stage(tmp_path, monkeypatch, capsys):
    from dcgan.stages import evaluator, prepare
    from dcgan.stages._common import run
    from tests.conftest import tiny_params, write_params

    monkeypatch.chdir(tmp_path)
    write_params(tmp_path / "params.yaml", tiny_params(
        prepare={"max_images": 40}, evaluate={"extractor": "inception"}))
    assert run(prepare.main, []) == 0
    assert run(evaluator.main, []) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: Inception weights not found at models/inception/")
