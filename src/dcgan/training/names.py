"""The names that the training code's registries accept: data only, with no imports, so that
params validation (``Literal[...]`` types), the docs and the tests read them here without loading
the code. Each registry binds its names in its own module and checks at import that it has one
entry per name, in this order: a new loss is one name here plus its entry there."""

ADVERSARIAL_LOSSES = ("bce", "hinge", "wgan")
"""``train.loss``: :data:`dcgan.training.losses.ADVERSARIAL`."""
RECON_LOSSES = ("l1", "l2", "smooth_l1")
"""``train.recon_loss``: :data:`dcgan.training.losses.RECONSTRUCTION`."""
DIFFAUG_POLICIES = ("color", "translation", "cutout")
"""``train.diffaug``: :data:`dcgan.training.diffaug.POLICIES`."""
ADA_PIPELINES = ("bg", "bgc")
"""``train.ada`` (besides ``none``): :data:`dcgan.training.ada.PIPELINES`."""


def check_bound(names: tuple[str, ...], table: dict, what: str) -> None:
    """Fail at import where a registry's entries are not exactly ``names`` in order (a bug)."""
    if tuple(table) != names:
        raise ImportError(f"{what} has entries {list(table)}, but dcgan.training.names lists {list(names)}")
