"""From params to the library's own objects: the library never sees params.yaml's sections, only
the small dataclasses it declares (:func:`~dcgan.app.params.typed.pick` fills one from a section): the architecture
(:func:`gan_config`) and the training loop's settings with the objective's (:func:`train_settings`).

First, the train keys set to ``auto`` take the recipe for the kind of data (:func:`resolve_recipe`):
grey and colour images want different settings (reports/ablation.md: digits, digits10k, colour)."""

from __future__ import annotations

import dataclasses

from dcgan.app.params.train import TrainParams
from dcgan.app.params.typed import pick
from dcgan.base.errors import UserError
from dcgan.networks.gan import GANConfig
from dcgan.training.objective import ObjectiveSpec
from dcgan.training.schedule import count_steps
from dcgan.training.settings import TrainSettings

RECIPES: dict[str, dict[str, object]] = {
    # digits and digits10k (issue 21): R1 gamma 0.1 beat plain DCGAN in 10 of 10 paired seeds
    "grey": {"r1_gamma": 0.1, "min_steps": 0},
    # real colour photos (issue 29, reports/ablation.md's colour setting): no R1 row beat plain
    # DCGAN by more than its test could detect at the shipped length (0.1 worse on average, 1
    # worse still), so colour data trains plain DCGAN's objective; and length is what colour
    # photos lack: at 4x the shipped 20 epochs (5,120 steps on 4,098 images) every row's FID fell
    # by an order of magnitude and objects appeared, so small colour sets train >= 5,120 steps
    "colour": {"r1_gamma": 0.0, "min_steps": 5120},
}
"""What each train key set to ``auto`` becomes, by the kind of data."""


def data_kind(channels: int) -> str:
    """grey (1 channel) or colour (3)."""
    return "grey" if channels == 1 else "colour"


def resolve_recipe(p: TrainParams, channels: int) -> TrainParams:
    """The train params with every ``auto`` key set from the recipe for this kind of data
    (:data:`RECIPES`); keys given a value keep it."""
    table = RECIPES[data_kind(channels)]
    return dataclasses.replace(p, **{k: v for k, v in table.items() if getattr(p, k) == "auto"})


def resolve_length(p: TrainParams, n_images: int, batch_size: int) -> TrainParams:
    """``epochs`` raised until the run takes at least ``min_steps`` steps on ``n_images`` (the
    batch schedule counted; ``max_steps`` still caps the run); unchanged when min_steps is 0."""
    if p.min_steps == "auto":
        raise ValueError("train.min_steps still auto: resolve the recipe first")
    epochs = p.epochs
    per_epoch = count_steps(n_images, 1, (), batch_size) if not p.batch_schedule else 0
    if p.min_steps and per_epoch:  # the batch size is fixed: closed form
        epochs = max(epochs, -(-p.min_steps // per_epoch))
    elif p.min_steps:
        while count_steps(n_images, epochs, p.batch_schedule, batch_size) < p.min_steps and epochs < 10**6:
            epochs += 1
    return dataclasses.replace(p, epochs=epochs)


def unresolved(p: TrainParams) -> list[str]:
    return [k for k in RECIPES["grey"] if getattr(p, k) == "auto"]


def _refuse_auto(p: TrainParams) -> None:
    if keys := unresolved(p):
        raise ValueError(f"train.{', train.'.join(keys)} still auto: resolve the recipe first "
                         "(dcgan.app.recipe.resolve_recipe with the data's channels)")


def gan_config(p: TrainParams, image_size: int, channels: int,
               stats: tuple[list[float], list[float]] | None = None) -> GANConfig:
    """The architecture that the train params describe, for images of this size and channels;
    ``stats`` (per-channel mean and std on [0, 1], e.g. data/prepared/meta.json's) are needed
    for ``train.normalize: meanstd`` and ignored otherwise."""
    _refuse_auto(p)
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    if p.normalize == "meanstd":
        if stats is None:
            raise UserError("train.normalize: meanstd needs the dataset's per-channel mean and std "
                            "(data/prepared/meta.json)")
        mean, std = tuple(float(m) for m in stats[0]), tuple(float(v) for v in stats[1])
        if len(mean) != channels or len(std) != channels:
            raise UserError(f"train.normalize: meanstd needs {channels} per-channel means and stds, "
                            f"got {len(mean)} and {len(std)}")
        if not all(v > 0 for v in std):
            raise UserError(f"train.normalize: meanstd needs every channel's std > 0, got {list(std)} "
                            "(a constant channel cannot be standardised; use train.normalize: range)")
    return pick(GANConfig, p, image_size=image_size, channels=channels, mean=mean, std=std)




def train_settings(p: TrainParams, *, batch_size: int, precision: str) -> TrainSettings:
    """The training loop's settings from the train section, with ``batch_size`` and
    ``precision`` resolved by the caller (the loop refuses ``auto``)."""
    _refuse_auto(p)
    return pick(TrainSettings, p, batch_size=batch_size, precision=precision, objective=pick(ObjectiveSpec, p))
