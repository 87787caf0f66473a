import pytest

from dcgan.app.params.whole import MOVED, load_params, parse_params
from dcgan.core.errors import ConfigError
from tests.conftest import REPO, merge, shipped_params, tiny_params, write_params


def test_shipped_params_validate():
    p = load_params(REPO / "params.yaml")
    assert p.prepare.dataset == "digits"
    assert p.train.lr == pytest.approx(2e-4)


def test_params_are_frozen():
    p = parse_params(shipped_params())
    with pytest.raises(AttributeError):
        p.train.lr = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("train", "lr", -1, "train.lr must be > 0, got -1.0"),
        ("train", "lr", "fast", "train.lr must be a number, got 'fast'"),
        ("train", "epochs", 2.5, "train.epochs must be an integer, got 2.5"),
        ("train", "epochs", True, "train.epochs must be an integer, got True"),
        ("train", "beta1", 1.0, "train.beta1 must be in [0, 1), got 1.0"),
        ("prepare", "image_size", 48, "prepare.image_size must be a power of two from 16 to 256, got 48"),
        ("prepare", "image_size", 512, "prepare.image_size must be a power of two from 16 to 256, got 512"),
        ("prepare", "channels", 2, "prepare.channels must be 1 or 3, got 2"),
        ("base", "device", "tpu", "base.device must be one of auto, cpu, cuda, mps, got 'tpu'"),
        ("augment", "hflip", "yes", "augment.hflip must be true or false, got 'yes'"),
        ("evaluator", "extractor", "vgg", "evaluator.extractor must be one of classifier, inception, got 'vgg'"),
        ("evaluate", "metrics", ["fid", "lpips"], "evaluate.metrics[1] must be one of fid, is, kid, pr, copies"),
        ("evaluate", "metrics", [], "evaluate.metrics must be a non-empty list, got []"),
        ("evaluate", "metrics", ["fid", "fid"], "evaluate.metrics must not repeat a metric"),
        ("sample", "generator", "first", "sample.generator must be one of auto, best, last, got 'first'"),
        ("train", "eval_every", -1, "train.eval_every must be >= 0 (0 = off), got -1"),
        ("train", "nproc", 0, "train.nproc must be >= 1, got 0"),
        ("train", "r1_gamma", "automatic", "train.r1_gamma must be a number or must be one of auto, got 'automatic'"),
        ("train", "d_lr", 0, "train.d_lr must be > 0 or null (= lr), got 0.0"),
        ("train", "ema_rampup", 2, "train.ema_rampup must be in [0, 1] (0 = off) or auto, got 2.0"),
        ("train", "nproc", 3, "train.batch_size must be divisible by train.nproc 3 (batch sizes are global"),
        ("train", "compile", "fast", "train.compile must be one of none, default, reduce-overhead, max-autotune"),
        # each key's range sits at its field, for a key that may also be auto or null too
        ("train", "ema_decay", 1.5, "train.ema_decay must be in [0, 1) (0 = off) or auto, got 1.5"),
        ("train", "batch_size", 0, "train.batch_size must be >= 1 or auto, got 0"),
        ("train", "r1_gamma", -1, "train.r1_gamma must be >= 0, got -1.0"),
        ("train", "batch_schedule", [[0, 8], [0, 16]], "train.batch_schedule must start at step 0 with increasing "
                                                        "steps, got [[0, 8], [0, 16]]"),
        ("train", "batch_schedule", [[0, 0]], "train.batch_schedule batch sizes must be >= 1, got [[0, 0]]"),
        ("train", "diffaug", ["color", "color"], "train.diffaug must not repeat a policy, got ['color', 'color']"),
        ("sample", "drs_percentile", 101, "sample.drs_percentile must be in [0, 100] or null, got 101.0"),
        ("evaluate", "bootstrap", 1, "evaluate.bootstrap must be 0 (off) or >= 2 resamples, got 1"),
        ("prepare", "workers", 0, "prepare.workers must be >= 1 or auto, got 0"),
    ],
)
def test_bad_values_name_key_and_value(section, key, value, message):
    raw = tiny_params(**{section: {key: value}})
    with pytest.raises(ConfigError) as exc:
        parse_params(raw)
    assert str(exc.value).startswith(message)


def test_unknown_key_is_rejected():
    raw = tiny_params(train={"learning_rate": 1e-3})
    with pytest.raises(ConfigError, match=r"train.learning_rate is not a known key"):
        parse_params(raw)


def test_missing_key_is_rejected():
    raw = tiny_params()
    del raw["train"]["lr"]
    with pytest.raises(ConfigError, match=r"train.lr is missing"):
        parse_params(raw)


