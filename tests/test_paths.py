"""The pipeline's paths have one home, dcgan.app.paths: dvc.yaml passes those, and no other
module of src/ or flows/ spells one out."""

from __future__ import annotations

import ast
import re
import shlex

import yaml

from dcgan.app import paths
from tests.conftest import REPO

PATHS = {k: v for k, v in vars(paths).items() if k.isupper()}
PREFIXES = ("data/", "models/", "reports/", "checkpoints/")


def is_path(v: str) -> bool:
    return v.startswith(PREFIXES) or v == "dvclive"


def test_dvc_yaml_passes_the_paths_module_and_lists_each():
    text = (REPO / "dvc.yaml").read_text()
    for name, stage in yaml.safe_load(text)["stages"].items():
        args = shlex.split(stage["cmd"])
        for flag, value in zip(args, args[1:], strict=False):
            if flag.startswith("--") and is_path(value):
                assert value in PATHS.values(), f"{name}: {flag} {value} is not in dcgan.app.paths"
    unused = [k for k, v in PATHS.items() if k != "RETRAIN_REPORTS" and not re.search(rf"\b{re.escape(v)}\b", text)]
    assert not unused, f"in dcgan.app.paths but not in dvc.yaml: {unused}"


def path_literals(tree: ast.AST) -> list[tuple[int, str]]:
    """String constants that look like a pipeline path, docstrings aside."""
    docs = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)}
    return [(n.lineno, n.value) for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs
            and is_path(n.value)]


def test_no_module_but_paths_spells_out_a_pipeline_path():
    found = []
    for root in ("src/dcgan", "flows"):
        for f in sorted((REPO / root).rglob("*.py")):
            if f.name != "paths.py" or f.parent.name != "app":
                found += [f"{f.relative_to(REPO)}:{line}: {v!r}" for line, v in path_literals(ast.parse(f.read_text()))]
    assert not found, "use dcgan.app.paths:\n" + "\n".join(found)


def test_the_scan_sees_a_path_but_not_a_docstring():
    tree = ast.parse('"""reads data/prepared"""\nX = "models/gan"\n')
    assert path_literals(tree) == [(2, "models/gan")]
