"""From params to the library's own objects: the library never sees params.yaml's sections, only
the small dataclasses it declares (:func:`~dcgan.app.params.pick` fills one from a section): the architecture
(:func:`gan_config`) and the training loop's settings with the objective's (:func:`train_settings`)."""

from __future__ import annotations

from dcgan.app.params import TrainParams, pick
from dcgan.base.errors import UserError
from dcgan.networks.gan import GANConfig
from dcgan.training.objective import ObjectiveSpec
from dcgan.training.settings import TrainSettings


def gan_config(p: TrainParams, image_size: int, channels: int,
               stats: tuple[list[float], list[float]] | None = None) -> GANConfig:
    """The architecture that the train params describe, for images of this size and channels;
    ``stats`` (per-channel mean and std on [0, 1], e.g. data/prepared/meta.json's) are needed
    for ``train.normalize: meanstd`` and ignored otherwise."""
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
    return GANConfig(image_size, channels, p.latent_dim, p.g_width, p.d_width, p.g_norm, p.d_norm,
                     p.d_spectral, p.prior, p.encoder, p.normalize, mean, std)




def train_settings(p: TrainParams, *, batch_size: int, precision: str) -> TrainSettings:
    """The training loop's settings from the train section, with ``batch_size`` and
    ``precision`` resolved by the caller (the loop refuses ``auto``)."""
    return pick(TrainSettings, p, batch_size=batch_size, precision=precision, objective=pick(ObjectiveSpec, p))
