"""Typed, frozen params per stage, validated when params.yaml is loaded.

Every section of params.yaml maps to one frozen dataclass below. Loading checks, before any
work starts, that no key is unknown or missing, that each value has the declared type, and
that it is in range; a failure raises :class:`ConfigError` with one line naming the key and
the bad value, e.g. ``train.lr must be > 0, got -1``.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

import yaml

from dcgan.base.errors import ConfigError
from dcgan.metrics.registry import metric_names


def _fail(key: str, msg: str, value: Any) -> None:
    raise ConfigError(f"{key} {msg}, got {value!r}")


def _is_pow2(n: int) -> bool:
    return n > 0 and (n & (n - 1)) == 0


def check_divisible(sizes: list[int], nproc: int, key: str) -> None:
    """Batch sizes are global: each of the nproc processes takes batch_size / nproc."""
    for bs in sizes:
        if bs % nproc:
            _fail(key, f"must be divisible by train.nproc {nproc} (batch sizes are global: "
                       f"each process takes batch_size / nproc)", bs)


@dataclass(frozen=True)
class BaseParams:
    """Settings shared by every stage."""

    seed: int
    """Master seed; every stage derives its own random streams from it."""
    device: Literal["auto", "cpu", "cuda", "mps"]
    """Where torch runs: auto picks cuda > mps > cpu."""

    def check(self, s: str) -> None:
        if self.seed < 0:
            _fail(f"{s}.seed", "must be >= 0", self.seed)


@dataclass(frozen=True)
class PrepareParams:
    """Which dataset to load and how to shape it."""

    dataset: str
    """A name in the loader registry (dcgan.data.datasets; the validate stage checks it): digits
    (scikit-learn's bundled handwritten digits, offline), mnist, fashion_mnist, cifar10, celeba,
    folder."""
    root: str | None
    """Local directory holding the dataset files (not used by digits)."""
    download: bool
    """Let torchvision download mnist/fashion_mnist/cifar10/celeba into root when missing."""
    image_size: int
    """Square output size in pixels: a power of two from 16 to 256."""
    channels: int
    """1 (grayscale) or 3 (RGB); images are converted to it."""
    holdout_fraction: float
    """Share of images kept out of training, for the FID floor and reconstruction."""
    max_images: int
    """Use at most this many images before the split (0 = all); handy for quick runs."""
    lsun_category: str
    """With dataset lsun: the LMDB export read, root/<lsun_category>_lmdb (e.g. bedroom_train)."""
    workers: int | Literal["auto"]
    """Processes decoding image files or records (auto = the CPU count); the output is the same
    for any count."""

    def check(self, s: str) -> None:
        if not (_is_pow2(self.image_size) and 16 <= self.image_size <= 256):
            _fail(f"{s}.image_size", "must be a power of two from 16 to 256", self.image_size)
        if self.channels not in (1, 3):
            _fail(f"{s}.channels", "must be 1 or 3", self.channels)
        if not 0.0 < self.holdout_fraction < 1.0:
            _fail(f"{s}.holdout_fraction", "must be between 0 and 1 (exclusive)", self.holdout_fraction)
        if self.max_images < 0:
            _fail(f"{s}.max_images", "must be >= 0 (0 means all)", self.max_images)
        if self.workers != "auto" and self.workers < 1:
            _fail(f"{s}.workers", "must be >= 1 or auto", self.workers)
        if not re.fullmatch(r"[a-z0-9_]+", self.lsun_category):
            _fail(f"{s}.lsun_category", "must be a name like bedroom_train (lowercase, digits, _)",
                  self.lsun_category)
        if self.dataset == "folder" and not self.root:
            _fail(f"{s}.root", "must name the image folder when dataset is 'folder'", self.root)


@dataclass(frozen=True)
class AugmentParams:
    """Offline augmentation: K augmented copies appended to the originals."""

    copies: int
    """K: augmented copies per original image (0 = originals only)."""
    hflip: bool
    """Random horizontal flip (off for digits: a mirrored 3 is not a digit)."""
    crop_scale_min: float
    """Random resized crop keeps between this share of the area and all of it."""
    rotate_degrees: float
    """Maximum random rotation, in degrees."""
    translate: float
    """Maximum random shift, as a fraction of the image size."""

    def check(self, s: str) -> None:
        if self.copies < 0:
            _fail(f"{s}.copies", "must be >= 0", self.copies)
        if not 0.1 <= self.crop_scale_min <= 1.0:
            _fail(f"{s}.crop_scale_min", "must be in [0.1, 1]", self.crop_scale_min)
        if not 0.0 <= self.rotate_degrees <= 180.0:
            _fail(f"{s}.rotate_degrees", "must be in [0, 180]", self.rotate_degrees)
        if not 0.0 <= self.translate < 0.5:
            _fail(f"{s}.translate", "must be in [0, 0.5)", self.translate)


@dataclass(frozen=True)
class EvaluatorParams:
    """The feature extractor behind FID, KID, IS and precision/recall, and the reference features
    of the prepared images: the domain classifier trained here (offline default) or FID Inception-v3."""

    extractor: Literal["classifier", "inception"]
    """classifier: the domain net trained by this stage (offline default); inception: FID Inception-v3."""
    inception_weights: str
    """Path of the FID Inception-v3 weights (pt_inception-2015-12-05-6726825d.pth) for extractor: inception."""
    resize: Literal["legacy", "clean"]
    """How Inception's 299×299 input is made: legacy (torch-fidelity/pytorch-fid's bilinear, as most
    papers) or clean (clean-fid's anti-aliased PIL bicubic); the two FIDs are not comparable
    (recorded in the protocol). The classifier reads images at their own size."""
    inception_download: bool
    """With extractor: inception, download the weights once from torch-fidelity's published URL
    into inception_weights when the file is missing (sha256 checked); off: never touch the network."""
    feature_batch_size: int
    """Images per batch when extracting features (the reference here; in-training FID too)."""
    reference_max_images: int
    """Use at most this many images of each split (a seeded subset) for the reference statistics
    and features; 50,000 is the usual FID protocol."""
    epochs: int
    """Training epochs of the classifier."""
    batch_size: int
    """The classifier's training mini-batch size."""
    lr: float
    """Adam learning rate (the classifier)."""
    width: int
    """Channels of the classifier's first conv layer (doubles per block)."""
    feature_dim: int
    """Size of the classifier's penultimate layer, whose activations are its features."""

    def check(self, s: str) -> None:
        for k in ("epochs", "batch_size", "width", "feature_dim", "feature_batch_size"):
            if getattr(self, k) < 1:
                _fail(f"{s}.{k}", "must be >= 1", getattr(self, k))
        if self.reference_max_images < 2:
            _fail(f"{s}.reference_max_images", "must be >= 2", self.reference_max_images)
        if not self.lr > 0:
            _fail(f"{s}.lr", "must be > 0", self.lr)


@dataclass(frozen=True)
class TrainParams:
    """The DCGAN training run."""

    epochs: int
    """Passes over the (augmented) training set."""
    min_steps: int | Literal["auto"]
    """Train at least this many steps: small sets get more epochs than ``epochs`` (0 = off);
    auto: the recipe for the data's kind (dcgan.app.recipe.RECIPES)."""
    max_steps: int
    """End the run after this many steps even mid-epoch (0 = off: epochs decide); for sets where
    one epoch is already long (LSUN). The run ends at whichever of the two comes first."""
    batch_size: int | Literal["auto"]
    """Mini-batch size, or auto: the largest that fits the accelerator's memory with a margin."""
    batch_schedule: tuple[tuple[int, int], ...]
    """[[step, batch_size], ...]: the batch size from each step on (empty = batch_size always)."""
    lr_scaling: Literal["none", "linear", "sqrt"]
    """How lr follows the batch size: lr * (bs / base)^1 (linear), ^0.5 (sqrt), or not at all."""
    lr: float
    """Adam learning rate for G and D, at the base batch size (the first scheduled one)."""
    d_lr: float | None
    """The discriminators' Adam learning rate (null = lr). TTUR (Heusel et al. 2017): D faster
    than G, e.g. lr 1e-4 with d_lr 4e-4; it follows lr_scaling in the same proportion."""
    beta1: float
    """Adam beta1 (0.5 in the DCGAN paper)."""
    beta2: float
    """Adam beta2."""
    latent_dim: int
    """Size of z."""
    g_width: int
    """ngf: channels of G's last hidden layer (doubles toward the input)."""
    d_width: int
    """ndf: channels of D's first layer (doubles toward the output)."""
    log_every: int
    """Log losses to dvclive every this many steps (host syncs happen only then)."""
    checkpoint_every: int
    """Write the resumable checkpoint every this many steps (and at each epoch end)."""
    sample_grid: int
    """Images in the fixed-noise grid logged at each epoch end."""
    eval_every: int
    """Compute FID every this many epochs and keep the best generator (0 = never; best = last)."""
    eval_samples: int
    """Generated images per in-training FID (more: steadier, slower)."""
    prior: Literal["normal", "uniform"]
    """Latent prior: normal N(0, I) or uniform U[-1, 1]."""
    loss: Literal["bce", "hinge", "wgan"]
    """Adversarial loss: non-saturating BCE (DCGAN), hinge, or Wasserstein."""
    r1_gamma: float | Literal["auto"]
    """R1 penalty weight on real images, gamma/2 * E|grad D(x)|^2 (0 = off); auto: the recipe
    for the data's kind (grey or colour; dcgan.app.recipe.RECIPES)."""
    gp_lambda: float
    """WGAN-GP weight on interpolates, lambda * E(|grad D(x_hat)| - 1)^2 (0 = off)."""
    reg_every: int
    """Lazy regularisation: apply the penalties every this many steps, scaled up to match."""
    g_norm: Literal["batch", "instance", "none"]
    """Normalisation in G."""
    d_norm: Literal["batch", "instance", "none"]
    """Normalisation in D (and E)."""
    d_spectral: bool
    """Spectral normalisation on D's convolutions."""
    diffaug: tuple[Literal["color", "translation", "cutout"], ...]
    """DiffAugment policies applied to reals and fakes in the D and G steps ([] = off)."""
    ema_decay: float
    """Exponential moving average of G's weights (0 = off); sample/evaluate use it when on."""
    ema_rampup: float
    """EMA ramp-up (stylegan2-ada): the average's half-life is at most this share of the images
    seen so far, e.g. 0.05, so early weights do not linger (0 = off: a fixed decay)."""
    encoder: bool
    """Train an encoder E: images -> z with the reconstruction loss |G(E(x)) - x|."""
    recon_loss: Literal["l1", "l2", "smooth_l1"]
    """Reconstruction loss for the encoder."""
    recon_weight: float
    """Weight of the reconstruction loss (updates E and G)."""
    latent_cycle_weight: float
    """Weight of the latent cycle loss |E(G(z)) - z| (updates E; 0 = off)."""
    precision: Literal["auto", "fp32", "bf16", "fp16"]
    """Forward/backward under autocast: fp32 (off), bf16, or fp16 (CUDA, with loss scaling);
    auto: bf16 where the hardware runs it fast (CUDA compute capability >= 8.0, CPUs with
    AVX-512 BF16/AMX), else fp32 (:func:`dcgan.base.devices.resolve_precision`). Losses, penalties,
    BatchNorm statistics and optimizer state stay fp32."""
    channels_last: bool
    """NHWC memory format for the networks and batches (faster convolutions on most GPUs)."""
    compile: Literal["none", "default", "reduce-overhead", "max-autotune", "graph", "auto"]
    """none = eager. default | reduce-overhead | max-autotune: torch.compile the networks
    (reduce-overhead adds per-module CUDA graphs; the first steps pay for compilation, about 40 s
    on a 2-core CPU). graph: the whole step (both updates, penalties, optimizers, EMA) on static
    buffers, captured once per batch size and regularisation phase as a CUDA graph and replayed
    (on the CPU, with fp16 or under DDP it runs uncaptured; dcgan.training.graphed). auto: graph
    where it can be captured, else none; the resolved mode is what model.json records."""
    nproc: int
    """Processes for data-parallel training (DDP under torchrun; NCCL on GPUs, one per GPU,
    gloo on CPU). Batch sizes stay global: each process takes batch_size / nproc."""
    sync_bn: bool
    """With nproc > 1: BatchNorm statistics over the global batch instead of each process's share."""
    normalize: Literal["range", "meanstd"]
    """What D sees and G produces: range (pixels scaled to [-1, 1]) or meanstd (``(x - mean) / std``
    per channel, the dataset's statistics from data/prepared/meta.json; G's tanh is mapped
    affinely onto that range). Samples, metrics and grids are mapped back to pixels exactly."""
    discriminators: int
    """K independently initialised discriminators (GMAN, Durugkar et al. 2017), each with its own
    loss, optimizer and DiffAugment draws; 1 = the plain single-D game."""
    d_aggregate: Literal["mean", "softmax", "max"]
    """How G's loss combines the K discriminators' losses: their mean, GMAN's softmax weighting
    (``d_temperature``), or the largest (the strictest D)."""
    d_temperature: float
    """GMAN's softmax weight lambda: weights softmax(lambda * loss_k); 0 = mean, large = max."""

    def check(self, s: str) -> None:
        for k in ("epochs", "latent_dim", "g_width", "d_width", "log_every",
                  "checkpoint_every", "sample_grid", "eval_samples", "reg_every"):
            if getattr(self, k) < 1:
                _fail(f"{s}.{k}", "must be >= 1", getattr(self, k))
        if self.min_steps != "auto" and self.min_steps < 0:
            _fail(f"{s}.min_steps", "must be >= 0 (0 = off) or auto", self.min_steps)
        if self.batch_size != "auto" and self.batch_size < 1:
            _fail(f"{s}.batch_size", "must be >= 1 or auto", self.batch_size)
        if self.batch_schedule:
            steps = [st for st, _ in self.batch_schedule]
            if steps[0] != 0 or steps != sorted(set(steps)):
                _fail(f"{s}.batch_schedule", "must start at step 0 with increasing steps",
                      [list(x) for x in self.batch_schedule])
            if any(bs < 1 for _, bs in self.batch_schedule):
                _fail(f"{s}.batch_schedule", "batch sizes must be >= 1",
                      [list(x) for x in self.batch_schedule])
            if self.batch_size == "auto":
                _fail(f"{s}.batch_size", "cannot be auto together with a batch_schedule", "auto")
        if self.nproc < 1:
            _fail(f"{s}.nproc", "must be >= 1", self.nproc)
        sizes = [bs for _, bs in self.batch_schedule] or ([] if self.batch_size == "auto" else [self.batch_size])
        check_divisible(sizes, self.nproc, f"{s}.batch_schedule" if self.batch_schedule else f"{s}.batch_size")
        for k in ("r1_gamma", "gp_lambda", "recon_weight", "latent_cycle_weight"):
            if getattr(self, k) != "auto" and getattr(self, k) < 0:
                _fail(f"{s}.{k}", "must be >= 0", getattr(self, k))
        if not 0.0 <= self.ema_decay < 1.0:
            _fail(f"{s}.ema_decay", "must be in [0, 1) (0 = off)", self.ema_decay)
        if len(set(self.diffaug)) != len(self.diffaug):
            _fail(f"{s}.diffaug", "must not repeat a policy", list(self.diffaug))
        if self.eval_every < 0:
            _fail(f"{s}.eval_every", "must be >= 0 (0 = off)", self.eval_every)
        if not self.lr > 0:
            _fail(f"{s}.lr", "must be > 0", self.lr)
        if self.d_lr is not None and not self.d_lr > 0:
            _fail(f"{s}.d_lr", "must be > 0 or null (= lr)", self.d_lr)
        if not 0.0 <= self.ema_rampup <= 1.0:
            _fail(f"{s}.ema_rampup", "must be in [0, 1] (0 = off)", self.ema_rampup)
        if not 1 <= self.discriminators <= 16:
            _fail(f"{s}.discriminators", "must be from 1 to 16", self.discriminators)
        if self.d_temperature < 0:
            _fail(f"{s}.d_temperature", "must be >= 0", self.d_temperature)
        for k in ("beta1", "beta2"):
            if not 0.0 <= getattr(self, k) < 1.0:
                _fail(f"{s}.{k}", "must be in [0, 1)", getattr(self, k))


@dataclass(frozen=True)
class SampleParams:
    """Drawing images from the trained generator."""

    num_samples: int
    """How many images to generate into data/samples/samples.npy."""
    batch_size: int
    """Generator batch size while sampling."""
    grid_size: int
    """Images shown in reports/samples.png."""
    drs: bool
    """Discriminator Rejection Sampling: keep samples with probability from D's logits."""
    drs_burnin: int
    """Samples whose D logits give the first estimate of the maximum logit."""
    drs_percentile: float | None
    """gamma = this percentile of F per batch (higher keeps fewer); null: gamma = 0, exact
    rejection sampling if D were optimal."""
    generator: Literal["best", "last"]
    """Which generator to sample: best by in-training FID, or the last one (evaluate scores the
    same one: samples.json records it)."""

    def check(self, s: str) -> None:
        if self.drs_percentile is not None and not 0.0 <= self.drs_percentile <= 100.0:
            _fail(f"{s}.drs_percentile", "must be in [0, 100] or null", self.drs_percentile)
        for k in ("num_samples", "batch_size", "grid_size", "drs_burnin"):
            if getattr(self, k) < 1:
                _fail(f"{s}.{k}", "must be >= 1", getattr(self, k))


@dataclass(frozen=True)
class EvaluateParams:
    """Scoring the samples (with the evaluator's feature extractor)."""

    metrics: tuple[str, ...]
    """Which registered metrics to compute: any of fid, is, kid, pr."""
    num_samples: int
    """Generated images scored (0 = as many as held-out real images, so metrics and floors compare)."""
    batch_size: int
    """Feature-extraction batch size (the samples)."""
    is_splits: int
    """Splits for the Inception Score mean/std."""
    kid_subsets: int
    """Random subsets for KID's mean/std."""
    kid_subset_size: int
    """Images per KID subset (capped at the number scored)."""
    pr_k: int
    """k of the k-NN manifolds of improved precision/recall."""
    pr_max_images: int
    """Precision/recall compares all pairs (O(n^2)): it runs on a seeded subset of at most this
    many generated and as many real images (the floor too)."""
    recon_images: int
    """Held-out images reconstructed through the generator (0 = skip reconstruction metrics)."""
    recon_steps: int
    """Adam steps on z per restart when inverting the generator by latent optimisation."""
    recon_restarts: int
    """Random starts per image; the best reconstruction is kept."""
    recon_lr: float
    """Adam learning rate for latent optimisation."""
    bootstrap: int
    """Seeded bootstrap resamples of the generated and reference features behind each score's
    standard error and 95% interval (``<key>_se``, ``_ci_low``, ``_ci_high``; 0 = none, and the
    promotion gate then cannot tell a gain from noise)."""

    def check(self, s: str) -> None:
        if not self.metrics:
            _fail(f"{s}.metrics", "must be a non-empty list", [])
        for i, name in enumerate(self.metrics):
            if name not in metric_names():
                _fail(f"{s}.metrics[{i}]", f"must be one of {', '.join(metric_names())}", name)
        if len(set(self.metrics)) != len(self.metrics):
            _fail(f"{s}.metrics", "must not repeat a metric", list(self.metrics))
        if self.num_samples < 0:
            _fail(f"{s}.num_samples", "must be >= 0 (0 = match the holdout size)", self.num_samples)
        for k in ("batch_size", "is_splits", "kid_subsets", "kid_subset_size", "pr_k",
                  "recon_steps", "recon_restarts"):
            if getattr(self, k) < 1:
                _fail(f"{s}.{k}", "must be >= 1", getattr(self, k))
        if self.pr_max_images < 2:
            _fail(f"{s}.pr_max_images", "must be >= 2", self.pr_max_images)
        if self.recon_images < 0:
            _fail(f"{s}.recon_images", "must be >= 0 (0 = skip)", self.recon_images)
        if self.bootstrap < 0 or self.bootstrap == 1:
            _fail(f"{s}.bootstrap", "must be 0 (off) or >= 2 resamples", self.bootstrap)
        if not self.recon_lr > 0:
            _fail(f"{s}.recon_lr", "must be > 0", self.recon_lr)


SECTIONS: dict[str, type] = {
    "base": BaseParams,
    "prepare": PrepareParams,
    "augment": AugmentParams,
    "evaluator": EvaluatorParams,
    "train": TrainParams,
    "sample": SampleParams,
    "evaluate": EvaluateParams,
}


@dataclass(frozen=True)
class Params:
    """All of params.yaml, one frozen object per section."""

    base: BaseParams
    prepare: PrepareParams
    augment: AugmentParams
    evaluator: EvaluatorParams
    train: TrainParams
    sample: SampleParams
    evaluate: EvaluateParams

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return dataclasses.asdict(self)


def _coerce(key: str, value: Any, tp: Any) -> Any:
    """Check ``value`` against the annotation ``tp``; return it converted (int -> float etc.)."""
    origin = get_origin(tp)
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            _fail(key, f"must be one of {', '.join(map(str, choices))}", value)
        return value
    if origin in (typing.Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        errors = []
        for a in inner:  # the first member that accepts the value wins
            try:
                return _coerce(key, value, a)
            except ConfigError as exc:
                errors.append(str(exc).removeprefix(f"{key} ").rsplit(", got", 1)[0])
        _fail(key, " or ".join(errors), value)
    if origin is tuple:  # tuple[X, ...]: a YAML list; tuple[X, Y]: a list of exactly 2
        if not isinstance(value, list | tuple):
            _fail(key, "must be a list", value)
        args = get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(f"{key}[{i}]", v, args[0]) for i, v in enumerate(value))
        if len(value) != len(args):
            _fail(key, f"must be a list of {len(args)} values", value)
        return tuple(_coerce(f"{key}[{i}]", v, a) for i, (v, a) in enumerate(zip(value, args, strict=True)))
    if tp is bool:
        if not isinstance(value, bool):
            _fail(key, "must be true or false", value)
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            _fail(key, "must be an integer", value)
        return value
    if tp is float:
        # YAML 1.1 reads 2e-4 (no dot) as a string, and `dvc exp run -S` may write it so.
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                _fail(key, "must be a number", value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            _fail(key, "must be a number", value)
        value = float(value)
        if not math.isfinite(value):
            _fail(key, "must be finite", value)
        return value
    if tp is str:
        if not isinstance(value, str) or not value:
            _fail(key, "must be a non-empty string", value)
        return value
    raise TypeError(f"unsupported annotation {tp!r} for {key}")  # a bug, not a user error


def parse_section(name: str, raw: Any, cls: type) -> Any:
    """Validate one params section (a mapping) into its frozen dataclass."""
    if not isinstance(raw, dict):
        _fail(name, "must be a mapping of keys to values", raw)
    hints = typing.get_type_hints(cls)
    fields = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(
            f"{name}.{unknown[0]} is not a known key (known: {', '.join(fields)})"
        )
    missing = [f for f in fields if f not in raw]
    if missing:
        raise ConfigError(f"{name}.{missing[0]} is missing from params")
    values = {f: _coerce(f"{name}.{f}", raw[f], hints[f]) for f in fields}
    obj = cls(**values)
    obj.check(name)
    return obj


MOVED = {
    "evaluate.extractor": "evaluator.extractor",
    "evaluate.inception_weights": "evaluator.inception_weights",
    "evaluate.inception_download": "evaluator.inception_download",
    "evaluate.reference_max_images": "evaluator.reference_max_images",
    "evaluate.generator": "sample.generator",
}
"""Keys of an older params.yaml layout and where each lives now (each stage reads its own section)."""
NEW_KEYS = {"evaluator.feature_batch_size": "the evaluator's feature-extraction batch (evaluate.batch_size before)"}


def _has(raw: dict, dotted: str) -> bool:
    section, key = dotted.split(".")
    return isinstance(raw.get(section), dict) and key in raw[section]


def check_layout(raw: dict) -> None:
    """A params.yaml written for the old layout: one line saying which key moved where."""
    old = [k for k in MOVED if _has(raw, k)]
    if old:
        moves = ", ".join(f"{k} -> {MOVED[k]}" for k in old)
        new = ", ".join(f"{k} ({why})" for k, why in NEW_KEYS.items() if not _has(raw, k))
        raise ConfigError(f"params.yaml has the old layout; move {moves}" + (f" and add {new}" if new else ""))


def parse_params(raw: Any) -> Params:
    """Validate a whole params mapping (as read from params.yaml)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"params must be a mapping of sections, got {type(raw).__name__}")
    check_layout(raw)
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise ConfigError(
            f"{unknown[0]} is not a known params section (known: {', '.join(SECTIONS)})"
        )
    missing = [s for s in SECTIONS if s not in raw]
    if missing:
        raise ConfigError(f"section {missing[0]} is missing from params")
    return Params(**{s: parse_section(s, raw[s], cls) for s, cls in SECTIONS.items()})


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate params.yaml; every problem raises ConfigError naming it."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"params file {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"params file {path} is not valid YAML: {exc}") from None
    return parse_params(raw)


T = TypeVar("T")


def pick(cls: type[T], section: Any, **over: Any) -> T:
    """A library dataclass filled from the params section's fields of the same names
    (``over`` replaces some, e.g. a resolved value)."""
    return cls(**{f.name: over[f.name] if f.name in over else getattr(section, f.name)
                  for f in dataclasses.fields(cls)})
