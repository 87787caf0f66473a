"""Each stage's main on tiny params in a temporary directory, in pipeline order."""

import json
import subprocess
import sys

import numpy as np
import pytest
import yaml

from dcgan.app.params.typed import recording
from dcgan.app.stage_deps import params_read, unlisted
from dcgan.app.stages import augment, evaluate, evaluator, prepare, report, sample, train, validate
from dcgan.app.stages._common import run
from dcgan.app.stages._common import run as run_stage
from tests.conftest import REPO, tiny_params, venv_env, write_params

READS: dict[str, set[str]] = {}
"""The params keys each stage read in the pipeline fixture's run, by stage."""


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """Run all stages once; tests then look at what each wrote."""
    root = tmp_path_factory.mktemp("stages")
    # precision as shipped; KID over 12 subsets, so its bootstrap's subset count is seen (below)
    write_params(root / "params.yaml", tiny_params(train={"precision": "auto"}, evaluate={"kid_subsets": 12}))
    prm = ["--params", str(root / "params.yaml")]
    d = lambda *p: str(root.joinpath(*p))  # noqa: E731

    def run(main, argv):  # each stage's run, recording the params keys it reads (READS)
        with recording() as reads:
            code = run_stage(main, argv)
        READS[main.__module__.rsplit(".", 1)[1]] = reads
        return code

    assert run(prepare.main, [*prm, "--out", d("data/prepared")]) == 0
    assert run(augment.main, [*prm, "--data", d("data/prepared"), "--out", d("data/augmented")]) == 0
    assert run(evaluator.main, [*prm, "--data", d("data/prepared"), "--out", d("models/evaluator")]) == 0
    assert run(train.main, [*prm, "--data", d("data/augmented/train.npy"), "--out", d("models/gan"),
                            "--checkpoints", d("checkpoints"), "--live", d("dvclive"),
                            "--evaluator", d("models/evaluator"), "--prepared", d("data/prepared")]) == 0
    assert run(sample.main, [*prm, "--models", d("models/gan"), "--out", d("data/samples/samples.npy"),
                             "--grid", d("reports/samples.png"),
                             "--interpolation", d("reports/interpolation.png")]) == 0
    assert run(evaluate.main, [*prm, "--samples", d("data/samples/samples.npy"), "--data",
                               d("data/prepared"), "--evaluator", d("models/evaluator"),
                               "--models", d("models/gan"), "--out", d("reports/metrics.json"),
                               "--recon-grid", d("reports/reconstructions.png"),
                               "--copies-grid", d("reports/copies.png"),
                               "--features", d("data/evaluated/features.npy")]) == 0
    assert run(report.main, [*prm, "--metrics", d("reports/metrics.json"), "--data", d("data/prepared"),
                             "--models", d("models/gan"), "--live", d("dvclive"),
                             "--out", d("reports/report.md")]) == 0
    return root