def test_unknown_and_missing_sections():
    raw = tiny_params()
    raw["trian"] = {}
    with pytest.raises(ConfigError, match="trian is not a known params section"):
        parse_params(raw)
    raw = tiny_params()
    del raw["sample"]
    with pytest.raises(ConfigError, match="section sample is missing"):
        parse_params(raw)


def test_float_written_without_dot_is_accepted():
    # YAML 1.1 reads 2e-4 as a string; `dvc exp run -S train.lr=2e-4` can write it so.
    raw = tiny_params(train={"lr": "2e-4"})
    assert parse_params(raw).train.lr == pytest.approx(2e-4)


def test_folder_needs_root(tmp_path):
    raw = tiny_params(prepare={"dataset": "folder", "root": None})
    with pytest.raises(ConfigError, match="prepare.root must name the image folder"):
        parse_params(raw)


def test_missing_or_broken_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(bad)
    write_params(tmp_path / "ok.yaml", tiny_params())
    assert load_params(tmp_path / "ok.yaml").prepare.image_size == 16


def test_an_old_layout_params_file_gets_one_line_naming_each_move():
    """Each stage reads its own section: the evaluator's keys moved from evaluate into evaluator,
    and the sample stage's generator choice into sample. An old file says where, in one line."""
    raw = shipped_params()
    old_evaluator = {k: raw["evaluator"].pop(k) for k in ("extractor", "inception_weights", "inception_download",
                                                          "reference_max_images", "feature_batch_size")}
    raw["evaluate"].update({k: v for k, v in old_evaluator.items() if k != "feature_batch_size"},
                           generator=raw["sample"].pop("generator"))
    with pytest.raises(ConfigError) as exc:
        parse_params(raw)
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith("params.yaml has the old layout; move evaluate.extractor -> "
                                                "evaluator.extractor, ")
    for old, new in MOVED.items():
        assert f"{old} -> {new}" in msg
    assert "add evaluator.feature_batch_size" in msg
    raw["evaluator"]["feature_batch_size"] = 500  # half-way through the move: only what is left
    assert "add" not in str(pytest.raises(ConfigError, parse_params, raw).value)


def test_auto_keys_take_the_recipe_for_the_data_kind_and_given_values_stay():
    from dcgan.app.recipe import RECIPES, gan_config, objective_spec, resolve_recipe

    p = parse_params(shipped_params()).train
    assert {k: getattr(p, k) for k in RECIPES["grey"]} == {k: "auto" for k in RECIPES["grey"]}
    grey, colour = resolve_recipe(p, "grey"), resolve_recipe(p, "colour")
    assert {k: getattr(grey, k) for k in RECIPES["grey"]} == RECIPES["grey"]
    assert {k: getattr(colour, k) for k in RECIPES["colour"]} == RECIPES["colour"]
    assert RECIPES["grey"] != RECIPES["colour"]
    # grey: R1 gamma 0.1 (issue 21), since issue 37 the colour recipe's EMA of G, and since issue 49
    # (no copies) at least the 880 steps of 64 that one copy of the 1,438 digits gave
    assert RECIPES["grey"] == {"r1_gamma": 0.1, "min_images": 880 * 64, "ema_decay": 0.999, "ema_rampup": 0.05}
    given = parse_params(merge(shipped_params(), {"train": {"r1_gamma": 0.5}})).train
    assert resolve_recipe(given, "colour").r1_gamma == 0.5 and resolve_recipe(given, "grey").r1_gamma == 0.5
    # the library's objects are never built from an unresolved auto (the architecture has none)
    with pytest.raises(ValueError, match="train.r1_gamma, train.min_images, train.ema_decay, train.ema_rampup "
                                         "still auto"):
        objective_spec(p)
    assert gan_config(p, 32, 1) == gan_config(resolve_recipe(p, "colour"), 32, 1)
    with pytest.raises(ValueError, match="still auto"):
        objective_spec(p)


