"""A real DVC project in a temporary git repo: the repo's dvc.yaml and code, tiny params."""

from __future__ import annotations

import configparser
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO, tiny_params, venv_env, write_params


class Project:
    def __init__(self, root: Path):
        self.root = root
        self.env = venv_env()

    def sh(self, *cmd: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
        res = subprocess.run(list(cmd), cwd=self.root, env=self.env, capture_output=True, text=True,
                             timeout=timeout)
        if check and res.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} exited {res.returncode}\n{res.stdout}\n{res.stderr}")
        return res

    def dvc(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return self.sh("dvc", *args, **kw)

    def git_commit(self, message: str) -> None:
        self.sh("git", "add", "-A")
        self.sh("git", "commit", "-q", "-m", message)

    def metrics(self) -> dict:
        return json.loads((self.root / "reports/metrics.json").read_text())


def shipped_cache_type() -> str:
    """The cache link type the repo's .dvc/config ships (reflink,hardlink,copy)."""
    cfg = configparser.ConfigParser()
    cfg.read(REPO / ".dvc/config")
    return cfg["cache"]["type"].strip('"')


def make_project(root: Path, params: dict | None = None) -> Project:
    for name in ("dvc.yaml", ".dvcignore"):
        shutil.copy(REPO / name, root / name)
    shutil.copytree(REPO / "src", root / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for readme in ("data/raw/README.md", "models/inception/README.md"):
        (root / readme).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / readme, root / readme)
    write_params(root / "params.yaml", params or tiny_params())
    p = Project(root)
    p.sh("git", "init", "-q", "-b", "main")
    p.sh("git", "config", "user.email", "test@example.com")
    p.sh("git", "config", "user.name", "test")
    p.dvc("init", "-q")
    p.dvc("config", "core.analytics", "false")
    p.dvc("config", "cache.type", shipped_cache_type())  # the link type users get
    p.git_commit("init")
    return p


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return make_project(tmp_path)


@pytest.fixture(scope="session")
def prefect_server():
    """One ephemeral Prefect server (Prefect's test harness) for every test that needs one:
    starting it takes about 20 s."""
    import os

    from prefect.testing.utilities import prefect_test_harness

    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # offline: no telemetry
    with prefect_test_harness(server_startup_timeout=120):
        yield