def test_each_stage_lists_every_params_key_it_reads(pipeline):
    """dvc.yaml's ``params:`` list of each stage covers every key the stage read in a real run
    (recorded as read): a key read but not listed would leave a stale output cached when it
    changes. make deps writes the lists from the stages' code (dcgan.app.stage_deps)."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert set(READS) == {"prepare", "augment", "evaluator", "train", "sample", "evaluate", "report"}
    for name, reads in READS.items():
        assert reads, name
        assert unlisted(reads, stages[name]["params"]) == [], name
    assert "evaluator.seed" in READS["evaluator"] and "evaluator.seed" not in READS["evaluate"]


def test_a_planted_read_of_an_unlisted_key_is_caught(tmp_path):
    """The evaluate stage made to read evaluator.seed, which its list leaves out: make deps would
    list it (so dvc.yaml as committed no longer matches and tests/test_stage_deps.py fails), and
    the recorded reads are not covered."""
    listed = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["evaluate"]["params"]
    source = (REPO / "src/dcgan/app/stages/evaluate.py").read_text()
    planted = tmp_path / "evaluate.py"
    planted.write_text(source.replace("    data = Path(args.data)\n",
                                      "    data = Path(args.data)\n    log(str(params.evaluator.seed))\n", 1))
    assert params_read(REPO / "src/dcgan/app/stages/evaluate.py") == listed
    assert params_read(planted) != listed and "evaluator.seed" in params_read(planted)
    from dcgan.app.params.whole import load_params

    params = load_params(REPO / "params.yaml")
    with recording() as reads:
        _ = params.evaluator.seed
    assert unlisted(reads, listed) == ["evaluator.seed"]


def test_prepare_writes_split_arrays_and_meta(pipeline):
    train_x = np.load(pipeline / "data/prepared/train.npy")
    hold_x = np.load(pipeline / "data/prepared/holdout.npy")
    meta = json.loads((pipeline / "data/prepared/meta.json").read_text())
    assert train_x.dtype == np.uint8 and train_x.shape[1:] == (1, 16, 16)
    assert len(train_x) + len(hold_x) == 300 and len(hold_x) == 60
    assert meta["n_train"] == 240 and meta["labelled"] and len(meta["mean"]) == 1
    assert 0 < meta["mean"][0] < 1 and 0 < meta["std"][0] < 1


def test_augment_doubles_with_one_copy(pipeline):
    aug = np.load(pipeline / "data/augmented/train.npy")
    assert aug.shape == (480, 1, 16, 16)
    assert np.load(pipeline / "data/augmented/train_labels.npy").shape == (480,)


def test_train_writes_models_checkpoint_and_dvclive(pipeline):
    for f in ("generator.safetensors", "discriminator.safetensors", "model.json"):
        assert (pipeline / "models/gan" / f).is_file()
    assert list((pipeline / "checkpoints").glob("ckpt-*.pt"))
    summary = json.loads((pipeline / "dvclive/metrics.json").read_text())
    assert summary["step"] == 15 and summary["train"]["steps"] == 15  # 480 // 32 steps, one epoch
    assert "loss_d" in summary["train"] and summary["train"]["images_per_s"] > 0
    assert (pipeline / "dvclive/plots/metrics/train/loss_g.tsv").is_file()
    assert (pipeline / "dvclive/plots/images/fixed_noise.png").is_file()


def test_sample_writes_uint8_samples_and_a_grid(pipeline):
    s = np.load(pipeline / "data/samples/samples.npy")
    assert s.shape == (100, 1, 16, 16) and s.dtype == np.uint8
    assert (pipeline / "reports/samples.png").stat().st_size > 0


METRIC_KEYS = ["fid", "is_mean", "is_std", "kid_mean", "kid_std", "precision", "recall",
               "recon_mse", "recon_psnr", "recon_ssim"]


def test_evaluate_writes_flat_metrics_floors_and_protocol(pipeline):
    m = json.loads((pipeline / "reports/metrics.json").read_text())
    for k in METRIC_KEYS + [f"{k}_floor" for k in METRIC_KEYS]:
        assert isinstance(m[k], int | float) and np.isfinite(m[k]), k
    assert m["protocol.n_samples"] == 60  # evaluate.num_samples: 0 -> holdout size
    assert m["protocol.extractor"] == "classifier"
    assert m["protocol.extractor_id"].startswith("classifier-ms:")  # multi-scale features (issue 37)
    assert len(m["protocol.metric_code"]) == 12 and int(m["protocol.metric_code"], 16) >= 0  # issue 38
    # sample.generator: auto -> the last one, as the grey recipe keeps an EMA of G (issue 37)
    assert m["protocol.generator"] == "last" and m["protocol.recon_images"] == 8
    assert m["fid"] > m["fid_floor"] >= 0
    assert 0 <= m["precision"] <= 1 and 0 <= m["recall_floor"] <= 1
    assert all(not isinstance(v, dict | list) for v in m.values())  # flat
    assert (pipeline / "reports/reconstructions.png").stat().st_size > 0


def test_evaluate_gives_each_score_its_noise_and_the_copy_rate(pipeline):
    m = json.loads((pipeline / "reports/metrics.json").read_text())
    assert m["protocol.bootstrap"] > 0 and len(m["protocol.reference_id"]) == 16
    for key in ("fid", "is_mean", "kid_mean"):
        assert m[f"{key}_se"] > 0 and m[f"{key}_ci_low"] < m[key] < m[f"{key}_ci_high"], key
    assert 0 <= m["copy_rate"] <= 1 and 0 <= m["copy_rate_floor"] <= 1
    feats = np.load(pipeline / "data/evaluated/features.npy")
    # every generated image's (100), not only the 60 scored beside the floors: the gate's power
    assert feats.shape == (100, m["protocol.feature_dim"]) and feats.dtype == np.float32
    assert (pipeline / "reports/copies.png").stat().st_size > 0
    assert "Closest to a training image" in (pipeline / "reports/report.md").read_text()


def test_a_generator_that_hands_back_training_images_is_all_copies(pipeline, tmp_path):
    """Samples that are training images score a copy rate near 100%, far above the floor."""
    train_images = np.load(pipeline / "data/prepared/train.npy")
    np.save(tmp_path / "samples.npy", train_images[:60])
    assert run(evaluate.main, ["--params", str(pipeline / "params.yaml"), "--samples", str(tmp_path / "samples.npy"),
                               "--data", str(pipeline / "data/prepared"),
                               "--evaluator", str(pipeline / "models/evaluator"),
                               "--models", str(pipeline / "models/gan"), "--out", str(tmp_path / "m.json"),
                               "--recon-grid", str(tmp_path / "r.png"), "--copies-grid", str(tmp_path / "c.png"),
                               "--features", str(tmp_path / "f.npy")]) == 0
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["copy_rate"] >= 0.95 and m["copy_rate_floor"] < 0.8, (m["copy_rate"], m["copy_rate_floor"])
    own = json.loads((pipeline / "reports/metrics.json").read_text())
    assert own["copy_rate"] < m["copy_rate"]


def test_train_keeps_the_best_generator_by_fid(pipeline):
    model = json.loads((pipeline / "models/gan/model.json").read_text())
    assert model["best_fid"] > 0 and model["best_step"] == 15
    assert (pipeline / "models/gan/generator_best.safetensors").is_file()
    fid_log = (pipeline / "dvclive/plots/metrics/train/fid.tsv").read_text().splitlines()
    assert len(fid_log) == 2  # header + one evaluation (one epoch, eval_every 1)
    summary = json.loads((pipeline / "dvclive/metrics.json").read_text())["train"]
    assert summary["last_fid"] == pytest.approx(float(fid_log[1].split("\t")[-1]), abs=1e-4)
    assert summary["last_over_best"] == 1.0  # one evaluation: the last is the best


def test_resolved_precision_is_recorded_in_model_metrics_and_report(pipeline):
    import torch

    from dcgan.core.devices import resolve_precision

    want = resolve_precision("auto", torch.device("cpu"))[0]  # fp32 on AVX2, bf16 with AVX-512 BF16
    assert json.loads((pipeline / "models/gan/model.json").read_text())["precision"] == want
    assert json.loads((pipeline / "reports/metrics.json").read_text())["protocol.train_precision"] == want
    assert f" in {want} (`train.precision`" in (pipeline / "reports/report.md").read_text()


def test_report_has_metrics_floors_and_all_figures(pipeline):
    text = (pipeline / "reports/report.md").read_text()
    assert "| FID |" in text and "| Reconstruction SSIM |" in text
    for img in ("samples.png", "interpolation.png", "reconstructions.png", "figures/losses.png",
                "figures/fid.png", "figures/d_outputs.png"):
        assert f"({img})" in text, img
        assert (pipeline / "reports" / img).stat().st_size > 1000, img


def test_report_shows_the_fid_trajectory_from_the_real_logs(pipeline):
    """The dvclive TSVs the train stage wrote -> the report's trajectory table and late-fall line."""
    text = (pipeline / "reports/report.md").read_text()
    section = text.split("## Quality during training", 1)[1].split("\n## ", 1)[0]
    assert "best in-training FID" in section and "× the best" in section
    assert "| step | FID | D(real) | D(fake) |" in section
    fid_rows = (pipeline / "dvclive/plots/metrics/train/fid.tsv").read_text().splitlines()[1:]
    assert sum(line.startswith("| ") and line[2].isdigit() for line in section.splitlines()) == len(fid_rows)


