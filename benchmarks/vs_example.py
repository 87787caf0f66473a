"""The shipped recipe against the official example's plain DCGAN loop, at equal steps and at
equal seconds, on grey and colour data, scored by an independent judge (benchmarks/judge.py).

    python benchmarks/vs_example.py instruments              # what each feature space sees
    python benchmarks/vs_example.py run --seeds 5            # every setting and arm, 5 paired seeds
    python benchmarks/vs_example.py run --settings colour --arms shipped example32 --seeds 5
    python benchmarks/vs_example.py rescore --log reports/ship_study.json --settings digits --arms shipped --steps 900
    python benchmarks/vs_example.py report                   # rewrite reports/vs_example.md from the log

Settings (each a fixed set of real images, treated as a user's dataset):

- ``colour``: the 2,049 prepared training photos of ``shared/data/colour-photos`` (the README's
  colour switch, benchmarks/ablation_data.py), 32×32×3;
- ``grey``: the 10,066 images of the ablation's digits10k setting, 32×32×1 (1,438 digits and 6
  augment-stage copies of each: copies are part of its data);
- ``digits``: the 1,438 prepared digits alone, 32×32×1, so that the ``shipped`` arms add the
  augment stage's copies on top as the pipeline does (the grey leak check, issue 49).

Arms, each trained for ``--steps`` steps (default: the colour length, 5,120; ``--length 4``
for 4× it) on the same seed's data order and initial weights where they share a loop:

- ``shipped``: what the train stage trains with params.yaml as shipped (``auto`` keys resolved
  for the data, in-training FID and best-by-FID selection included), on the data plus what
  params.yaml's ``augment.copies`` resolves to for it (``auto``: no copies, on colour and grey
  alike since issue 49); other ``ours`` arms change one thing (:data:`ARMS`);
- ``example32`` / ``example64``: benchmarks/train_speed.py's copy of pytorch/examples'
  dcgan/main.py loop (BCE, Adam 2e-4/0.5, N(0, 0.02) init, nz 100, batch 64, fp32, no
  augmentation) at width 32 (the project's) and 64 (the example's own). Its generator is kept at
  ``--steps`` (equal steps) and at the wall time of the seed's ``shipped`` run (equal seconds,
  measured in the same process under the same load); it samples as the example draws its grid
  (G in train mode, 64 at a time).

``example32_copies`` is the example at width 32 on what ours trains on in the arms with copies
(the data plus the augment stage's copies), for equal steps on the same images (issue 49).

Every arm draws ``--samples`` images (2,000), scored at that count by the judge and by the
evaluate stage's extractor, both against the setting's images; the judge also against real
images nobody trained on (``judge_fid_unseen``), and the leak detector (benchmarks/leak.py)
gives the share it calls augmented (``leak_rate``). Each run's line goes to
``--log`` (reports/vs_example.json) as it finishes, so a study cut short keeps what it has.
"""

from __future__ import annotations

import os

os.environ.setdefault("TQDM_DISABLE", "1")

import argparse  # noqa: E402
import copy  # noqa: E402
import dataclasses  # noqa: E402
import fcntl  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ablation_data  # noqa: E402
import ganrun  # noqa: E402
import judge as judge_mod  # noqa: E402
import leak as leak_mod  # noqa: E402
from ablation import machine  # noqa: E402
from seedstats import paired, spread  # noqa: E402
from train_speed import Reference  # noqa: E402

from dcgan.app.params.augment import resolve_copies  # noqa: E402
from dcgan.app.params.whole import load_params  # noqa: E402
from dcgan.app.recipe import gan_config, resolve_length, resolve_recipe  # noqa: E402
from dcgan.core.seeding import derive_seed  # noqa: E402
from dcgan.data.arrays import load_images  # noqa: E402
from dcgan.data.augment import Augmentation, augment  # noqa: E402
from dcgan.data.kind import data_kind  # noqa: E402
from dcgan.metrics.fid import feature_stats, frechet_distance  # noqa: E402
from dcgan.metrics.inception_score import inception_score  # noqa: E402
from dcgan.metrics.reference import make_extractor  # noqa: E402
from dcgan.networks.gan import Generator  # noqa: E402
from dcgan.networks.model_dir import pick_generator  # noqa: E402
from dcgan.networks.sampling import generate  # noqa: E402

CPU = torch.device("cpu")
COLOUR_LENGTH = 5120
"""Steps at batch 64: the colour recipe's length (train.min_images on colour photos, over 64)."""

