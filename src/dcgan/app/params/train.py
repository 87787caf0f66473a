"""params.yaml's ``train`` section, read by the train stage."""

from __future__ import annotations

from typing import ClassVar, Literal

from dcgan.app.params.typed import Bool, Float, Int, Section, fail, section


def check_divisible(sizes: list[int], nproc: int, key: str) -> None:
    """Batch sizes are global: each of the nproc processes takes batch_size / nproc."""
    for bs in sizes:
        if bs % nproc:
            fail(key, f"must be divisible by train.nproc {nproc} (batch sizes are global: "
                      f"each process takes batch_size / nproc)", bs)


@section
class TrainParams(Section):
    """The DCGAN training run."""

    SECTION: ClassVar[str] = "train"

    epochs: Int
    """Passes over the (augmented) training set."""
    min_images: Int | Literal["auto"]
    """Train on at least this many images in all (steps times batch size, whatever the batch
    size): small sets get more epochs than ``epochs`` (0 = off); auto: the recipe for the data's
    kind (dcgan.app.recipe.RECIPES)."""
    max_steps: Int
    """End the run after this many steps even mid-epoch (0 = off: epochs decide); for sets where
    one epoch is already long (LSUN). The run ends at whichever of the two comes first."""
    batch_size: Int | Literal["auto"]
    """Mini-batch size, or auto: the largest that fits the accelerator's memory with a margin."""
    batch_schedule: tuple[tuple[Int, Int], ...]
    """[[step, batch_size], ...]: the batch size from each step on (empty = batch_size always)."""
    lr_scaling: Literal["none", "linear", "sqrt"]
    """How lr follows the batch size: lr * (bs / base)^1 (linear), ^0.5 (sqrt), or not at all."""
    lr: Float
    """Adam learning rate for G and D, at the base batch size (the first scheduled one)."""
    d_lr: Float | None
    """The discriminators' Adam learning rate (null = lr). TTUR (Heusel et al. 2017): D faster
    than G, e.g. lr 1e-4 with d_lr 4e-4; it follows lr_scaling in the same proportion."""
    beta1: Float
    """Adam beta1 (0.5 in the DCGAN paper)."""
    beta2: Float
    """Adam beta2."""
    latent_dim: Int
    """Size of z."""
    g_width: Int
    """ngf: channels of G's last hidden layer (doubles toward the input)."""
    d_width: Int
    """ndf: channels of D's first layer (doubles toward the output)."""
    log_every: Int
    """Log losses to dvclive every this many steps (host syncs happen only then)."""
    checkpoint_every: Int
    """Write the resumable checkpoint every this many steps (and at each epoch end)."""
    sample_grid: Int
    """Images in the fixed-noise grid logged at each epoch end."""
    eval_every: Int
    """Compute FID every this many epochs and keep the best generator (0 = never; best = last)."""
    eval_samples: Int
    """Generated images per in-training FID (more: steadier, slower)."""
    prior: Literal["normal", "uniform"]
    """Latent prior: normal N(0, I) or uniform U[-1, 1]."""
    loss: Literal["bce", "hinge", "wgan"]
    """Adversarial loss: non-saturating BCE (DCGAN), hinge, or Wasserstein."""
    r1_gamma: Float | Literal["auto"]
    """R1 penalty weight on real images, gamma/2 * E|grad D(x)|^2 (0 = off); auto: the recipe
    for the data's kind (grey or colour; dcgan.app.recipe.RECIPES)."""
    gp_lambda: Float
    """WGAN-GP weight on interpolates, lambda * E(|grad D(x_hat)| - 1)^2 (0 = off)."""
    reg_every: Int
    """Lazy regularisation: apply the penalties every this many steps, scaled up to match."""
    g_norm: Literal["batch", "instance", "none"]
    """Normalisation in G."""
    d_norm: Literal["batch", "instance", "none"]
    """Normalisation in D (and E)."""
    d_spectral: Bool
    """Spectral normalisation on D's convolutions."""
    diffaug: tuple[Literal["color", "translation", "cutout"], ...]
    """DiffAugment policies applied to reals and fakes in the D and G steps ([] = off)."""
    ema_decay: Float | Literal["auto"]
    """Exponential moving average of G's weights (0 = off); sample/evaluate use it when on;
    auto: the recipe for the data's kind (dcgan.app.recipe.RECIPES)."""
    ema_rampup: Float | Literal["auto"]
    """EMA ramp-up (stylegan2-ada): the average's half-life is at most this share of the images
    seen so far, e.g. 0.05, so early weights do not linger (0 = off: a fixed decay); auto: the
    recipe for the data's kind."""
    encoder: Bool
    """Train an encoder E: images -> z with the reconstruction loss |G(E(x)) - x|."""
    recon_loss: Literal["l1", "l2", "smooth_l1"]
    """Reconstruction loss for the encoder."""
    recon_weight: Float
    """Weight of the reconstruction loss (updates E and G)."""
    latent_cycle_weight: Float
    """Weight of the latent cycle loss |E(G(z)) - z| (updates E; 0 = off)."""
    precision: Literal["auto", "fp32", "bf16", "fp16"]
    """Forward/backward under autocast: fp32 (off), bf16, or fp16 (CUDA, with loss scaling);
    auto: bf16 where the hardware runs it fast (CUDA compute capability >= 8.0, CPUs with
    AVX-512 BF16/AMX), else fp32 (:func:`dcgan.base.devices.resolve_precision`). Losses, penalties,
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
    nproc: Int
    """Processes for data-parallel training (DDP under torchrun; NCCL on GPUs, one per GPU,
    gloo on CPU). Batch sizes stay global: each process takes batch_size / nproc."""
    sync_bn: Bool
    """With nproc > 1: BatchNorm statistics over the global batch instead of each process's share."""
    normalize: Literal["range", "meanstd"]
    """What D sees and G produces: range (pixels scaled to [-1, 1]) or meanstd (``(x - mean) / std``
    per channel, the dataset's statistics from data/prepared/meta.json; G's tanh is mapped
    affinely onto that range). Samples, metrics and grids are mapped back to pixels exactly."""
    discriminators: Int
    """K independently initialised discriminators (GMAN, Durugkar et al. 2017), each with its own
    loss, optimizer and DiffAugment draws; 1 = the plain single-D game."""
    d_aggregate: Literal["mean", "softmax", "max"]
    """How G's loss combines the K discriminators' losses: their mean, GMAN's softmax weighting
    (``d_temperature``), or the largest (the strictest D)."""
    d_temperature: Float
    """GMAN's softmax weight lambda: weights softmax(lambda * loss_k); 0 = mean, large = max."""

    def check(self, s: str) -> None:
        for k in ("epochs", "latent_dim", "g_width", "d_width", "log_every",
                  "checkpoint_every", "sample_grid", "eval_samples", "reg_every"):
            if getattr(self, k) < 1:
                fail(f"{s}.{k}", "must be >= 1", getattr(self, k))
        if self.min_images != "auto" and self.min_images < 0:
            fail(f"{s}.min_images", "must be >= 0 (0 = off) or auto", self.min_images)
        if self.batch_size != "auto" and self.batch_size < 1:
            fail(f"{s}.batch_size", "must be >= 1 or auto", self.batch_size)
        if self.batch_schedule:
            steps = [st for st, _ in self.batch_schedule]
            if steps[0] != 0 or steps != sorted(set(steps)):
                fail(f"{s}.batch_schedule", "must start at step 0 with increasing steps",
                      [list(x) for x in self.batch_schedule])
            if any(bs < 1 for _, bs in self.batch_schedule):
                fail(f"{s}.batch_schedule", "batch sizes must be >= 1",
                      [list(x) for x in self.batch_schedule])
            if self.batch_size == "auto":
                fail(f"{s}.batch_size", "cannot be auto together with a batch_schedule", "auto")
        if self.nproc < 1:
            fail(f"{s}.nproc", "must be >= 1", self.nproc)
        sizes = [bs for _, bs in self.batch_schedule] or ([] if self.batch_size == "auto" else [self.batch_size])
        check_divisible(sizes, self.nproc, f"{s}.batch_schedule" if self.batch_schedule else f"{s}.batch_size")
        for k in ("r1_gamma", "gp_lambda", "recon_weight", "latent_cycle_weight"):
            if getattr(self, k) != "auto" and getattr(self, k) < 0:
                fail(f"{s}.{k}", "must be >= 0", getattr(self, k))
        if self.ema_decay != "auto" and not 0.0 <= self.ema_decay < 1.0:
            fail(f"{s}.ema_decay", "must be in [0, 1) (0 = off) or auto", self.ema_decay)
        if len(set(self.diffaug)) != len(self.diffaug):
            fail(f"{s}.diffaug", "must not repeat a policy", list(self.diffaug))
        if self.eval_every < 0:
            fail(f"{s}.eval_every", "must be >= 0 (0 = off)", self.eval_every)
        if not self.lr > 0:
            fail(f"{s}.lr", "must be > 0", self.lr)
        if self.d_lr is not None and not self.d_lr > 0:
            fail(f"{s}.d_lr", "must be > 0 or null (= lr)", self.d_lr)
        if self.ema_rampup != "auto" and not 0.0 <= self.ema_rampup <= 1.0:
            fail(f"{s}.ema_rampup", "must be in [0, 1] (0 = off) or auto", self.ema_rampup)
        if not 1 <= self.discriminators <= 16:
            fail(f"{s}.discriminators", "must be from 1 to 16", self.discriminators)
        if self.d_temperature < 0:
            fail(f"{s}.d_temperature", "must be >= 0", self.d_temperature)
        for k in ("beta1", "beta2"):
            if not 0.0 <= getattr(self, k) < 1.0:
                fail(f"{s}.{k}", "must be in [0, 1)", getattr(self, k))