def test_user_errors_are_one_line_and_exit_2(workdir, capsys):
    write_params(workdir / "params.yaml", tiny_params(train={"lr": -1}))
    assert run(train.main, []) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: train.lr must be > 0, got -1.0"


def test_missing_input_file_is_named(workdir, capsys):
    assert run(sample.main, ["--models", "nowhere"]) == 2
    assert "nowhere/model.json does not exist" in capsys.readouterr().err


def test_wrong_samples_file_is_refused(pipeline, tmp_path, capsys):
    bad = tmp_path / "samples.npy"
    np.save(bad, np.zeros((100, 3, 16, 16), np.float32))
    code = run(evaluate.main, ["--params", str(pipeline / "params.yaml"), "--samples", str(bad),
                               "--data", str(pipeline / "data/prepared"),
                               "--evaluator", str(pipeline / "models/evaluator"),
                               "--out", str(tmp_path / "m.json")])
    assert code == 2
    assert "must be uint8 with shape (N, C, H, W), got float32" in capsys.readouterr().err
    assert not (tmp_path / "m.json").exists()


STAGES = ["validate", "prepare", "augment", "evaluator", "train", "sample", "evaluate", "report"]


@pytest.mark.parametrize("stage", STAGES)
def test_every_stage_has_help(stage, capsys):
    """In this process (the DVC journeys run every stage's `python -m` command)."""
    import importlib

    with pytest.raises(SystemExit) as exc:
        importlib.import_module(f"dcgan.app.stages.{stage}").main(["--help"])
    out = capsys.readouterr().out
    assert exc.value.code == 0 and "--params" in out and "usage:" in out


