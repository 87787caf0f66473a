"""The library names no params.yaml key in its errors: it says what is wrong with the value,
under its own name for the setting (dcgan.core.errors.SettingError), and the stage that read the
value reports it under the key (dcgan.app.params.typed.keyed)."""

from __future__ import annotations

import ast
import dataclasses
import re

from dcgan.app.params.whole import SECTIONS
from dcgan.app.stages import prepare
from dcgan.app.stages._common import run
from tests.conftest import REPO, tiny_params, write_params

LIBRARY = ("core", "data", "networks", "training", "metrics")
KEYS = {f"{name}.{f.name}" for name, cls in SECTIONS.items() for f in dataclasses.fields(cls)}


def keys_named_in_raises(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and node.exc is not None:
            text = " ".join(c.value for c in ast.walk(node.exc) if isinstance(c, ast.Constant) and isinstance(c.value, str))
            found += [k for k in re.findall(r"\b[a-z]+\.[a-z_0-9]+\b", text) if k in KEYS]
    return found


def test_no_library_error_names_a_params_key():
    offenders = []
    for package in LIBRARY:
        for path in sorted((REPO / "src/dcgan" / package).rglob("*.py")):
            offenders += [f"{path.relative_to(REPO)}: {k}" for k in keys_named_in_raises(ast.parse(path.read_text()))]
    assert not offenders, "\n".join(offenders)


def test_the_check_sees_a_planted_key():
    planted = 'raise UserError(f"set train.lr lower, got {lr}")'
    assert keys_named_in_raises(ast.parse(planted)) == ["train.lr"]
    assert keys_named_in_raises(ast.parse('raise UserError("data/train.npy is missing")')) == []


def test_the_stage_names_the_key_a_loader_refused(workdir, capsys):
    """MNIST's files are missing: the loader says so of its ``root``; the prepare stage names
    prepare.root and prepare.download."""
    write_params(workdir / "params.yaml", tiny_params(prepare={"dataset": "mnist", "root": str(workdir / "none")}))
    assert run(prepare.main, []) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: prepare.root {workdir / 'none'}: MNIST files not found"), err
    assert err.endswith(")") and "put them there or set prepare.download: true" in err


def test_a_setting_error_crosses_a_process_pool_as_it_was_raised():
    """The prepare stage decodes in worker processes: the error must unpickle whole."""
    import pickle

    from dcgan.core.errors import SettingError

    err = pickle.loads(pickle.dumps(SettingError("root", "x: not found; set {download}: true")))
    assert isinstance(err, SettingError) and str(err) == "root x: not found; set download: true"
    assert str(err.keyed(lambda name: f"prepare.{name}")) == "prepare.root x: not found; set prepare.download: true"
