"""What a training run is told: :class:`Run`, one frozen object with every setting resolved (the
architecture and the objective inside it, batch size, precision, compile mode and length
decided), and its fixed frame (:class:`Setup`: the run, seed, device, processes)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch

from dcgan.core.errors import SettingError
from dcgan.networks.gan import GANConfig
from dcgan.training.distributed import DistEnv
from dcgan.training.draws import Key, draw_generators, draw_noise
from dcgan.training.objective import ObjectiveSpec

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
INDUCTOR_MODES = ("default", "reduce-overhead", "max-autotune")
"""Compile modes that torch.compile the networks (graph captures the eager step instead)."""


@dataclass(frozen=True)
class Run:
    """One training run, resolved: what to build (``arch``), what to minimise (``objective``) and
    how to train it. Nothing here is ``auto``: the caller decides (the train stage's
    :func:`dcgan.app.recipe.plan_run`)."""

    arch: GANConfig
    objective: ObjectiveSpec
    epochs: int
    max_steps: int
    """0 = off: epochs decide."""
    batch_size: int
    """The batch size outside ``batch_schedule`` (resolved: never ``auto``)."""
    batch_schedule: tuple[tuple[int, int], ...]
    lr_scaling: str
    lr: float
    d_lr: float | None
    """The discriminators' lr at the base batch size (None: ``lr``; TTUR: higher than G's)."""
    beta1: float
    beta2: float
    log_every: int
    checkpoint_every: int
    sample_grid: int
    eval_every: int
    ema_decay: float
    ema_rampup: float
    """0 = a fixed decay; > 0: half-life at most this share of the images seen (stylegan2-ada)."""
    discriminators: int
    precision: str
    """fp32, bf16 or fp16 (resolved: the caller decides what ``auto`` means on its machine)."""
    channels_last: bool
    compile: str
    sync_bn: bool
    batch_auto: bool = False
    """Whether ``batch_size`` was measured (auto) rather than given."""
    decisions: tuple[str, ...] = ()
    """One line per decision that resolved this run, for the log."""

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)} (resolve 'auto' first, "
                             f"with dcgan.core.devices.resolve_precision), got {self.precision!r}")
        if self.compile == "auto":
            raise ValueError("compile must be resolved before training (resolve 'auto' first, with "
                             "dcgan.training.graphed.resolve_compile)")
        if not isinstance(self.batch_size, int) or isinstance(self.batch_size, bool):
            raise ValueError(f"batch_size must be a resolved integer, got {self.batch_size!r}")

    @property
    def base_batch_size(self) -> int:
        """The batch size ``lr`` is given for: the first scheduled one, else ``batch_size``."""
        return self.batch_schedule[0][1] if self.batch_schedule else self.batch_size


@dataclass(frozen=True)
class Setup:
    """The fixed frame of a run."""

    run: Run
    seed: int
    device: torch.device
    dist: DistEnv

    def __post_init__(self) -> None:
        if self.run.precision == "fp16" and self.device.type != "cuda":
            raise SettingError("precision", f"fp16 needs a CUDA device (loss scaling), not "
                                            f"{self.device.type}; use bf16 or fp32")
        if self.device.type == "cuda" and self.run.channels_last and self.run.compile in INDUCTOR_MODES:
            raise SettingError("compile", f"{self.run.compile} with channels_last on CUDA fails in inductor (a "
                               "stride assertion in the backward of G's first ConvTranspose2d, an upstream "
                               "bug); use compile graph, or channels_last off")

    @property
    def amp_dtype(self) -> torch.dtype | None:
        return PRECISIONS[self.run.precision]

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.run.channels_last else torch.contiguous_format

    def noise(self, step: int, bs: int) -> torch.Tensor:
        """This rank's noise for ``step`` (a global batch of ``bs``), on the CPU
        (:func:`dcgan.training.draws.draw_noise`)."""
        return draw_noise(self.seed, step, bs, self.run.arch.latent_dim, self.run.arch.prior, self.dist)

    def generators(self, step: int) -> Callable[[Key], torch.Generator]:
        """The step's seeded generator per (purpose, discriminator)
        (:func:`dcgan.training.draws.draw_generators`)."""
        return draw_generators(self.seed, step, self.dist)

    def autocast(self) -> AbstractContextManager:
        """Forward passes in reduced precision; losses and penalties are computed outside, in fp32."""
        return torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                              enabled=self.amp_dtype is not None)