def test_a_stage_runs_as_python_dash_m():
    out = subprocess.run([sys.executable, "-m", "dcgan.app.stages.validate", "--help"],
                         capture_output=True, text=True, env=venv_env(), check=True).stdout
    assert "--params" in out and "usage: validate" in out.replace("python -m dcgan.app.stages.", "")


def test_evaluator_explains_unlabelled_data(workdir, capsys):
    from PIL import Image

    imgs = workdir / "imgs"
    imgs.mkdir()
    for i in range(30):
        Image.fromarray(np.full((20, 20), i * 8, np.uint8)).save(imgs / f"{i}.png")
    write_params(workdir / "params.yaml", tiny_params(prepare={"dataset": "folder", "root": str(imgs)}))
    assert run(prepare.main, []) == 0
    assert run(evaluator.main, []) == 2
    assert "has no class labels" in capsys.readouterr().err
    assert not (workdir / "models/evaluator").exists()


def test_encoder_ema_and_drs_through_the_stages(workdir, capsys):
    """With an encoder, EMA and DRS on: evaluate reconstructs through E and reports DRS."""
    write_params(workdir / "params.yaml", tiny_params(
        train={"encoder": True, "ema_decay": 0.9, "diffaug": ["translation"], "eval_every": 0},
        sample={"drs": True, "drs_burnin": 50, "drs_percentile": 50.0},
        evaluate={"recon_steps": 1, "metrics": ["fid"]}))
    for stage in (prepare, augment, evaluator, train, sample, evaluate):
        assert run(stage.main, []) == 0, capsys.readouterr().err
    assert (workdir / "models/gan/encoder.safetensors").is_file()
    m = json.loads((workdir / "reports/metrics.json").read_text())
    assert m["protocol.recon_method"] == "encoder" and m["protocol.drs"] == 1
    # the copies grid is a declared output: drawn whether or not the copy rate is among the metrics
    assert "copy_rate" not in m and (workdir / "reports/copies.png").stat().st_size > 0
    # every metric's declared options are in the protocol, computed or not (runs compare key by key)
    assert {"is_splits", "kid_subsets", "kid_subset_size", "pr_k", "pr_images"} <= {
        k.removeprefix("protocol.") for k in m}
    assert 0 < m["drs_acceptance_rate"] < 1
    info = json.loads((workdir / "data/samples/samples.json").read_text())
    assert info["drs"] and info["drs_proposed"] >= 100


