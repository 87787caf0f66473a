"""dvc.yaml tells the truth about code: each stage's deps are exactly the src/ modules its
``python -m dcgan.app.stages.X`` imports, and the stages that read all of params.yaml list every
section; ``make deps`` (:mod:`dcgan.app.stage_deps`) writes both, and this fails until it has.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from dcgan.app.params.whole import SECTIONS
from dcgan.app.stage_deps import check, fan_out, fan_out_markdown, regenerate, with_table
from tests.conftest import REPO


def test_every_stage_depends_on_exactly_the_code_it_imports():
    missing, extra = check(REPO)
    assert not missing, "imported but not in the stage's deps (dvc status would miss an edit):\n" + \
        "\n".join(missing)
    assert not extra, "in the stage's deps but never imported (needless reruns):\n" + "\n".join(extra)


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(textwrap.dedent(text))


@pytest.mark.parametrize("deps, missing, extra", [
    # the stage imports util at the top and lazy (inside a function) imports helpers.deep
    (["src/dcgan/app/stages/a.py", "src/dcgan/util.py", "src/dcgan/helpers"], [], []),
    (["src/dcgan/app/stages/a.py", "src/dcgan/util.py"], ["a: src/dcgan/helpers/deep.py"], []),
    (["src/dcgan/app/stages/a.py", "src/dcgan/helpers"], ["a: src/dcgan/util.py"], []),
    (["src/dcgan/app/stages/a.py", "src/dcgan/util.py", "src/dcgan/helpers", "src/dcgan/unused.py"],
     [], ["a: src/dcgan/unused.py"]),
])
def test_the_check_finds_lazy_and_transitive_imports(tmp_path, deps, missing, extra):
    write(tmp_path, {
        "src/dcgan/__init__.py": '"""docstring only: ignored"""\n',
        "src/dcgan/app/stages/__init__.py": "",
        "src/dcgan/app/stages/a.py": "from dcgan import util\n",
        "src/dcgan/util.py": """\
            def f():
                from .helpers import deep
                return deep.x
            """,
        "src/dcgan/helpers/__init__.py": "",
        "src/dcgan/helpers/deep.py": "x = 1\n",
        "src/dcgan/unused.py": "y = 2\n",
        "dvc.yaml": yaml.safe_dump({"stages": {"a": {"cmd": "python -m dcgan.app.stages.a --x 1",
                                                      "deps": deps}}}),
    })
    assert check(tmp_path) == (missing, extra)


def test_a_package_init_with_code_counts(tmp_path):
    write(tmp_path, {
        "src/dcgan/__init__.py": "VERSION = 1\n",
        "src/dcgan/app/stages/__init__.py": '"""stages"""\n',
        "src/dcgan/app/stages/a.py": "",
        "dvc.yaml": yaml.safe_dump({"stages": {"a": {"cmd": "python -m dcgan.app.stages.a",
                                                      "deps": ["src/dcgan/app/stages/a.py"]}}}),
    })
    assert check(tmp_path) == (["a: src/dcgan/__init__.py"], [])


def test_the_fan_out_table_in_the_docs_is_the_one_dvc_yaml_gives():
    doc = (REPO / "docs/fan_out.md").read_text()
    assert with_table(doc, fan_out_markdown(REPO)) == doc, "run: make deps"
    table = fan_out(REPO)
    assert table["dcgan/app/params/train.py"][0] == ["validate", "train", "report"]
    assert table["dcgan/metrics/registry.py"][0] == ["validate", "evaluate", "report"]
    stages = list(yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"])
    assert stages[:2] == ["validate", "prepare"]  # every later stage reads prepare's output, directly or not
    assert table["dcgan/data/loaders.py"] == (["validate", "prepare"], stages[2:])


def test_dvc_yaml_is_what_make_deps_writes():
    assert regenerate(REPO) == (REPO / "dvc.yaml").read_text(), "dvc.yaml is out of date: run make deps"
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for name in ("validate", "report"):  # they read the whole of params.yaml
        assert stages[name]["params"] == list(SECTIONS), name


def test_make_deps_lists_every_section_for_a_stage_that_reads_them_all(tmp_path):
    write(tmp_path, {
        "src/dcgan/app/stages/a.py": "from dcgan.app.params import whole\n",
        "src/dcgan/app/params/whole.py": "x = 1\n",
        "dvc.yaml": """\
            stages:
              a:
                cmd: python -m dcgan.app.stages.a
                deps:
                  - src/dcgan/app/stages/a.py
                params:
                  - base
                  - train
                outs:
                  - out
            """,
    })
    new = yaml.safe_load(regenerate(tmp_path))["stages"]["a"]
    assert new["params"] == list(SECTIONS)
    assert new["deps"] == ["src/dcgan/app/params/whole.py", "src/dcgan/app/stages/a.py"] and new["outs"] == ["out"]