# ours arms: (train params changes, offline augmentation: "copies" (one augment-stage copy of each
# image, as params.yaml shipped before issue 49) | "params" (what params.yaml's augment.copies
# resolves to for the data: none, on colour and grey alike) | "none" | "mirror" | "duplicate"). The
# ``dcgan_*`` arms are the colour recipe as it shipped before issue 37 (plain DCGAN's objective,
# no EMA) with each kind of offline augmentation; the ``ema_*`` arms add the EMA that now ships
NO_EMA = {"ema_decay": 0.0, "ema_rampup": 0.0}
EMA = {"ema_decay": 0.999, "ema_rampup": 0.05}
ARMS: dict[str, tuple[dict, str]] = {
    "shipped": ({}, "params"),
    "dcgan_aug": (NO_EMA, "copies"),
    "dcgan_noaug": (NO_EMA, "none"),
    "dcgan_mirror": (NO_EMA, "mirror"),
    "dcgan_noaug_fp32": ({**NO_EMA, "precision": "fp32"}, "none"),
    "ema_aug": (EMA, "copies"),
    "ema_mirror": (EMA, "mirror"),
    "ema_noaug": (EMA, "none"),
    "ema_aug_fp32": ({**EMA, "precision": "fp32"}, "copies"),
    # augmentation of every image D sees, reals and fakes alike, on the originals alone (issue 49):
    # ADA (bgc, the paper's default pipeline, p tuned to r_t = 0.6) and DiffAugment at its paper's
    # strength (colour, translation by 1/8, cutout of 1/2), each with the EMA
    "ema_ada": ({**EMA, "ada": "bgc"}, "none"),
    "ema_ada_bg": ({**EMA, "ada": "bg"}, "none"),
    "ema_diffaug": ({**EMA, "diffaug": ("color", "translation", "cutout")}, "none"),
    "ema_noaug_fp32": ({**EMA, "precision": "fp32"}, "none"),
    # grey's R1 every 4 steps (the grey recipe before issue 37's end) or every 16, as stylegan2
    # regularises (a cheaper step); with the EMA as well
    "r1_every4": ({"reg_every": 4}, "copies"),
    "r1_lazy16": ({"reg_every": 16}, "copies"),
    "r1_lazy16_ema": ({"reg_every": 16, **EMA}, "copies"),
    # the recipe params.yaml resolves for the data on the originals alone (``shipped`` since grey's
    # copy went, issue 49) or with one augment-stage copy of each image (grey's default before)
    "shipped_noaug": ({}, "none"),
    "shipped_copy": ({}, "copies"),
    "shipped_ada_bg": ({"ada": "bg"}, "none"),
    # the grey recipe on the originals twice over: a copy that changes no pixel, so that what one
    # augment-stage copy adds beyond a dataset twice the size is measured apart (issue 49)
    "shipped_dup": ({}, "duplicate"),
    # the grey recipe with DiffAugment on the originals: every view D gets shifted (by up to 1/8,
    # integer pixels, what the copies do by resampling), or the paper's full strength
    "shipped_diffaug_t": ({"diffaug": ("translation",)}, "none"),
    "shipped_diffaug": ({"diffaug": ("color", "translation", "cutout")}, "none"),
    # the grey recipe on the originals with a stronger R1 (0.4 against the shipped 0.1): D held
    # smoother where the copies had made its task harder, with no copy for G to learn (issue 49)
    "shipped_r1x4": ({"r1_gamma": 0.4}, "none"),
}
# the example's loop: (width, the images it trains on: "none" = the data, "copies" = the data plus
# the augment stage's copies, what ours trains on in the arms with copies; issue 49)
EXAMPLES: dict[str, tuple[int, str]] = {"example32": (32, "none"), "example64": (64, "none"),
                                        "example32_copies": (32, "copies")}


@dataclasses.dataclass
class Setting:
    name: str
    params: object
    data: np.ndarray
    """The dataset: what the example trains on and what every FID is measured against."""
    prepared: str
    evaluator: str
    judge: judge_mod.Judge
    extractor: object
    ref_mu: np.ndarray
    ref_sigma: np.ndarray
    ref_embed: tuple[np.ndarray, np.ndarray]
    """The data's statistics in the evaluator's embedding alone (its features before issue 37)."""
    unseen: np.ndarray
    """Real images nobody trained on (:func:`unseen_reals`): a second reference for the judge."""
    unseen_stats: tuple[np.ndarray, np.ndarray]
    """Their statistics in the judge's space."""
    leak: leak_mod.Detector
    """Tells the augment stage's copies from originals (benchmarks/leak.py)."""
    leak_native: leak_mod.Detector | None = None
    """The same at the data's own resolution, where prepare upscaled it (the 8×8 digits): blind to
    the upscale's lattice, which every resample leaves (benchmarks/leak.py)."""


def load_setting(name: str, root: Path) -> Setting:
    """The setting built by ablation_data.py, with the judge trained on its holdout split."""
    src = {"colour": "colour", "grey": "digits10k", "digits": "digits"}[name]
    f = ablation_data.build(src, root)
    params = load_params(f.params)
    size, ch = params.prepare.image_size, params.prepare.channels
    originals = name in ("colour", "digits")  # grey's data is digits10k: 1,438 digits and 6 copies each
    data = load_images(f.prepared / "train.npy" if originals else f.train, channels=ch, size=size)
    holdout = load_images(f.prepared / "holdout.npy", channels=ch, size=size)
    labels = np.load(f.prepared / "holdout_labels.npy")
    train_labels = np.load(f.prepared / "train_labels.npy")
    prepared_train = load_images(f.prepared / "train.npy", channels=ch, size=size)
    judge = judge_mod.build(root / name / "judge_no_crops", holdout, labels, data,
                            test=(prepared_train, train_labels))
    extractor = make_extractor("classifier", str(f.evaluator), "", 500, CPU)
    feats = extractor(data, "features")[0]
    mu, sigma = feature_stats(feats)
    embed = feature_stats(feats[:, -extractor.model.cfg.feature_dim:])
    unseen = unseen_reals(name, root)[0]
    detector = leak_mod.build(root / name / "leak_detector", prepared_train, copy_spec(name), unseen)
    native = NATIVE.get(name)
    at_native = None if native is None else leak_mod.build(root / name / f"leak_detector_native{native}",
                                                            prepared_train, copy_spec(name), unseen, native=native)
    return Setting(name, params, data, str(f.prepared), str(f.evaluator), judge, extractor, mu, sigma, embed,
                   unseen, feature_stats(judge_mod.features(judge.net, unseen)[0]), detector, at_native)