def test_min_images_raises_epochs_only_where_the_set_is_small_whatever_the_batch_size():
    import dataclasses

    from dcgan.app.recipe import images_trained, resolve_length

    p = dataclasses.replace(parse_params(shipped_params()).train, epochs=20, min_images=5120 * 64)
    assert resolve_length(p, 4098, 64).epochs == 80  # the colour setting: 64 steps of 64 an epoch
    # the same images at any batch size: not 5,120 one-step epochs at batch 4096
    assert resolve_length(p, 4098, 4096).epochs == 80  # 80 one-step epochs, where min_steps gave 5,120
    for n, bs, epochs in ((4098, 32, 80), (3000, 64, 112), (3000, 512, 128), (3000, 2048, 160)):
        e = resolve_length(p, n, bs).epochs
        assert e == epochs == -(-5120 * 64 // (n // bs * bs)), (n, bs)
        assert images_trained(n, e, p, bs) >= 5120 * 64 > images_trained(n, e - 1, p, bs)
    assert resolve_length(p, 202_599, 64).epochs == 20  # CelebA: 20 epochs are 4 million images already
    # in-training FIDs stretch with the epochs: as many as 20 epochs at every 2 asked for (issue 49)
    for n, epochs, every in ((4098, 80, 8), (2049, 160, 16), (3000, 112, 11), (202_599, 20, 2)):
        r = dataclasses.replace(p, eval_every=2)
        assert (resolve_length(r, n, 64).epochs, resolve_length(r, n, 64).eval_every) == (epochs, every), n
    assert resolve_length(dataclasses.replace(p, eval_every=0), 2049, 64).eval_every == 0
    assert resolve_length(p, 202_599, 4096).epochs == 20
    assert resolve_length(dataclasses.replace(p, min_images=0), 100, 64).epochs == 20
    assert resolve_length(p, 1000, 64).epochs == 342  # 15 steps of 64 an epoch: ceil(5120 / 15)
    sched = dataclasses.replace(p, batch_schedule=((0, 32), (100, 64)))
    e = resolve_length(sched, 1000, 64).epochs
    assert images_trained(1000, e, sched, 64) >= 5120 * 64 > images_trained(1000, e - 1, sched, 64)
    with pytest.raises(ValueError, match="min_images still auto"):
        resolve_length(parse_params(shipped_params()).train, 100, 64)


def test_the_recipe_follows_the_pixels_not_the_channel_count():
    import numpy as np

    from dcgan.data.kind import data_kind

    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (50, 1, 8, 8), dtype=np.uint8)
    assert data_kind(grey) == ("grey", "1 channel")
    rgb_grey = np.repeat(grey, 3, axis=1)  # grey digits copied into 3 channels
    kind, why = data_kind(rgb_grey)
    assert kind == "grey" and "R = G = B" in why and "50 images" in why
    colour = rgb_grey.copy()
    colour[37, 2, 3, 4] ^= 1  # one pixel of one image off grey: colour
    assert data_kind(colour) == ("colour", "3 channels")
    assert data_kind(rng.integers(0, 256, (5000, 3, 4, 4), dtype=np.uint8))[0] == "colour"


def test_plan_run_decides_every_auto_once_with_one_line_each():
    import dataclasses

    import numpy as np
    import torch

    from dcgan.app.recipe import RECIPES, plan_run

    given = dataclasses.replace(parse_params(shipped_params()).train, epochs=1, batch_size=32,
                                precision="auto", compile="auto")
    grey = np.zeros((64, 1, 16, 16), np.uint8)
    run = plan_run(given, grey, 16, 1, None, torch.device("cpu"))
    lines = run.decisions
    assert [line.split()[1] for line in lines[:2]] == ["precision", "compile"]
    assert lines[1] == "train: compile none (CUDA graphs need a CUDA device, not cpu)"
    assert lines[2].startswith("train: grey recipe (1 channel): ")
    assert len(lines) == 4  # grey: at least 56,320 images, 880 epochs of 2 steps of 32 here
    assert lines[3] == ("train: 880 epochs instead of 1: train.min_images 56320 on 64 images at batch 32; "
                        "in-training FID every 1760 epochs instead of 2, as many as asked for")
    assert run.precision in ("fp32", "bf16") and run.compile == "none"
    assert run.objective.r1_gamma == RECIPES["grey"]["r1_gamma"] and run.ema_decay == RECIPES["grey"]["ema_decay"]
    assert run.batch_size == 32 and not run.batch_auto and run.epochs == 880
    assert run.arch.image_size == 16 and run.arch.channels == 1 and run.lr == given.lr
    colour = np.random.default_rng(0).integers(0, 256, (64, 3, 16, 16), dtype=np.uint8)
    run = plan_run(dataclasses.replace(given, min_images=160, batch_size="auto", precision="fp32"),
                   colour, 16, 3, None, torch.device("cpu"))
    assert run.decisions[0] == "train: precision fp32 (as set)"
    assert run.decisions[3].startswith("train.batch_size auto: no accelerator memory to probe on the CPU")
    assert run.decisions[4] == ("train: 3 epochs instead of 1: train.min_images 160 on 64 images at batch 64; "
                                "in-training FID every 6 epochs instead of 2, as many as asked for")
    assert run.eval_every == 6 and run.epochs == 3
    assert run.batch_auto and run.batch_size == 64
