"""The layers are a checked contract, not a claim: lint-imports (import-linter, configured in
pyproject.toml, run by `make test`) passes on the tree and fails when an import goes upward; and
test modules share helpers through conftest.py, never by importing each other."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """lint-imports on the package under ``root``/src, with ``root``/pyproject.toml's contracts."""
    exe = Path(sys.executable).parent / "lint-imports"
    env = {"PATH": str(exe.parent), "PYTHONPATH": str(root / "src"), "HOME": str(root)}
    return subprocess.run([str(exe), "--config", str(root / "pyproject.toml"), "--no-cache"], cwd=root,
                          env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """A copy of the package and its contracts, to plant imports in."""
    root = tmp_path_factory.mktemp("tree")
    shutil.copytree(REPO / "src" / "dcgan", root / "src" / "dcgan",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    return root


def plant(tree: Path, module: str, line: str) -> str:
    path = tree / "src" / Path(*module.split(".")).with_suffix(".py")
    original = path.read_text()
    path.write_text(f"{line}\n{original}")
    return original


def test_the_tree_keeps_its_contracts(tree):
    r = lint_imports(tree)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 kept, 0 broken" in r.stdout


@pytest.mark.parametrize("module, line, broken", [
    # the library reading params: the loop importing the application's params module
    ("dcgan.training.loop", "from dcgan.app.params.train import TrainParams  # noqa", "application > library"),
    # the ground floor importing the library (images.py once took to_uint8 from data/)
    ("dcgan.core.images", "from dcgan.data.arrays import load_images  # noqa", "application > library"),
    # two libraries on one floor are independent: metrics may not use the training loop
    ("dcgan.metrics.fid", "from dcgan.training import loop  # noqa", "application > library"),
    # the library parsing params.yaml itself
    ("dcgan.networks.gan", "import yaml  # noqa", "never read params.yaml"),
])
def test_a_planted_wrong_way_import_breaks_the_build(tree, module, line, broken):
    original = plant(tree, module, line)
    try:
        r = lint_imports(tree)
    finally:
        (tree / "src" / Path(*module.split(".")).with_suffix(".py")).write_text(original)
    assert r.returncode != 0, r.stdout
    assert "BROKEN" in r.stdout and broken in r.stdout.replace("\n", " "), r.stdout


def test_no_test_module_imports_another():
    offenders = []
    for path in sorted((REPO / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([node.module or ""] if isinstance(node, ast.ImportFrom)
                     else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            for name in names:
                last = name.rsplit(".", 1)[-1]
                if name.startswith("tests") and last.startswith("test_"):
                    offenders.append(f"{path.relative_to(REPO)} imports {name}")
    assert not offenders, "\n".join(offenders)