NATIVE = {"digits": 8, "grey": 8}
"""The resolution each setting's images came in at, where prepare upscaled them (scikit-learn's
8×8 digits, to 32×32); the colour photos are 32×32 as they come."""


def score(st: Setting, images: np.ndarray) -> dict[str, float]:
    """FID and IS of uint8 ``images`` in the judge's and in the evaluator's space: ``fid`` in the
    evaluator's embedding alone (its features before issue 37, so every run in the log compares),
    ``fid_ms`` in its multi-scale features (what the evaluate stage reports now);
    ``judge_fid_unseen`` against real images nobody trained on; ``leak_rate``: the share the leak
    detector calls augmented (benchmarks/leak.py); ``leak_rate_native``: the same at the data's own
    resolution, where it was upscaled, and ``off_lattice`` the share of the images' energy off that
    upscale's lattice."""
    j = st.judge.score(images, also={"unseen": st.unseen_stats})
    feats, logits = st.extractor(images, "features")
    embed = feats[:, -st.extractor.model.cfg.feature_dim:]  # the embedding closes the multi-scale features
    return {"judge_fid": j["fid"], "judge_is": j["is_mean"],
            "judge_fid_unseen": j["fid_unseen"],
            "leak_rate": st.leak.rate(images),
            **({"leak_rate_native": st.leak_native.rate(images),
                "off_lattice": leak_mod.off_lattice(images, st.leak_native.native)} if st.leak_native is not None else {}),
            "fid": frechet_distance(*feature_stats(embed), *st.ref_embed),
            "fid_ms": frechet_distance(*feature_stats(feats), st.ref_mu, st.ref_sigma),
            "is": inception_score(logits, 10)[0]}


def training_set(st: Setting, kind: str, seed: int = 0) -> np.ndarray:
    """The data with the offline augmentation of ``kind``: one augment-stage copy of each image
    (``copies``: params.yaml's transforms, + hflip on colour as the README switches it on), what
    params.yaml's ``augment.copies`` resolves to for the data (``params``), none, one exact
    mirror image of each, or each image twice (``duplicate``)."""
    copies = 1
    if kind == "params":
        copies = resolve_copies(load_params(ablation_data.PIPELINE.params).augment.copies, data_kind(st.data)[0])
        kind = "copies" if copies else "none"
    if kind == "none":
        return st.data
    if kind == "mirror":
        return np.concatenate([st.data, st.data[..., ::-1]])
    if kind == "duplicate":
        return np.concatenate([st.data, st.data])
    return augment(st.data, dataclasses.replace(copy_spec(st.name), copies=copies), derive_seed(seed, "augment"))


def copy_spec(name: str) -> Augmentation:
    """One copy of each image with params.yaml's augment transforms (the README's ``hflip`` on
    colour): what the augment stage appended before issue 49, and what the leak detector learns."""
    a = load_params(ablation_data.PIPELINE.params).augment  # params.yaml's (the grey setting's own built digits10k)
    return Augmentation(1, name == "colour" or a.hflip, a.crop_scale_min, a.rotate_degrees, a.translate)


def ours(st: Setting, arm: str, seed: int, steps: int, samples: int) -> dict:
    changes, aug = ARMS[arm]
    p = st.params
    images = training_set(st, aug, 0)
    # the colour length as a step count: epochs high enough, max_steps stops the run exactly; the
    # in-training FIDs as often as the pipeline runs them on these images (train.min_images
    # stretches train.eval_every with the epochs: logged runs before issue 49's end had every 2)
    every = resolve_length(resolve_recipe(dataclasses.replace(p.train, **changes), data_kind(images)[0]),
                           len(images), 64).eval_every
    params = ganrun.with_seed(p, seed, **{"min_images": 0, "max_steps": steps, "epochs": 10**6, **changes,
                                          "eval_every": every})
    params = dataclasses.replace(params, sample=dataclasses.replace(params.sample, generator="best"))  # t.g: the best
    t0 = time.perf_counter()
    t = ganrun.train_run(params, images, CPU, st.evaluator, st.prepared, f"{st.name}-{arm}-{seed}")
    wall = time.perf_counter() - t0
    out = {"steps": t.steps, "wall_s": round(wall, 1), "train_s": t.train_s, "precision": t.precision, "eval_every": every,
           "images": len(images), "evals": len(t.trajectory), "leak_held_out": st.leak.held_out,
           **({"leak_native_held_out": st.leak_native.held_out} if st.leak_native is not None else {}),
           "ships": pick_generator("auto", resolve_recipe(params.train, data_kind(images)[0]).ema_decay),
           **({"ada": t.ada} if t.ada is not None else {})}
    cache = Path(".ablation-cache") / "vs_example" / f"{st.name}-{steps}-{arm}-{seed}.pt"
    cache.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"best": t.g.state_dict(), "last": t.g_last.state_dict()}, cache)  # to rescore without training
    for which, g in (("best", t.g), ("last", t.g_last)):
        drawn = ganrun.draw(dataclasses.replace(t, g=g), samples, derive_seed(seed, "vs_sample"), CPU,
                            params.sample, False)[0]
        out[which] = score(st, drawn)
        # as the example draws: G in train mode (each batch of 64 normalised by its own statistics)
        out[f"{which}_trainbn"] = score(st, draw_train_mode(g, samples, derive_seed(seed, "vs_sample")))
    out["grid"] = ganrun.draw(t, 64, derive_seed(seed, "vs_sample"), CPU, params.sample, False)[0]
    return out