def test_validate_stage_writes_a_constant_stamp_and_refuses_bad_params(workdir, capsys):
    assert run(validate.main, ["--out", "ok"]) == 0
    stamp = (workdir / "ok").read_bytes()
    write_params(workdir / "params.yaml", tiny_params(train={"lr": 5e-4}))  # a valid change
    assert run(validate.main, ["--out", "ok"]) == 0
    assert (workdir / "ok").read_bytes() == stamp  # downstream stages see no change
    write_params(workdir / "params.yaml", tiny_params(prepare={"image_size": 48}))
    capsys.readouterr()
    assert run(validate.main, ["--out", "ok2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: prepare.image_size must be a power of two from 16 to 256, got 48"]
    # dataset names come from the loader registry (the one list of them)
    write_params(workdir / "params.yaml", tiny_params(prepare={"dataset": "imagenet"}))
    assert run(validate.main, ["--out", "ok2"]) == 2
    from dcgan.data.loaders import dataset_names

    err = capsys.readouterr().err.strip()
    assert err.startswith("error: prepare.dataset must be one of digits, mnist, fashion_mnist, cifar10, celeba, lsun, "
                          "folder") and err.endswith(", got 'imagenet'")
    assert all(name in err for name in dataset_names())
    assert not (workdir / "ok2").exists()


def test_training_data_that_does_not_match_the_model_is_refused(workdir, capsys):
    """prepare.channels / image_size shape the model: data of another shape is named, not trained on."""
    from dcgan.data import arrays

    arrays.save_images(workdir / "rgb.npy", np.zeros((40, 3, 16, 16), np.uint8))
    assert run(train.main, ["--data", "rgb.npy", "--out", "m"]) == 2
    assert "image array rgb.npy has 3 channels but 1 were expected" in capsys.readouterr().err
    arrays.save_images(workdir / "big.npy", np.zeros((40, 1, 32, 32), np.uint8))
    assert run(train.main, ["--data", "big.npy", "--out", "m"]) == 2
    assert "has images of 32x32 but 16x16 were expected" in capsys.readouterr().err
    np.save(workdir / "empty.npy", np.zeros((0, 1, 16, 16), np.uint8))
    assert run(train.main, ["--data", "empty.npy", "--out", "m"]) == 2
    assert "image array empty.npy holds no images" in capsys.readouterr().err
    assert not (workdir / "m").exists()


def test_auto_keys_take_the_recipe_of_the_data_kind_through_the_stage(workdir, capsys):
    """The recipe's auto keys (r1_gamma, ema_decay, ...): the train stage resolves them from the
    data, logs them, and trains exactly what the resolved values given by hand train."""
    from dcgan.app.recipe import RECIPES
    from dcgan.data import arrays
    from dcgan.networks.model_dir import load_generator

    rng = np.random.default_rng(0)
    for channels, kind in ((3, "colour"), (1, "grey")):
        arrays.save_images(workdir / f"x{channels}.npy", rng.integers(0, 256, (64, channels, 16, 16), dtype=np.uint8))
        gamma = RECIPES[kind]["r1_gamma"]
        digests = []
        for r1 in ("auto", gamma):
            tag = f"{channels}-{r1}"
            keys = {k: "auto" for k in RECIPES[kind]} if r1 == "auto" else dict(RECIPES[kind])  # every key given
            write_params(workdir / f"{tag}.yaml", tiny_params(prepare={"channels": channels}, train={
                **keys, "eval_every": 0, "reg_every": 1, "min_images": 0}))
            assert run(train.main, ["--params", f"{tag}.yaml", "--data", f"x{channels}.npy", "--out", f"m{tag}",
                                    "--checkpoints", f"c{tag}", "--live", f"l{tag}"]) == 0
            err = capsys.readouterr().err
            if r1 == "auto":
                assert f"train: {kind} recipe ({channels} channel" in err and f"r1_gamma {gamma}" in err
                assert f"ema_decay {RECIPES[kind]['ema_decay']}" in err
            else:
                assert "recipe" not in err
            g = load_generator(workdir / f"m{tag}")
            digests.append(b"".join(p.detach().numpy().tobytes() for p in g.parameters()))
        assert digests[0] == digests[1], kind


def test_min_images_gives_a_small_set_more_epochs(workdir, capsys):
    """train.min_images: 64 images at batch 32 are 2 steps (64 images) an epoch, so at least 160
    images take 3 epochs (6 steps) where train.epochs says 1; the stage says so."""
    from dcgan.data import arrays

    arrays.save_images(workdir / "x.npy", np.random.default_rng(0).integers(0, 256, (64, 1, 16, 16), dtype=np.uint8))
    write_params(workdir / "p.yaml", tiny_params(train={"eval_every": 0, "min_images": 160}))
    assert run(train.main, ["--params", "p.yaml", "--data", "x.npy", "--out", "m", "--checkpoints", "c",
                            "--live", "l"]) == 0
    assert "train: 3 epochs instead of 1: train.min_images 160 on 64 images at batch 32" in capsys.readouterr().err
    assert json.loads((workdir / "l/metrics.json").read_text())["train"]["steps"] == 6


def test_grey_stored_as_rgb_gets_the_grey_recipe(workdir, capsys):
    """Grey digits copied into 3 channels train the grey recipe (and say why); the same images
    with colour train the colour one."""
    from dcgan.data import arrays

    grey = np.random.default_rng(0).integers(0, 256, (64, 1, 16, 16), dtype=np.uint8)
    arrays.save_images(workdir / "g.npy", np.repeat(grey, 3, axis=1))
    write_params(workdir / "p.yaml", tiny_params(prepare={"channels": 3}, train={"eval_every": 0, "min_images": 0,
                                                                                  "r1_gamma": "auto"}))
    assert run(train.main, ["--params", "p.yaml", "--data", "g.npy", "--out", "m", "--checkpoints", "c",
                            "--live", "l"]) == 0
    err = capsys.readouterr().err
    assert "train: grey recipe (3 channels, but R = G = B in every one of 64 images read" in err
    assert "r1_gamma 0.1" in err


def test_augment_copies_auto_gives_no_copies_of_either_kind_and_a_count_given_wins(workdir, capsys):
    """augment.copies auto: neither colour photos nor grey data (grey stored as RGB included) get
    copies (they leak into what G draws, issue 49), bit for bit what 0 given by hand makes, and
    the stage says why; a count given by hand still gets its copies; a bad value names the key
    and writes nothing."""
    from dcgan.app.params.augment import AUTO_COPIES
    from dcgan.data import arrays

    assert AUTO_COPIES == {"colour": 0, "grey": 0}
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (24, 1, 16, 16), dtype=np.uint8)
    sets = {"colour": rng.integers(0, 256, (24, 3, 16, 16), dtype=np.uint8), "grey": grey,
            "grey-rgb": np.repeat(grey, 3, axis=1)}
    for name, x in sets.items():
        kind = name.split("-")[0]
        (workdir / name).mkdir()
        arrays.save_images(workdir / name / "train.npy", x)
        np.save(workdir / name / "train_labels.npy", np.zeros(len(x), np.int64))
        out = {}
        for copies in ("auto", AUTO_COPIES[kind]):
            write_params(workdir / f"{name}-{copies}.yaml", tiny_params(augment={"copies": copies}))
            assert run(augment.main, ["--params", f"{name}-{copies}.yaml", "--data", name,
                                      "--out", f"{name}-out-{copies}"]) == 0
            out[copies] = np.load(workdir / f"{name}-out-{copies}" / "train.npy")
        err = capsys.readouterr().err
        assert f"augment: copies auto -> {AUTO_COPIES[kind]} for {kind} data" in err
        assert "copies leak into what G draws" in err
        assert len(out["auto"]) == len(x) * (AUTO_COPIES[kind] + 1)
        assert np.array_equal(out["auto"], out[AUTO_COPIES[kind]]), name
        np.testing.assert_array_equal(out["auto"][:len(x)], x)
    # one copy by hand: the originals, then copies that differ from them
    write_params(workdir / "one.yaml", tiny_params(augment={"copies": 1}))
    assert run(augment.main, ["--params", "one.yaml", "--data", "grey", "--out", "one-out"]) == 0
    one = np.load(workdir / "one-out" / "train.npy")
    assert len(one) == 2 * len(grey) and np.array_equal(one[:len(grey)], grey)
    assert not np.array_equal(one[len(grey):], grey)
    assert "copies auto" not in capsys.readouterr().err
    write_params(workdir / "bad.yaml", tiny_params(augment={"copies": "two"}))
    assert run(augment.main, ["--params", "bad.yaml", "--data", "grey", "--out", "bad-out"]) == 2
    assert "augment.copies" in capsys.readouterr().err
    assert not (workdir / "bad-out").exists()


