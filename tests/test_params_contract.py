"""params.yaml's sections and the library dataclasses they fill (``fill_from``, or the train run's constructors in dcgan.app.recipe) agree field by field:
a rename or a type change on either side fails here, not when a run starts."""

from __future__ import annotations

import ast
import dataclasses
import types
import typing
from typing import Annotated, Literal, Union, get_args, get_origin

import pytest

from dcgan.app.params.augment import AugmentParams
from dcgan.app.params.evaluate import EvaluateParams
from dcgan.app.params.prepare import PrepareParams
from dcgan.app.params.train import TrainParams
from dcgan.data.augment import Augmentation
from dcgan.data.loaders import dataset_names, options_type
from dcgan.metrics.suite import ScoreOptions
from dcgan.networks.gan import GANConfig
from dcgan.training.objective import ObjectiveSpec
from dcgan.training.settings import Run
from tests.conftest import REPO

# (library dataclass, the section that fills it, the fields filled from elsewhere: resolved or derived);
# the train section's are built by dcgan.app.recipe's constructors, the others with ``fill_from``
PICKS = [
    (GANConfig, TrainParams, {"image_size", "channels", "mean", "std"}),
    (Run, TrainParams, {"arch", "objective", "batch_size", "precision", "batch_auto", "decisions"}),
    (ObjectiveSpec, TrainParams, set()),
    (ScoreOptions, EvaluateParams, set()),
    (Augmentation, AugmentParams, set()),
    *[(options_type(name), PrepareParams, set()) for name in dataset_names()],
]
PICKED = {"ScoreOptions", "Augmentation", "options_type"}


def kinds(tp) -> frozenset[str]:
    """A type as the set of plain kinds a value may have: ``Annotated[Float, rule] | Literal['auto']``
    -> {float, auto}; a Literal of other strings is a str."""
    origin, args = get_origin(tp), get_args(tp)
    if origin is Annotated:
        return kinds(args[0])
    if origin in (Union, types.UnionType):
        return frozenset().union(*map(kinds, args))
    if origin is Literal:
        return frozenset({"auto"} if args == ("auto",) else {type(a).__name__ for a in args})
    if origin is tuple:
        inner = sorted(frozenset().union(*(kinds(a) for a in args if a is not Ellipsis)))
        return frozenset({f"tuple[{'|'.join(inner)}]"})
    return frozenset({"None" if tp is type(None) else tp.__name__})


def hints(cls) -> dict:
    return typing.get_type_hints(cls, include_extras=True)


@pytest.mark.parametrize(("lib", "section", "elsewhere"), PICKS, ids=lambda x: getattr(x, "__name__", ""))
def test_each_library_field_is_a_params_key_of_the_same_type(lib, section, elsewhere):
    lib_types, params_types = hints(lib), hints(section)
    for f in dataclasses.fields(lib):
        if f.name in elsewhere:
            continue
        assert f.name in params_types, f"{lib.__name__}.{f.name} is not a key of params.yaml's {section.SECTION} section"
        want = kinds(params_types[f.name]) - {"auto"}  # auto is resolved before the library sees it
        assert kinds(lib_types[f.name]) == want, (f"{lib.__name__}.{f.name} is {kinds(lib_types[f.name])}, "
                                                  f"{section.SECTION}.{f.name} is {want}")


def test_the_kinds_tell_types_apart():
    assert kinds(hints(TrainParams)["r1_gamma"]) == {"float", "auto"}
    assert kinds(hints(TrainParams)["batch_schedule"]) == {"tuple[tuple[int]]"}
    assert kinds(hints(Run)["d_lr"]) == {"float", "None"}
    assert kinds(int) != kinds(float) and kinds(bool) != kinds(int)


def test_every_pick_in_src_is_checked_here():
    """A new ``fill_from(SomeConfig, section)`` in src/ must be added to PICKS."""
    picked = set()
    for path in (REPO / "src").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "fill_from":
                first = node.args[0]
                picked.add(first.func.id if isinstance(first, ast.Call) else first.id)
    assert picked == PICKED


def test_the_loss_choices_are_the_loss_registry():
    """train.loss and train.recon_loss accept exactly the registered losses, and params.yaml's
    comments and docs/techniques.md list them all."""
    import re

    from dcgan.training.names import ADVERSARIAL_LOSSES as ADVERSARIAL
    from dcgan.training.names import RECON_LOSSES as RECONSTRUCTION

    params_yaml = (REPO / "params.yaml").read_text()
    techniques = (REPO / "docs" / "techniques.md").read_text()
    for key, registry in (("loss", ADVERSARIAL), ("recon_loss", RECONSTRUCTION)):
        assert get_args(hints(TrainParams)[key]) == tuple(registry), key
        comment = re.search(rf"^  {key}: \w+ +# (.*)$", params_yaml, re.M).group(1)
        assert all(name in comment for name in registry), (key, comment)
        bar = " \\| "
        assert f"`train.{key}: {bar.join(registry)}`" in techniques, key