def example(st: Setting, width: int, seed: int, steps: int, seconds: float | None, samples: int,
            keep_every: int = 512, images: np.ndarray | None = None) -> dict:
    """The example's loop for ``steps`` steps, its G kept there, at ``seconds`` of wall time and
    every ``keep_every`` steps (``at_<n>``: for equal seconds at a step rate measured elsewhere),
    trained on ``images`` (default: the setting's data)."""
    torch.manual_seed(seed)
    ref = Reference(st.data if images is None else images, nz=100, ngf=width, ndf=width, batch=64)
    kept: dict[str, dict] = {}
    t0, n = time.perf_counter(), 0
    while n < steps or (seconds is not None and "equal_seconds" not in kept):
        if seconds is not None and "equal_seconds" not in kept and time.perf_counter() - t0 >= seconds:
            kept["equal_seconds"] = {"state": copy.deepcopy(ref.netG.state_dict()), "steps": n}
        if keep_every and n and n % keep_every == 0 and n < steps:
            kept[f"at_{n}"] = {"state": copy.deepcopy(ref.netG.state_dict()), "steps": n}
        if n == steps:
            kept["equal_steps"] = {"state": copy.deepcopy(ref.netG.state_dict()), "steps": n,
                                   "wall_s": round(time.perf_counter() - t0, 1)}
        ref.step()
        n += 1
    if n == steps and "equal_steps" not in kept:
        kept["equal_steps"] = {"state": copy.deepcopy(ref.netG.state_dict()), "steps": n,
                               "wall_s": round(time.perf_counter() - t0, 1)}
    out: dict = {"width": width}
    for which, k in kept.items():
        ref.netG.load_state_dict(k.pop("state"))
        drawn = draw_example(ref, samples, derive_seed(seed, "vs_sample"))
        out[which] = {**k, **score(st, drawn)}
        if which == "equal_steps":
            out["grid"] = drawn[:64]
    return out


