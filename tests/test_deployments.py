"""The container deployments in prefect.yaml (issue 8): their job variables validated against
each work pool's real base job template (prefect-docker's default, deploy/k8s-base-job-template.json),
and deploy/prepare-workspace.sh run for real. Deploying them to a Prefect server and rendering
the Docker/Kubernetes job a worker would start: tests/e2e/test_prefect_deploy.py."""

import copy
import json
import os
import re
import shutil
import subprocess

import pytest

from tests.conftest import (
    ENV,
    REPO,
    check_deployment,
    k8s_template,
    load_deployments,
    pool_template,
)


def resolve_env_placeholders(obj, env: dict[str, str]):
    """What `prefect deploy` does with "{{ $NAME }}": the deploying shell's variable."""
    from prefect.utilities.templating import apply_values

    text = json.dumps(obj)
    for name in set(re.findall(r"\{\{ \$(\w+) \}\}", text)):
        text = text.replace("{{ $" + name + " }}", env[name])
    return apply_values(json.loads(text), {})


def validate_job_variables(dep: dict, env: dict[str, str] = ENV) -> dict:
    """The deployment's job variables, checked against its pool's variables schema."""
    from prefect.utilities.schema_tools import validate

    _, template = pool_template(dep["work_pool"]["name"])
    values = resolve_env_placeholders(dep["work_pool"]["job_variables"], env)
    validate(values, template["variables"], raise_on_error=True)
    return values


def container_deployments() -> list[dict]:
    return [d for d in load_deployments()[1] if d["name"] != "weekly-retrain"]


def test_every_deployment_names_the_flow_with_valid_parameters_and_schedule():
    deps = load_deployments()[1]
    assert [d["name"] for d in deps] == ["weekly-retrain", "weekly-retrain-docker", "weekly-retrain-k8s"]
    for d in deps:
        assert check_deployment(d) == [], d["name"]
        assert d["concurrency_limit"]["limit"] == 1


def test_container_deployments_prepare_the_workspace_on_the_volume_and_persist_results():
    for d in container_deployments():
        steps = [next(iter(s)) for s in d["pull"]]
        assert steps == ["prefect.deployments.steps.run_shell_script",
                         "prefect.deployments.steps.set_working_directory"]
        assert d["pull"][0]["prefect.deployments.steps.run_shell_script"]["script"] == \
            "bash /opt/dcgan/deploy/prepare-workspace.sh"
        env = d["work_pool"]["job_variables"]["env"]
        assert env["DCGAN_DEVICE"] == "cuda" and env["DCGAN_WORKSPACE"] == "/workspace/dcgan"
        assert env["PREFECT_RESULTS_PERSIST_BY_DEFAULT"] == "true"
        assert env["PREFECT_RESULTS_LOCAL_STORAGE_PATH"].startswith("/workspace/")
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "COPY deploy ./deploy" in dockerfile and "WORKDIR /opt/dcgan" in dockerfile


def test_container_job_variables_fit_their_pools():
    for dep in container_deployments():
        values = validate_job_variables(dep)
        assert values["image"] == ENV["DCGAN_IMAGE"] and values["env"]["DCGAN_GIT_URL"] == ENV["DCGAN_GIT_URL"]


def test_broken_job_variables_are_caught():
    from prefect.utilities.schema_tools import ValidationError

    k8s = next(d for d in container_deployments() if d["work_pool"]["name"] == "dcgan-k8s")
    dep = copy.deepcopy(k8s)
    dep["work_pool"]["job_variables"]["gpu_count"] = "two"
    with pytest.raises(ValidationError, match="gpu_count"):
        validate_job_variables(dep)
    dep = copy.deepcopy(next(d for d in container_deployments() if d["work_pool"]["name"] == "dcgan-docker"))
    dep["work_pool"]["job_variables"]["volumes"] = "dcgan-workspace:/workspace"  # not a list
    with pytest.raises(ValidationError, match="volumes"):
        validate_job_variables(dep)


def test_k8s_template_keeps_every_variable_of_prefects_default():
    """deploy/k8s-base-job-template.json extends prefect-kubernetes' default: nothing dropped."""
    from prefect_kubernetes.worker import KubernetesWorker

    default = KubernetesWorker.get_default_base_job_template()
    ours = k8s_template()
    assert set(default["variables"]["properties"]) <= set(ours["variables"]["properties"])
    assert {"gpu_count", "workspace_claim"} <= set(ours["variables"]["properties"])


# --- deploy/prepare-workspace.sh, for real: git, DVC and pip in temporary folders -----------


def test_prepare_workspace_clones_then_updates_and_sets_the_remote(tmp_path):
    from tests.conftest import venv_env

    origin = tmp_path / "origin"
    origin.mkdir()
    git = lambda *a, cwd=origin: subprocess.run(["git", *a], cwd=cwd, check=True, capture_output=True)  # noqa: E731
    git("init", "-q", "-b", "main")
    for name in ("pyproject.toml", "README.md", "dvc.yaml"):
        shutil.copy(REPO / name, origin / name)
    shutil.copytree(REPO / "src", origin / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copytree(REPO / ".dvc", origin / ".dvc", ignore=shutil.ignore_patterns("tmp", "cache", "config.local"))
    git("-c", "user.email=t@t", "-c", "user.name=t", "add", "-A")
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "-m", "one")
    ws = tmp_path / "volume/dcgan"
    env = {**venv_env(), "DCGAN_WORKSPACE": str(ws), "DCGAN_GIT_URL": str(origin),
           "DCGAN_DVC_REMOTE": str(tmp_path / "bucket"),
           "DCGAN_INSTALL_WORKSPACE": "0"}  # never swap this venv's dcgan for the clone's
    script = REPO / "deploy/prepare-workspace.sh"
    run = lambda: subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=300)  # noqa: E731

    r = run()
    assert r.returncode == 0, r.stderr
    assert f"cloned {origin}" in r.stdout and (ws / "dvc.yaml").is_file()
    assert "cloud" in (ws / ".dvc/config.local").read_text()
    remotes = subprocess.run(["dvc", "remote", "list"], cwd=ws, env=env, capture_output=True, text=True).stdout
    assert f"cloud {tmp_path / 'bucket'}" in " ".join(remotes.split()), remotes
    default = subprocess.run(["dvc", "remote", "default"], cwd=ws, env=env, capture_output=True, text=True)
    assert default.stdout.strip() == "cloud"

    (origin / "NEW").write_text("x")  # a new commit upstream is pulled ...
    git("-c", "user.email=t@t", "-c", "user.name=t", "add", "-A")
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "-m", "two")
    r = run()
    assert r.returncode == 0 and (ws / "NEW").is_file(), r.stderr
    (ws / "dvc.yaml").write_text((ws / "dvc.yaml").read_text() + "\n# applied promotion\n")
    (origin / "NEWER").write_text("y")  # ... but not over uncommitted changes
    git("-c", "user.email=t@t", "-c", "user.name=t", "add", "-A")
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "-m", "three")
    r = run()
    assert r.returncode == 0 and "uncommitted changes" in r.stdout and not (ws / "NEWER").exists()
    assert (ws / "dvc.yaml").read_text().endswith("# applied promotion\n")


def test_prepare_workspace_names_the_missing_git_url(tmp_path):
    env = {**os.environ, "DCGAN_WORKSPACE": str(tmp_path / "ws")}
    env.pop("DCGAN_GIT_URL", None)
    r = subprocess.run(["bash", str(REPO / "deploy/prepare-workspace.sh")], env=env, capture_output=True, text=True)
    assert r.returncode != 0 and "DCGAN_GIT_URL" in r.stderr

