"""The real retrain flow (Prefect test harness, ephemeral server) on a real DVC project."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
import yaml

from dcgan import retrain as rt
from tests.conftest import REPO

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def harness():
    from prefect.testing.utilities import prefect_test_harness

    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # offline: no telemetry
    with prefect_test_harness(server_startup_timeout=120):
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


def test_retrain_promotes_refuses_fails_and_queues(project, harness):
    retrain = load_flow()
    project.dvc("repro")
    project.git_commit("baseline")
    root = project.root
    baseline_metrics = (root / "reports/metrics.json").read_bytes()

    # 1. another run holds the workspace: fail before anything starts
    with rt.workspace_lock(root, 0, lambda m: None):
        with pytest.raises(rt.WorkspaceBusy, match="another retrain run holds"):
            retrain(overrides={"train.lr": "0.001"}, name="blocked", workspace=str(root), lock_timeout=0.5)
    assert experiments(root) == [] and not (root / "reports/retrain").exists()

    # 2. any result passes a margin of -1e9: promoted, applied, in the registry, artifacts made
    result = retrain(overrides={"train.lr": "0.001"}, name="better", min_improvement=-1e9,
                     workspace=str(root))
    assert result["promoted"], result
    latest = json.loads((root / "models/registry/latest.json").read_text())
    entry = root / "models/registry" / latest["path"]
    assert latest["name"] == "better" and entry.name.endswith("-better")
    for name in ("gan/generator.safetensors", "gan/generator_best.safetensors", "gan/model.json",
                 "params.yaml", "metrics.json", "samples.png", "promotion.json"):
        assert (entry / name).is_file(), name
    assert yaml.safe_load((entry / "params.yaml").read_text())["train"]["lr"] == 0.001
    # applied: the workspace now holds the promoted run (params, metrics, model)
    assert yaml.safe_load((root / "params.yaml").read_text())["train"]["lr"] == 0.001
    promoted_metrics = (root / "reports/metrics.json").read_bytes()
    assert promoted_metrics == (entry / "metrics.json").read_bytes() != baseline_metrics
    assert (root / "models/gan/generator_best.safetensors").read_bytes() == \
        (entry / "gan/generator_best.safetensors").read_bytes()
    diff_md = artifact("dcgan-metrics-diff").data
    assert "Retrain `better`: promoted" in diff_md and "| **fid** |" in diff_md and "`train.lr=0.001`" in diff_md
    table = artifact("dcgan-metrics").data
    assert "fid" in table and "floor" in table
    link = artifact("dcgan-samples").data
    assert "](file://" in link and link.endswith("reports/retrain/better/samples.png)")
    assert (root / "reports/retrain/better/samples.png").stat().st_size > 0

    # 3. a margin no run can meet: compared and reported, but nothing promoted or applied
    refused = retrain(overrides={"train.lr": "0.0005"}, name="worse", min_improvement=1e9,
                      workspace=str(root))
    assert not refused["promoted"] and "is not more than" in refused["reason"]
    assert json.loads((root / "models/registry/latest.json").read_text()) == latest
    assert len([p for p in (root / "models/registry").iterdir() if p.is_dir()]) == 1
    assert (root / "reports/metrics.json").read_bytes() == promoted_metrics
    assert yaml.safe_load((root / "params.yaml").read_text())["train"]["lr"] == 0.001
    assert "Retrain `worse`: not promoted" in artifact("dcgan-metrics-diff").data

    # 4. a failing stage fails the flow run with the stage's own message; nothing is touched
    state = retrain(overrides={"train.lr": "-1"}, name="broken", workspace=str(root), return_state=True)
    assert state.is_failed()
    with pytest.raises(rt.StageFailed, match=r"error: train.lr must be > 0"):
        state.result()
    assert json.loads((root / "models/registry/latest.json").read_text()) == latest
    assert (root / "reports/metrics.json").read_bytes() == promoted_metrics
    assert "better" in experiments(root) and "worse" in experiments(root)