@torch.no_grad()
def draw_example(ref: Reference, n: int, seed: int) -> np.ndarray:
    """As the example draws its fake grid: netG in train mode (batch statistics), 64 at a time."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(0, n, 64):
        x = ref.netG(torch.randn(64, 100, 1, 1, generator=gen))
        out.append(((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy())
    return np.concatenate(out)[:n]


@torch.no_grad()
def draw_train_mode(g, n: int, seed: int) -> np.ndarray:
    """n images from a copy of our G in train mode, 64 at a time, as the example draws its grid."""
    from dcgan.core.pixels import to_uint8
    from dcgan.networks.gan import pixels_of, prior_of, sample_prior

    g = copy.deepcopy(g).train()
    gen = torch.Generator().manual_seed(seed)
    out = [to_uint8(pixels_of(g, g(sample_prior(64, g.cfg.latent_dim, prior_of(g), gen)))).numpy()
           for _ in range(0, n, 64)]
    return np.concatenate(out)[:n]


def record(log_path: Path, key: list[str], result: dict) -> dict:
    """One run into the log under a lock (shards write the same file)."""
    with open(log_path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        log = json.loads(log_path.read_text()) if log_path.is_file() else {}
        node = log
        for k in key[:-1]:
            node = node.setdefault(k, {})
        node[key[-1]] = result
        tmp = log_path.with_suffix(".part")
        tmp.write_text(json.dumps(log, indent=1) + "\n")
        tmp.replace(log_path)
    return log


def unseen_reals(name: str, root: Path) -> tuple[np.ndarray, str]:
    """Real images of the setting that neither the GANs, the evaluator nor the judge trained on:
    the colour photos' test batch (prepare reads data_batch_1..5 only). Grey has none left: its
    holdout split is what the judge trained on, which the label says."""
    if name == "colour":
        import pickle

        with open(ablation_data.COLOUR_PHOTOS / "cifar-10-batches-py" / "test_batch", "rb") as f:
            raw = pickle.load(f, encoding="bytes")
        return np.asarray(raw[b"data"], np.uint8).reshape(-1, 3, 32, 32), "unseen photos (test_batch)"
    f = ablation_data.folders("digits10k", root)
    return np.load(f.prepared / "holdout.npy"), "held-out digits (the judge's own training images)"


def instruments(args) -> int:
    """What each feature space and the leak detector see of the offline augmentation: FID against
    the data of the augment stage's copies, of mirror images, of resampled originals and of real
    images nobody trained on (the floor), all at the same count (FID's bias depends on it), and
    the share of each the leak detector calls augmented."""
    rows = {}
    for name in args.settings:
        st = load_setting(name, Path(args.data_root))
        unseen, label = unseen_reals(name, Path(args.data_root))
        n = min(len(unseen), len(st.data))
        pick = np.random.default_rng(0).choice(len(st.data), n, replace=False)
        copies = training_set(st, "copies")[len(st.data):]
        rows[name] = {
            "images_each": n,
            "judge_accuracy_on_the_gan_training_split": st.judge.accuracy,
            "leak_detector_on_held_out_images": st.leak.held_out,
            label: score(st, unseen[:n]),
            "originals (a resample of the data)": score(st, st.data[pick]),
            "augmented copies (the augment stage's)": score(st, copies[pick]),
            "mirror images": score(st, st.data[pick][..., ::-1].copy()),
        }
        print(name, json.dumps(rows[name], indent=1), flush=True)
    doc = {"machine": machine(), "settings": rows}
    Path(args.instruments_out).write_text(json.dumps(doc, indent=1) + "\n")
    return 0


def run(args) -> int:
    torch.set_num_threads(args.threads or torch.get_num_threads())
    log_path = Path(args.log)
    k, n_shards = args.shard
    steps = args.steps * args.length
    length = f"x{args.length}"
    jobs = [(s, seed) for seed in (args.seed_list or range(args.seeds)) for s in args.settings]
    for i, (name, seed) in enumerate(jobs):
        if i % n_shards != k:
            continue
        st = load_setting(name, Path(args.data_root))
        log = json.loads(log_path.read_text()) if log_path.is_file() else {}
        have = log.get(name, {}).get(length, {})
        for arm in args.arms:
            if str(seed) in have.get(arm, {}) and not args.rerun:
                continue
            if arm in EXAMPLES:
                src = args.seconds_from
                shipped = have.get(src, {}).get(str(seed))
                if shipped is None:  # equal seconds need that arm's time on this machine, in this process
                    r = ours(st, src, seed, steps, args.samples)
                    r.pop("grid")
                    log = record(log_path, [name, length, src, str(seed)], {**r, "machine": machine()})
                    have = log[name][length]
                    shipped = have[src][str(seed)]
                width, trains_on = EXAMPLES[arm]
                images = training_set(st, trains_on)
                r = {**example(st, width, seed, steps, shipped["wall_s"], args.samples, images=images),
                     "images": len(images)}
            else:
                r = ours(st, arm, seed, steps, args.samples)
            grid = r.pop("grid")
            if seed == 0 and args.figures:
                from dcgan.core.images import save_grid

                Path(args.figures).mkdir(parents=True, exist_ok=True)
                save_grid(grid, Path(args.figures) / f"vs_{name}_{length}_{arm}.png", upscale=2)
            log = record(log_path, [name, length, arm, str(seed)], {**r, "machine": machine()})
            have = log[name][length]
            print(f"{name} {length} {arm} seed {seed}: {json.dumps(r)}", flush=True)
    return 0


def rescore(args) -> int:
    """Score the cached generators of ours arms already in the log again (what ``ours`` saved in
    .ablation-cache/vs_example), drawing the same images: the leak rates (``leak_rate_native`` and
    ``off_lattice`` written anew) go into their lines. The pixel leak rate they had must come out
    the same, else the cache or the setting changed (refused). Nothing to rescore is an error."""
    torch.set_num_threads(args.threads or torch.get_num_threads())
    log_path = Path(args.log)
    steps = args.steps * args.length
    length = f"x{args.length}"
    done = 0
    for name in args.settings:
        st = load_setting(name, Path(args.data_root))
        have = json.loads(log_path.read_text()).get(name, {}).get(length, {})
        for arm in args.arms:
            for seed_s, line in sorted(have.get(arm, {}).items(), key=lambda kv: int(kv[0])):
                seed = int(seed_s)
                if args.seed_list and seed not in args.seed_list:
                    continue
                cache = Path(".ablation-cache") / "vs_example" / f"{name}-{steps}-{arm}-{seed}.pt"
                if arm in EXAMPLES or not cache.is_file():
                    print(f"{name} {length} {arm} seed {seed}: no cached generator, left as it is", flush=True)
                    continue
                state = torch.load(cache, weights_only=True)
                changes, aug = ARMS[arm]
                cfg = gan_config(dataclasses.replace(st.params.train, **changes), st.params.prepare.image_size,
                                 st.params.prepare.channels, ganrun.data_stats(st.prepared))
                update = {}
                for which in ("best", "last"):
                    g = Generator(cfg)
                    g.load_state_dict(state[which])
                    drawn = generate(g.eval(), args.samples, cfg.latent_dim, derive_seed(seed, "vs_sample"), CPU,
                                     st.params.sample.batch_size)
                    new = {"leak_rate": st.leak.rate(drawn)}
                    if st.leak_native is not None:
                        new["leak_rate_native"] = st.leak_native.rate(drawn)
                        new["off_lattice"] = leak_mod.off_lattice(drawn, st.leak_native.native)
                    if new["leak_rate"] != line[which]["leak_rate"]:
                        raise SystemExit(f"error: {cache} draws other images than the logged run "
                                         f"(leak rate {new['leak_rate']} against {line[which]['leak_rate']})")
                    update[which] = {**line[which], **new}
                if st.leak_native is not None:
                    update["leak_native_held_out"] = st.leak_native.held_out
                record(log_path, [name, length, arm, seed_s], {**line, **update})
                done += 1
                print(f"{name} {length} {arm} seed {seed}: {json.dumps({k: v for k, v in update['best'].items() if 'leak' in k or 'lattice' in k})}",
                      flush=True)
    if not done:
        print(f"error: nothing rescored: {log_path} has no {length} runs of {', '.join(args.arms)} on "
              f"{', '.join(args.settings)} with a cached generator (--log names the study's log)", file=sys.stderr)
        return 1
    return 0


def ships(name: str, arm: str, r: dict) -> dict:
    """The scores of the generator the pipeline would ship from run ``r`` (sample.generator: auto:
    the last one with an EMA of G, else the best). Runs logged before the record said which: the
    ``ema_*`` arms and the colour recipe's ``shipped`` had the EMA (the grey ``shipped`` runs of
    then are logged as ``r1_every4``)."""
    which = r.get("ships") or ("last" if arm.startswith("ema_") or (arm == "shipped" and name == "colour")
                               else "best")
    return r[which]


def example_at(ex: dict, cmp: str, seconds: float, arms: dict, seed: str) -> dict | None:
    """The example run ``ex``'s scores to compare with an arm that took ``seconds``: at equal
    steps, or at equal seconds. Equal seconds: the first G it kept at or after ``seconds`` times
    its own step rate (measured in the same run); without kept Gs, the G it kept at the wall time
    of the seed's ``dcgan_aug`` run, if that time was at least ``seconds`` (never fewer seconds
    than ours: the example's side of the comparison errs its way)."""
    if cmp == "equal_steps":
        return ex.get("equal_steps")
    full = ex.get("equal_steps")
    snaps = sorted((r for k, r in ex.items() if k.startswith("at_")), key=lambda r: r["steps"])
    if full is None:
        return None
    if snaps:
        target = seconds * full["steps"] / full["wall_s"]
        return next((r for r in [*snaps, full] if r["steps"] >= target), full)
    base = arms.get("dcgan_aug", {}).get(seed)
    if "equal_seconds" in ex and base is not None and base["wall_s"] >= seconds:
        return ex["equal_seconds"]
    return None


