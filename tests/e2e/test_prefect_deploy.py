"""`prefect deploy` of the container deployments against a real (ephemeral) Prefect server:
work pools created from the shipped templates, deployments created from prefect.yaml with the
deploying shell's variables, and a bad job variable refused by the server."""

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ENV, REPO, pool_template, venv_env

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def prefect_env(prefect_server):
    from prefect.settings import PREFECT_API_URL

    env = {**venv_env(), **ENV, "PREFECT_API_URL": PREFECT_API_URL.value()}
    prefect = str(Path(sys.executable).parent / "prefect")
    for pool, extra in (("dcgan-k8s", ["--type", "kubernetes", "--base-job-template",
                                       str(REPO / "deploy/k8s-base-job-template.json")]),
                        ("dcgan-docker", ["--type", "docker"])):
        r = subprocess.run([prefect, "work-pool", "create", pool, *extra], env=env,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
    return env, prefect


def deploy(env, prefect, cwd: Path, *names: str) -> subprocess.CompletedProcess:
    args = [a for n in names for a in ("-n", n)]
    return subprocess.run([prefect, "--no-prompt", "deploy", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_container_deployments_deploy_with_the_shells_variables(prefect_env, tmp_path):
    env, prefect = prefect_env
    before = (REPO / "prefect.yaml").read_bytes()
    r = deploy(env, prefect, REPO, "weekly-retrain-docker", "weekly-retrain-k8s")
    assert r.returncode == 0, r.stdout + r.stderr
    assert (REPO / "prefect.yaml").read_bytes() == before  # deploying rewrote nothing
    shown = {}
    for name in ("weekly-retrain-docker", "weekly-retrain-k8s"):
        r = subprocess.run([prefect, "deployment", "inspect", f"dcgan-retrain/{name}", "--output", "json"],
                           env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        shown[name] = json.loads(r.stdout)
    k8s, docker = shown["weekly-retrain-k8s"], shown["weekly-retrain-docker"]
    assert k8s["work_pool_name"] == "dcgan-k8s" and docker["work_pool_name"] == "dcgan-docker"
    for d in (k8s, docker):
        jv = d["job_variables"]
        assert jv["image"] == ENV["DCGAN_IMAGE"]
        assert jv["env"]["DCGAN_GIT_URL"] == ENV["DCGAN_GIT_URL"]
        assert jv["env"]["DCGAN_DVC_REMOTE"] == ENV["DCGAN_DVC_REMOTE"]
        assert d["pull_steps"][1] == {"prefect.deployments.steps.set_working_directory":
                                      {"directory": "/workspace/dcgan"}}
        assert d["schedules"][0]["schedule"]["cron"] == "0 3 * * 1"
    assert k8s["job_variables"]["gpu_count"] == 1
    assert docker["job_variables"]["container_create_kwargs"]["device_requests"][0]["count"] == 1

    # what a worker of each pool starts for a flow run of the deployment
    docker_cfg = render("dcgan-docker", docker["job_variables"])
    k8s_cfg = render("dcgan-k8s", k8s["job_variables"])
    check_docker_container(docker_cfg)
    check_k8s_job(k8s_cfg)


def render(pool: str, job_variables: dict):
    """The worker's job configuration from the pool's template and the deployment's variables."""
    worker, template = pool_template(pool)
    return asyncio.run(worker.job_configuration.from_template_and_values(template, job_variables))


def check_docker_container(config) -> None:
    import docker.types

    assert config.image == ENV["DCGAN_IMAGE"]
    assert config.volumes == ["dcgan-workspace:/workspace"]  # a named volume outlives the container
    assert config.env["DCGAN_GIT_URL"] == ENV["DCGAN_GIT_URL"]
    kwargs = config.container_create_kwargs
    # docker-py (what the worker calls) turns them into the engine's HostConfig: `--gpus 1`
    host = docker.types.HostConfig(version="1.44", device_requests=kwargs["device_requests"],
                                   shm_size=kwargs["shm_size"])
    assert host["DeviceRequests"] == [{"Driver": "nvidia", "Count": 1, "DeviceIDs": [],
                                       "Capabilities": [["gpu"]], "Options": {}}]


def check_k8s_job(config) -> None:
    spec = config.job_manifest["spec"]["template"]["spec"]
    container = spec["containers"][0]
    assert container["image"] == ENV["DCGAN_IMAGE"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container["resources"]["requests"] == {"cpu": "4", "memory": "16Gi"}
    assert {"name": "workspace", "mountPath": "/workspace"} in container["volumeMounts"]
    claim = next(v for v in spec["volumes"] if v["name"] == "workspace")
    assert claim["persistentVolumeClaim"]["claimName"] == "dcgan-workspace"
    assert config.env["DCGAN_DVC_REMOTE"] == ENV["DCGAN_DVC_REMOTE"]
    assert config.env["PREFECT_RESULTS_LOCAL_STORAGE_PATH"] == "/workspace/prefect-results"


def test_a_job_variable_the_pool_does_not_accept_is_refused(prefect_env, tmp_path):
    env, prefect = prefect_env
    shutil.copytree(REPO / "flows", tmp_path / "flows", ignore=shutil.ignore_patterns("__pycache__"))
    raw = yaml.safe_load((REPO / "prefect.yaml").read_text())
    dep = next(d for d in raw["deployments"] if d["name"] == "weekly-retrain-k8s")
    dep["name"] = "broken-k8s"
    dep["work_pool"]["job_variables"]["gpu_count"] = "two"
    raw["deployments"] = [dep]
    (tmp_path / "prefect.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    r = deploy(env, prefect, tmp_path, "broken-k8s")
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "gpu_count" in out, out
