"""params.yaml's ``train`` section, read by the train stage."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from dcgan.app.params.typed import (
    Bool,
    Count,
    Float,
    Int,
    Positive,
    Section,
    Weight,
    above,
    at_least,
    fail,
    rule,
    section,
    within,
)
from dcgan.training import names
from dcgan.training.schedule import SHARED, unshared


def _pairs(schedule: tuple) -> list:
    return [list(x) for x in schedule]


_STEPS_RISE = rule(lambda v: not v or (v[0][0] == 0 and [st for st, _ in v] == sorted({st for st, _ in v})),
                   "must start at step 0 with increasing steps", _pairs)
_SIZES_POSITIVE = rule(lambda v: all(bs >= 1 for _, bs in v), "batch sizes must be >= 1", _pairs)


@section
class TrainParams(Section):
    """The DCGAN training run."""

    SECTION: ClassVar[str] = "train"

    epochs: Count
    """Passes over the (augmented) training set."""
    min_images: Annotated[Int, at_least(0, " (0 = off) or auto")] | Literal["auto"]
    """Train on at least this many images in all (steps times batch size, whatever the batch
    size): small sets get more epochs than ``epochs`` (0 = off); auto: the recipe for the data's
    kind (dcgan.app.recipe.RECIPES)."""
    max_steps: Annotated[Int, at_least(0, " (0 = off)")]
    """End the run after this many steps even mid-epoch (0 = off: epochs decide); for sets where
    one epoch is already long (LSUN). The run ends at whichever of the two comes first."""
    batch_size: Annotated[Int, at_least(1, " or auto")] | Literal["auto"]
    """Mini-batch size, or auto: the largest that fits the accelerator's memory with a margin."""
    batch_schedule: Annotated[tuple[tuple[Int, Int], ...], _STEPS_RISE, _SIZES_POSITIVE]
    """[[step, batch_size], ...]: the batch size from each step on (empty = batch_size always)."""
    lr_scaling: Literal["none", "linear", "sqrt"]
    """How lr follows the batch size: lr * (bs / base)^1 (linear), ^0.5 (sqrt), or not at all."""
    lr: Positive
    """Adam learning rate for G and D, at the base batch size (the first scheduled one)."""
    d_lr: Annotated[Float, above(0, " or null (= lr)")] | None
    """The discriminators' Adam learning rate (null = lr). TTUR (Heusel et al. 2017): D faster
    than G, e.g. lr 1e-4 with d_lr 4e-4; it follows lr_scaling in the same proportion."""
    beta1: Annotated[Float, within(0, 1)]
    """Adam beta1 (0.5 in the DCGAN paper)."""
    beta2: Annotated[Float, within(0, 1)]
    """Adam beta2."""
    latent_dim: Count
    """Size of z."""
    g_width: Count
    """ngf: channels of G's last hidden layer (doubles toward the input)."""
    d_width: Count
    """ndf: channels of D's first layer (doubles toward the output)."""
    log_every: Count
    """Log losses to dvclive every this many steps (host syncs happen only then)."""
    checkpoint_every: Count
    """Write the resumable checkpoint every this many steps (and at each epoch end)."""
    sample_grid: Count
    """Images in the fixed-noise grid logged at each epoch end."""
    eval_every: Annotated[Int, at_least(0, " (0 = off)")]
    """Compute FID every this many epochs and keep the best generator (0 = never; best = last).
    Where ``min_images`` raises the epochs, this stretches with them (as many FIDs as asked for)."""
    eval_samples: Count
    """Generated images per in-training FID (more: steadier, slower)."""
    prior: Literal["normal", "uniform"]
    """Latent prior: normal N(0, I) or uniform U[-1, 1]."""
    loss: Literal[names.ADVERSARIAL_LOSSES]
    """Adversarial loss, one of :data:`dcgan.training.names.ADVERSARIAL_LOSSES`: non-saturating BCE
    (DCGAN), hinge, Wasserstein (docs/techniques.md)."""
    r1_gamma: Weight | Literal["auto"]
    """R1 penalty weight on real images, gamma/2 * E|grad D(x)|^2 (0 = off); auto: the recipe
    for the data's kind (grey or colour; dcgan.app.recipe.RECIPES)."""
    gp_lambda: Weight
    """WGAN-GP weight on interpolates, lambda * E(|grad D(x_hat)| - 1)^2 (0 = off)."""
    reg_every: Count
    """Lazy regularisation: apply the penalties every this many steps, scaled up to match."""
    g_norm: Literal["batch", "instance", "none"]
    """Normalisation in G."""
    d_norm: Literal["batch", "instance", "none"]
    """Normalisation in D (and E)."""
    d_spectral: Bool
    """Spectral normalisation on D's convolutions."""
    diffaug: Annotated[tuple[Literal[names.DIFFAUG_POLICIES], ...],
                       rule(lambda v: len(set(v)) == len(v), "must not repeat a policy", list)]
    """DiffAugment policies applied to reals and fakes in the D and G steps ([] = off)."""
    ada: Literal[("none", *names.ADA_PIPELINES)]
    """Adaptive discriminator augmentation (Karras et al. 2020; dcgan.training.ada): every image D
    sees, real or generated, in both updates, goes through random flips, 90-degree turns,
    shifts, scalings and rotations (bg) and colour changes (bgc), each with probability p, tuned
    so that D's confidence on the reals stays at ``ada_target``. Reals and fakes alike, so G is
    not pushed to draw the augmentation (the augment stage's copies are reals only). none = off."""
    ada_target: Annotated[Float, within(0, 1)]
    """ADA's target for r_t = E[sign(D(real))]: p rises while D is more sure of the reals (0.6)."""
    ada_interval: Count
    """Steps between ADA's adjustments of p (4; one host read each)."""
    ada_kimg: Positive
    """Thousands of images over which p can go from 0 to 1 (500, the paper's speed)."""
    ema_decay: Annotated[Float, within(0, 1, note=" (0 = off) or auto")] | Literal["auto"]
    """Exponential moving average of G's weights (0 = off); sample/evaluate use it when on;
    auto: the recipe for the data's kind (dcgan.app.recipe.RECIPES)."""
    ema_rampup: Annotated[Float, within(0, 1, closed=True, note=" (0 = off) or auto")] | Literal["auto"]
    """EMA ramp-up (stylegan2-ada): the average's half-life is at most this share of the images
    seen so far, e.g. 0.05, so early weights do not linger (0 = off: a fixed decay); auto: the
    recipe for the data's kind."""
    encoder: Bool
    """Train an encoder E: images -> z with the reconstruction loss |G(E(x)) - x|."""
    recon_loss: Literal[names.RECON_LOSSES]
    """Reconstruction loss for the encoder, one of :data:`dcgan.training.names.RECON_LOSSES`."""
    recon_weight: Weight
    """Weight of the reconstruction loss (updates E and G)."""
    latent_cycle_weight: Weight
    """Weight of the latent cycle loss |E(G(z)) - z| (updates E; 0 = off)."""
    precision: Literal["auto", "fp32", "bf16", "fp16"]
    """Forward/backward under autocast: fp32 (off), bf16, or fp16 (CUDA, with loss scaling);
    auto: bf16 where the hardware runs it fast (CUDA compute capability >= 8.0, CPUs with
    AVX-512 BF16/AMX), else fp32 (:func:`dcgan.core.devices.resolve_precision`). Losses, penalties,
    BatchNorm statistics and optimizer state stay fp32."""
    channels_last: Bool
    """NHWC memory format for the networks and batches (faster convolutions on most GPUs)."""
    compile: Literal["none", "default", "reduce-overhead", "max-autotune", "graph", "auto"]
    """none = eager. default | reduce-overhead | max-autotune: torch.compile the networks
    (reduce-overhead adds per-module CUDA graphs; the first steps pay for compilation, about 40 s
    on a 2-core CPU). graph: the whole step (both updates, penalties, optimizers, EMA) on static
    buffers, captured once per batch size and regularisation phase as a CUDA graph and replayed
    (on the CPU, with fp16 or under DDP it runs uncaptured; dcgan.training.graphed). auto: graph
    where it can be captured, else none; the resolved mode is what model.json records."""
    nproc: Count
    """Processes for data-parallel training (DDP under torchrun; NCCL on GPUs, one per GPU,
    gloo on CPU). Batch sizes stay global: each process takes batch_size / nproc."""
    sync_bn: Bool
    """With nproc > 1: BatchNorm statistics over the global batch instead of each process's share."""
    normalize: Literal["range", "meanstd"]
    """What D sees and G produces: range (pixels scaled to [-1, 1]) or meanstd (``(x - mean) / std``
    per channel, the dataset's statistics from data/prepared/meta.json; G's tanh is mapped
    affinely onto that range). Samples, metrics and grids are mapped back to pixels exactly."""
    discriminators: Annotated[Int, rule(lambda v: 1 <= v <= 16, "must be from 1 to 16")]
    """K independently initialised discriminators (GMAN, Durugkar et al. 2017), each with its own
    loss, optimizer and DiffAugment draws; 1 = the plain single-D game."""
    d_aggregate: Literal["mean", "softmax", "max"]
    """How G's loss combines the K discriminators' losses: their mean, GMAN's softmax weighting
    (``d_temperature``), or the largest (the strictest D)."""
    d_temperature: Weight
    """GMAN's softmax weight lambda: weights softmax(lambda * loss_k); 0 = mean, large = max."""

    def check(self, s: str) -> None:
        if self.batch_schedule and self.batch_size == "auto":
            fail(f"{s}.batch_size", "cannot be auto together with a batch_schedule", "auto")
        sizes = [bs for _, bs in self.batch_schedule] or ([] if self.batch_size == "auto" else [self.batch_size])
        if (bs := unshared(sizes, self.nproc)) is not None:
            fail(f"{s}.batch_schedule" if self.batch_schedule else f"{s}.batch_size",
                 f"must be divisible by {s}.nproc {self.nproc} ({SHARED})", bs)