def test_kid_error_bar_resamples_the_estimate_itself(pipeline):
    """KID's bootstrap averages as many subsets per resample as the reported estimate does
    (evaluate.kid_subsets), not fewer: its standard error is the estimate's, not a noisier one's."""
    from dcgan.core.seeding import derive_seed
    from dcgan.metrics.reference import load_reference
    from dcgan.metrics.uncertainty import bootstrap

    params = yaml.safe_load((pipeline / "params.yaml").read_text())
    ev = params["evaluate"]
    m = json.loads((pipeline / "reports/metrics.json").read_text())
    gen = np.load(pipeline / "data/evaluated/features.npy")[:m["protocol.n_samples"]]  # the scored rows
    ref = load_reference(pipeline / "models/evaluator", pipeline / "data/prepared", params["evaluator"]["extractor"])[0]

    def se(subsets: int) -> float:
        return bootstrap(m, gen, None, ref.features, ("kid",), ev["bootstrap"],
                         derive_seed(params["base"]["seed"], "bootstrap"), ev["is_splits"],
                         kid_subsets=subsets, kid_subset_size=ev["kid_subset_size"])["kid_mean_se"]

    assert m["protocol.kid_subsets"] == ev["kid_subsets"] != 10
    assert m["kid_mean_se"] == pytest.approx(se(ev["kid_subsets"]), rel=1e-9)
    assert m["kid_mean_se"] != pytest.approx(se(10), rel=1e-3)  # what it was: 10 subsets per resample


def test_the_gate_knows_features_from_their_metrics(pipeline):
    """Issue 38: the paired test uses features.npy only when it gives the FID of the
    metrics.json beside it (the same evaluate run); features of any other draw do not."""
    from dcgan.app import retrain as rt

    m = json.loads((pipeline / "reports/metrics.json").read_text())
    gen = np.load(pipeline / "data/evaluated/features.npy")
    ref, n = pipeline / "models/evaluator/reference.npz", m["protocol.n_samples"]
    # every generated image's features (the gate's power), the first n scored beside the floors
    assert len(gen) == yaml.safe_load((pipeline / "params.yaml").read_text())["sample"]["num_samples"] > n
    assert rt.features_match(gen, m["fid"], ref, n)
    assert not rt.features_match(gen, m["fid"], ref)  # all rows are not the n scored
    assert not rt.features_match(gen[1:], m["fid"], ref, n)  # shifted by one image
    assert not rt.features_match(gen[::-1], m["fid"], ref, n)
    assert not rt.features_match(gen, m["fid"] * (1 + 1e-4), ref, n)
    assert not rt.features_match(gen, None, ref, n)
    assert not rt.features_match(gen[:n - 1], m["fid"], ref, n)  # fewer rows than were scored
