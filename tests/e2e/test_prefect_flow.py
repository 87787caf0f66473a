"""The real retrain flow (Prefect test harness, ephemeral server) on a real DVC project with a
git remote and a DVC remote: promotion to a GTO version, fetching it by stage, refusal, failure."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from dcgan.app import retrain as rt
from tests.conftest import REPO

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def harness(prefect_server):
    yield


def load_flow():
    from prefect.flows import load_flow_from_entrypoint

    return load_flow_from_entrypoint(f"{REPO / 'flows/retrain.py'}:retrain")


def artifact(key: str):
    from prefect.artifacts import Artifact

    found = Artifact.get(key)
    assert found is not None, f"no artifact {key}"
    return found


def experiments(root) -> list[str]:
    refs = subprocess.run(["git", "for-each-ref", "--format=%(refname)", "refs/exps"], cwd=root,
                          capture_output=True, text=True, check=True).stdout.split()
    return sorted(r.rsplit("/", 1)[-1] for r in refs)


def tags(root) -> list[str]:
    return sorted(subprocess.run(["git", "tag"], cwd=root, capture_output=True, text=True,
                                 check=True).stdout.split())


def with_remotes(project, tmp_path):
    """A bare git repo as origin and a local folder as the default DVC remote (committed with
    an absolute path, so a consumer's clone of origin finds the data)."""
    origin, store = tmp_path / "origin.git", tmp_path / "dvc-store"
    subprocess.run(["git", "init", "-q", "--bare", str(origin)], check=True)
    project.sh("git", "remote", "add", "origin", str(origin))
    project.dvc("remote", "add", "-d", "store", str(store))
    project.git_commit("remotes")
    project.sh("git", "push", "-q", "origin", "main")
    return origin, store


def test_retrain_promotes_refuses_fails_and_queues(project, harness, tmp_path):
    retrain = load_flow()
    root = project.root
    origin, store = with_remotes(project, tmp_path)
    head0 = project.sh("git", "rev-parse", "HEAD").stdout.strip()

    # 1. another run holds the workspace: fail before anything starts
    with rt.workspace_lock(root, 0, lambda m: None):
        with pytest.raises(rt.WorkspaceBusy, match="another retrain run holds"):
            retrain(overrides={"train.lr": "0.001"}, name="blocked", workspace=str(root), lock_timeout=0.5)
    assert experiments(root) == [] and not (root / "reports/retrain").exists()

    # 2. no model yet: the first run is promoted, committed, versioned and pushed
    result = retrain(overrides={"train.lr": "0.001"}, name="first", workspace=str(root))
    assert result["promoted"] and "no baseline" in result["reason"], result
    assert (result["version_tag"], result["stage_tag"]) == ("generator@v0.0.1", "generator#prod#1")
    commit = project.sh("git", "rev-parse", "HEAD").stdout.strip()
    assert result["commit"] == commit and project.sh("git", "rev-parse", "HEAD~1").stdout.strip() == head0
    committed = set(project.sh("git", "show", "--name-only", "--format=", "HEAD").stdout.split())
    assert {"dvc.lock", "params.yaml", "reports/metrics.json"} <= committed
    assert "Promote first" in project.sh("git", "log", "-1", "--format=%s").stdout
    assert project.sh("git", "status", "--porcelain", "--untracked-files=no").stdout.strip() == ""
    assert yaml.safe_load((root / "params.yaml").read_text())["train"]["lr"] == 0.001
    promoted_metrics = (root / "reports/metrics.json").read_bytes()
    shown = json.loads(project.sh("gto", "show", "--json").stdout)
    assert shown["generator"]["version"] == "v0.0.1" and shown["generator"]["stage"]["prod"] == "v0.0.1"
    remote_refs = project.sh("git", "ls-remote", str(origin)).stdout
    assert commit in remote_refs and "refs/tags/generator@v0.0.1" in remote_refs
    assert "refs/tags/generator#prod#1" in remote_refs and "refs/exps/" in remote_refs
    diff_md = artifact("dcgan-metrics-diff").data
    assert "Retrain `first`: promoted" in diff_md and "| **fid** |" in diff_md and "`train.lr=0.001`" in diff_md
    table = artifact("dcgan-metrics").data
    assert "fid" in table and "floor" in table
    link = artifact("dcgan-samples").data
    assert "](file://" in link and link.endswith("reports/retrain/first/samples.png)")
    assert (root / "reports/retrain/first/samples.png").stat().st_size > 0

    # 3. a consumer fetches the prod model by name from the git remote alone, and samples it
    consumer = tmp_path / "consumer"
    consumer.mkdir()
    project.sh("dvc", "artifacts", "get", str(origin), "generator", "--stage", "prod",
               "-o", str(consumer / "gan"))
    assert (consumer / "gan/generator_best.safetensors").read_bytes() == \
        (root / "models/gan/generator_best.safetensors").read_bytes()
    out = project.sh("dcgan", "sample", "--model", str(consumer / "gan"), "-n", "16",
                     "-o", str(consumer / "grid.png"))
    assert (consumer / "grid.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", out.stdout

    # 4. another training seed and device (issue 38: the instrument holds still, so the runs are
    #    compared, not refused as measured differently), and a margin no run can meet: compared
    #    and reported, but nothing applied, committed or tagged
    refused = retrain(overrides={"train.lr": "0.0005", "base.seed": "1", "base.device": "cpu"}, name="worse",
                      min_improvement=1e9, workspace=str(root))
    assert not refused["promoted"] and "not shown to be more than 1e+09" in refused["reason"], refused
    assert "measured differently" not in refused["reason"]
    # the FID gate ran the paired bootstrap on both runs' generated features
    assert refused["test"].startswith("paired bootstrap") and refused["p_value"] > 0.5, refused
    assert tags(root) == ["generator#prod#1", "generator@v0.0.1"]
    assert project.sh("git", "rev-parse", "HEAD").stdout.strip() == commit
    assert (root / "reports/metrics.json").read_bytes() == promoted_metrics
    assert yaml.safe_load((root / "params.yaml").read_text())["train"]["lr"] == 0.001
    assert "Retrain `worse`: not promoted" in artifact("dcgan-metrics-diff").data

    # 5. a failing stage fails the flow run with the stage's own message; nothing is touched
    state = retrain(overrides={"train.lr": "-1"}, name="broken", workspace=str(root), return_state=True)
    assert state.is_failed()
    with pytest.raises(rt.StageFailed, match=r"error: train.lr must be > 0"):
        state.result()
    assert tags(root) == ["generator#prod#1", "generator@v0.0.1"]
    assert (root / "reports/metrics.json").read_bytes() == promoted_metrics
    assert "first" in experiments(root) and "worse" in experiments(root)