def _cell(scores: list[dict], key: str) -> str:
    """The spread of ``key`` over runs that logged it (runs before issue 49 did not)."""
    have = [r[key] for r in scores if key in r]
    return str(spread(have)) if have else "—"


def report(args) -> int:
    log = json.loads(Path(args.log).read_text())
    lines = ["# The shipped recipe against the official example's loop", "",
             f"`python benchmarks/vs_example.py report` writes this from {args.log}. "
             "Judge: benchmarks/judge.py (an independent ResNet trained on held-out photos/digits only). "
             "Every FID against the setting's data, 2,000 samples a side. Ours is scored on the generator the "
             "pipeline ships (`sample.generator: auto`: the last one with an EMA of G, else the best by in-training "
             "FID). Δ: paired over seeds (ours − example), mean ± 95% CI; ratio: mean of per-seed ours / example. "
             "Arms: `shipped` is params.yaml's recipe for the data (colour: the EMA and, since issue 49, no copies, "
             "= `ema_noaug`; grey: R1 every 16 steps and the EMA, with one copy (= `r1_lazy16_ema`) until issue 49's "
             "grey check and without since (`shipped_copy`: with it)), `dcgan_aug` the colour recipe before issue 37, `r1_every4` the grey "
             "one (R1 every 4 steps, no EMA, the best generator); `ema_*` add the EMA; `mirror`/`noaug` swap the "
             "offline augmentation for exact mirror images or none. Evaluator: FID in its embedding alone (its "
             "features before issue 37, logged for every run); *now*: its multi-scale features, what the evaluate "
             "stage reports since (runs logged after the change only). Equal seconds: the example's first kept "
             "generator at or after our wall time × its own step rate. Machines: "
             + "; ".join(sorted({r.get("machine", "?") for ls in log.values() for arms in ls.values()
                                 for runs in arms.values() for r in runs.values()})) + ".", ""]
    for name, lengths in log.items():
        for length, arms in lengths.items():
            steps = sorted({r.get("steps") for runs in arms.values() for r in runs.values() if "steps" in r})
            lines += [f"## {name}, {length} ({', '.join(map(str, steps)) or '?'} steps)", ""]
            lines += ["| arm | vs | seeds | judge FID ours | judge FID example | Δ judge FID | ratio | "
                      "judge IS ours / example | evaluator Δ FID | evaluator now Δ FID |",
                      "|---|---|---|---|---|---|---|---|---|---|"]
            for arm in (a for a in arms if a not in EXAMPLES):
                for ex in (e for e in EXAMPLES if e in arms):
                    for cmp in ("equal_steps", "equal_seconds"):
                        pairs = [(ships(name, arm, arms[arm][s]), e) for s in sorted(arms[arm]) if s in arms[ex]
                                 and (e := example_at(arms[ex][s], cmp, arms[arm][s]["wall_s"], arms, s)) is not None]
                        if not pairs:
                            continue
                        a, b = [o["judge_fid"] for o, _ in pairs], [e["judge_fid"] for _, e in pairs]
                        ai, bi = [o["judge_is"] for o, _ in pairs], [e["judge_is"] for _, e in pairs]
                        ev = paired([o["fid"] for o, _ in pairs], [e["fid"] for _, e in pairs])
                        ms = [(o["fid_ms"], e["fid_ms"]) for o, e in pairs if "fid_ms" in o and "fid_ms" in e]
                        ev_ms = paired(*map(list, zip(*ms, strict=True))) if len(ms) >= 2 else None
                        now = (f"{ev_ms.mean:+.3g}, {ev_ms.verdict()} ({len(ms)} seeds)" if ev_ms else "—")
                        pr = paired(a, b)
                        lines.append(f"| {arm} | {ex} {cmp.replace('_', ' ')} | {len(pairs)} | {spread(a)} | "
                                     f"{spread(b)} | {pr.mean:+.3g} ± {pr.half_width:.2g}, {pr.verdict()}"
                                     f"{'' if 'detectable' in pr.verdict() else f'; detectable ≥ {pr.detectable:.2g}'} | "
                                     f"{spread([x / y for x, y in zip(a, b, strict=True)])} | {np.mean(ai):.3g} / "
                                     f"{np.mean(bi):.3g} (higher in {sum(x > y for x, y in zip(ai, bi, strict=True))}"
                                     f" of {len(ai)}) | {ev.mean:+.3g}, {ev.verdict()} | {now} |")
            base = (args.base if args.base in arms else
                    next((a for a in ("dcgan_aug", "r1_every4", "ema_aug", "shipped") if a in arms), None))
            what = {"dcgan_aug": "what shipped for colour before issue 37",
                    "r1_every4": "what shipped for grey before issue 37's end",
                    "ema_aug": "the colour recipe as issue 49 found it: the EMA and the augment stage's copies",
                    "ema_noaug": "the EMA on the originals alone: no copies, no augmentation",
                    "shipped": "the recipe params.yaml resolves for this data"}.get(base, "")
            if base is not None:
                lines += ["", f"Each arm against `{base}` ({what}) at equal steps "
                          "(paired; what each change does), in both spaces:", "",
                          "| arm | seeds | Δ judge FID | Δ judge FID vs unseen images | Δ evaluator FID | Δ leak rate | "
                          "Δ leak rate, native resolution |", "|---|---|---|---|---|---|---|"]
            for arm in (a for a in arms if base is not None and a not in EXAMPLES and a != base):
                seeds = sorted(set(arms[arm]) & set(arms[base]))
                if len(seeds) < 2:
                    continue
                cells = []
                for key in ("judge_fid", "judge_fid_unseen", "fid", "leak_rate", "leak_rate_native"):
                    a = [ships(name, arm, arms[arm][s]).get(key) for s in seeds]
                    b = [ships(name, base, arms[base][s]).get(key) for s in seeds]
                    if None in a or None in b:
                        cells.append("—")
                        continue
                    pr = paired(a, b)
                    cells.append(f"{pr.mean:+.3g} ± {pr.half_width:.2g}, {pr.verdict()}")
                lines.append(f"| {arm} | {len(seeds)} | " + " | ".join(cells) + " |")
            lines += ["", "The last generator against the best one (the same runs; last − best), and the last one "
                      "against the example's at equal steps:", "",
                      "| arm | seeds | Δ judge FID, last − best | Δ evaluator FID, last − best | "
                      "Δ judge FID, last − example32 at equal steps | ratio |", "|---|---|---|---|---|---|"]
            for arm in (a for a in arms if a not in EXAMPLES):
                runs = arms[arm]
                seeds = sorted(runs)
                if len(seeds) < 2:
                    continue
                cells = []
                for key in ("judge_fid", "fid"):
                    pr = paired([runs[s]["last"][key] for s in seeds], [runs[s]["best"][key] for s in seeds])
                    cells.append(f"{pr.mean:+.3g} ± {pr.half_width:.2g}, {pr.verdict()}")
                ex = arms.get("example32", {})
                both = [s for s in seeds if "equal_steps" in ex.get(s, {})]
                if len(both) >= 2:
                    a = [runs[s]["last"]["judge_fid"] for s in both]
                    b = [ex[s]["equal_steps"]["judge_fid"] for s in both]
                    pr = paired(a, b)
                    cells += [f"{pr.mean:+.3g} ± {pr.half_width:.2g}, {pr.verdict()} ({len(both)} seeds)",
                              str(spread([x / y for x, y in zip(a, b, strict=True)]))]
                else:
                    cells += ["—", "—"]
                lines.append(f"| {arm} | {len(seeds)} | " + " | ".join(cells) + " |")
            lines += ["", "Every arm: *best* is the generator the pipeline ships (best by the evaluator's 500-sample "
                      "in-training FID), *last* the one at the end; *train-mode BN*: the same generator drawn as the "
                      "example draws (batch statistics, 64 at a time).", "",
                      "| arm | seeds | steps | wall s | steps/s | judge FID best | judge FID last | "
                      "judge FID best, train-mode BN | evaluator FID best | evaluator FID last | "
                      "judge FID vs unseen photos, shipped G | leak rate, shipped G | native resolution | off lattice |",
                      "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
            for arm, runs in arms.items():
                if arm in EXAMPLES:
                    rs = [r["equal_steps"] for r in runs.values() if "equal_steps" in r]
                    lines.append(f"| {arm} (equal steps) | {len(rs)} | {rs[0]['steps'] if rs else '—'} | "
                                 f"{spread([r['wall_s'] for r in rs]) if rs else '—'} | "
                                 f"{spread([r['steps'] / r['wall_s'] for r in rs]) if rs else '—'} | "
                                 f"{spread([r['judge_fid'] for r in rs]) if rs else '—'} | — | — | "
                                 f"{spread([r['fid'] for r in rs]) if rs else '—'} | — | "
                                 f"{_cell(rs, 'judge_fid_unseen')} | {_cell(rs, 'leak_rate')} | "
                                 f"{_cell(rs, 'leak_rate_native')} | {_cell(rs, 'off_lattice')} |")
                    continue
                rs = list(runs.values())
                tbn = [r["best_trainbn"]["judge_fid"] for r in rs if "best_trainbn" in r]
                lines.append(f"| {arm} | {len(rs)} | {rs[0]['steps']} | {spread([r['wall_s'] for r in rs])} | "
                             f"{spread([r['steps'] / r['wall_s'] for r in rs])} | "
                             f"{spread([r['best']['judge_fid'] for r in rs])} | "
                             f"{spread([r['last']['judge_fid'] for r in rs])} | {spread(tbn) if tbn else '—'} | "
                             f"{spread([r['best']['fid'] for r in rs])} | {spread([r['last']['fid'] for r in rs])} | "
                             f"{_cell([ships(name, arm, r) for r in rs], 'judge_fid_unseen')} | "
                             f"{_cell([ships(name, arm, r) for r in rs], 'leak_rate')} | "
                             f"{_cell([ships(name, arm, r) for r in rs], 'leak_rate_native')} | "
                             f"{_cell([ships(name, arm, r) for r in rs], 'off_lattice')} |")
            ada = {arm: [r["ada"]["p"] for r in runs.values() if "ada" in r] for arm, runs in arms.items()}
            if any(ada.values()):
                lines += ["", "ADA's strength p at the end of each run: " + "; ".join(
                    f"{arm} {spread(ps)} (from {min(ps):.3g} to {max(ps):.3g})" for arm, ps in ada.items() if ps) + "."]
            held = next((r["leak_held_out"] for runs in arms.values() for r in runs.values()
                         if "leak_held_out" in r), None)
            if held:
                lines += ["", f"Leak rate: the share of 2,000 samples the leak detector (benchmarks/leak.py) calls "
                          f"augmented. On {held['images']} held-out real images it calls {held['originals']:.1%} of the "
                          f"originals and {held['copies']:.1%} of their copies augmented."]
            held = next((r["leak_native_held_out"] for runs in arms.values() for r in runs.values()
                         if "leak_native_held_out" in r), None)
            if held:
                lines += ["", f"At the data's native resolution (every image projected onto prepare's upscales of "
                          f"{NATIVE.get(name)}×{NATIVE.get(name)} images first, so that the upscale's lattice, which every "
                          f"resample leaves, is no tell; *off lattice*: the share of the images' energy off it) the "
                          f"detector calls {held['originals']:.1%} of the held-out originals and {held['copies']:.1%} "
                          f"of their copies augmented."]
            lines.append("")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["instruments", "run", "rescore", "report"])
    ap.add_argument("--settings", nargs="+", default=["colour", "grey"], choices=["colour", "grey", "digits"])
    ap.add_argument("--arms", nargs="+", default=["shipped", "example32", "example64"],
                    choices=[*ARMS, *EXAMPLES])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--seed-list", type=int, nargs="+", help="these seeds instead of 0 .. --seeds - 1")
    ap.add_argument("--steps", type=int, default=COLOUR_LENGTH)
    ap.add_argument("--length", type=int, default=1, help="train --steps times this")
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--data-root", default=".ablation-data")
    ap.add_argument("--log", default="reports/vs_example.json")
    ap.add_argument("--out", default="reports/vs_example.md")
    ap.add_argument("--instruments-out", default="reports/instruments.json")
    ap.add_argument("--figures", default="docs/figures")
    ap.add_argument("--shard", type=ganrun.shard, default="0/1",
                    help="K/N: every Nth job from the Kth, K from 0 (0/2 and 1/2: two processes)")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--rerun", action="store_true")
    ap.add_argument("--base", choices=list(ARMS),
                    help="report: the arm every other arm is compared with at equal steps "
                         "(default: the first of dcgan_aug, r1_every4, ema_aug, shipped that ran)")
    ap.add_argument("--seconds-from", default="shipped", choices=list(ARMS),
                    help="the arm whose wall time the example also gets (trained first if missing)")
    args = ap.parse_args()
    return {"instruments": instruments, "run": run, "rescore": rescore, "report": report}[args.what](args)


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
