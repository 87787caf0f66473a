"""Shared fixtures and helpers (test modules import from here, never from each other): the
shipped params with tiny overrides, a place to run stages, the tiny digits set, weight digests,
and prefect.yaml's deployments with their pools' job templates."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import inspect
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

# Under pytest-xdist (`make test` runs one worker per core) the workers, and every process they
# start, still compute on every core, as the stages do, but their OpenMP threads sleep when idle
# instead of spinning: two workers whose threads spin on the same two cores doubled the CPU time
# (9:53 for the suite against 6:19 with this, on 2 Sapphire Rapids cores). The wait policy changes
# no number, only how a thread waits for work.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"

import torch  # noqa: E402  (after the wait policy: OpenMP reads it when torch loads)
import yaml  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

# Seconds, not minutes: 16x16 digits, narrow nets, one epoch.
TINY = {
    "prepare": {"image_size": 16, "max_images": 300},
    "augment": {"copies": 1},
    "evaluator": {"epochs": 2, "width": 8, "feature_dim": 8, "batch_size": 64, "feature_batch_size": 50},
    "train": {"epochs": 1, "batch_size": 32, "g_width": 8, "d_width": 8, "latent_dim": 16,
              "log_every": 2, "checkpoint_every": 3, "sample_grid": 16, "eval_every": 1,
              "eval_samples": 40,
              # colour data's recipe trains on >= 327,680 images (train.min_images auto): the tests train
              # the epochs they ask for; the auto path has its own stage test
              "min_images": 0,
              # the number format is pinned: `auto` would be bf16 on CPUs with AVX-512 BF16 and
              # fp32 elsewhere; its resolution has tests of its own (test_precision.py)
              "precision": "fp32"},
    "sample": {"num_samples": 100, "batch_size": 50, "grid_size": 16},
    "evaluate": {"batch_size": 50, "is_splits": 5, "kid_subsets": 10, "kid_subset_size": 20,
                 "recon_images": 8, "recon_steps": 10, "recon_restarts": 2},
}


def shipped_params() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


def merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for section, values in over.items():
        out.setdefault(section, {}).update(values)
    return out


def tiny_params(**sections: dict) -> dict:
    """Shipped params + TINY + per-test section overrides (``train={"lr": 1e-3}``)."""
    return merge(merge(shipped_params(), TINY), sections)


def write_params(path: Path, params: dict) -> Path:
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary working directory holding a tiny params.yaml."""
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path / "params.yaml", tiny_params())
    return tmp_path


def venv_env() -> dict[str, str]:
    """Environment whose PATH finds this interpreter's python/dvc first (as `make` sets it)."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["DVC_NO_ANALYTICS"] = "1"
    return env


def ctrl_c_default() -> None:
    """``preexec_fn`` for a child a test stops with SIGINT, as Ctrl-C would: a shell that starts the
    suite in the background (``make test &``) ignores SIGINT in everything it starts, and a Python
    started with SIGINT ignored never raises KeyboardInterrupt, so the test would see a child that
    cannot be interrupted at a terminal it never had."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


# --- training on the tiny digits set ------------------------------------------------------

CPU = torch.device("cpu")


@pytest.fixture(scope="session")
def data() -> np.ndarray:
    """160 digits at 16x16, uint8 (N, 1, 16, 16)."""
    from tests.helpers import load_dataset

    return load_dataset("digits", ".", 16, 1, max_images=160).images


def tparams(**over):
    """The tiny train params with overrides (``tparams(loss="hinge")``)."""
    from dcgan.app.params.whole import parse_params
    from dcgan.app.recipe import resolve_recipe

    # keys shipped as auto take the grey recipe, as the train stage resolves them for these digits
    return dataclasses.replace(resolve_recipe(parse_params(tiny_params()).train, "grey"), **over)


def setup(**train_over):
    """(train params, the 16x16 one-channel architecture) for the loop's tests."""
    from dcgan.networks.gan import GANConfig

    p = tparams(**train_over)
    return p, GANConfig(16, 1, p.latent_dim, p.g_width, p.d_width)


def digest(module: torch.nn.Module) -> str:
    """sha256 of a module's state dict (names and bytes): equal only for identical weights."""
    h = hashlib.sha256()
    for k, v in sorted(module.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


class ScriptedFid:
    """Returns preset FIDs in order, remembering a digest of G at each call."""

    def __init__(self, values):
        self.values, self.digests = list(values), []

    def __call__(self, g):
        assert not g.training  # evaluated in eval mode
        self.digests.append(digest(g))
        return self.values.pop(0)


# --- prefect.yaml --------------------------------------------------------------------------


def load_deployments() -> tuple[dict, list]:
    from prefect.cli.deploy._models import PrefectYamlModel

    raw = yaml.safe_load((REPO / "prefect.yaml").read_text())
    PrefectYamlModel.model_validate(raw)  # Prefect's own schema for the file
    return raw, raw["deployments"]


def check_deployment(dep: dict) -> list[str]:
    """Problems with one deployment: entrypoint, schedules, parameters vs the flow signature."""
    from prefect.client.schemas.schedules import CronSchedule
    from prefect.flows import load_flow_from_entrypoint

    problems = []
    path, _, func = dep["entrypoint"].partition(":")
    flow = load_flow_from_entrypoint(f"{REPO / path}:{func}")
    accepted = set(inspect.signature(flow.fn).parameters)
    unknown = set(dep.get("parameters", {})) - accepted
    if unknown:
        problems.append(f"parameters not in {func}(): {sorted(unknown)}")
    try:
        flow.validate_parameters(dep.get("parameters", {}))
    except Exception as exc:  # noqa: BLE001 (reported as a problem)
        problems.append(f"parameters do not validate: {exc}")
    for sched in dep.get("schedules", []):
        try:
            CronSchedule(cron=sched["cron"], timezone=sched.get("timezone"))
        except Exception as exc:  # noqa: BLE001
            problems.append(f"bad cron {sched.get('cron')!r}: {exc}")
    return problems


ENV = {"DCGAN_IMAGE": "registry.example.com/dcgan:1.0", "DCGAN_GIT_URL": "https://git.example.com/dcgan.git",
       "DCGAN_DVC_REMOTE": "s3://bucket/dcgan"}


def k8s_template() -> dict:
    return json.loads((REPO / "deploy/k8s-base-job-template.json").read_text())


def pool_template(pool: str) -> tuple[type, dict]:
    from prefect_docker.worker import DockerWorker
    from prefect_kubernetes.worker import KubernetesWorker

    return {"dcgan-docker": (DockerWorker, DockerWorker.get_default_base_job_template()),
            "dcgan-k8s": (KubernetesWorker, k8s_template())}[pool]


# --- the training loop, called as the train stage calls it ---------------------------------


class StopAfter:
    """Callbacks that end the run after global step ``n`` (as an interruption would) and call
    ``each(step, nets)`` after every step."""

    def __init__(self, n: int | None = None, each=None):
        self.n, self.each = n, each

    def after_step(self, step, nets):
        if self.each is not None:
            self.each(step, nets)

    def should_stop(self, step):
        return self.n is not None and step >= self.n


def fit(p, cfg, images, ckpt_dir, fingerprint="fp", *, seed=0, device=CPU, stop_after=None, on_step=None,
        batch_size=None, log=lambda m: None, **kw):
    """dcgan.training.loop.train with the train params ``p`` turned into its settings (as the
    train stage does; ``p.precision`` must be resolved, as the loop refuses ``auto``)."""
    from dcgan.app.recipe import make_run
    from dcgan.training.loop import train

    run = make_run(p, cfg, batch_size=batch_size or p.batch_size, precision=p.precision)
    return train(run=run, seed=seed, images=images, device=device, ckpt_dir=ckpt_dir,
                 fingerprint=fingerprint, callbacks=StopAfter(stop_after, on_step), log=log, **kw)


def frame(p, cfg, seed=0):
    """(Setup, fresh Nets, their GANObjective) for one step of the loop by hand."""
    from dcgan.app.recipe import make_run
    from dcgan.training.distributed import SINGLE
    from dcgan.training.loop import make_objective
    from dcgan.training.nets import build_nets
    from dcgan.training.settings import Setup

    s = Setup(make_run(p, cfg, batch_size=p.batch_size, precision=p.precision), seed, CPU, SINGLE)
    nets = build_nets(s)
    return s, nets, make_objective(s, nets)


def first_batch(s, data, bs):
    """Step 0's batch of epoch 0, as the loop makes it."""
    from dcgan.training.batches import TensorSource
    from dcgan.training.loop import epoch_order, make_batch

    return make_batch(s, TensorSource(torch.from_numpy(data)), epoch_order(s.seed, 0, len(data)), 0, 0, bs)


class Receiver:
    """A local HTTP endpoint (127.0.0.1) that keeps what is posted to it."""

    def __init__(self):
        import http.server
        import threading

        got = self.got = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"json://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


def wait_gone(pid: int, seconds: float, why: str) -> None:
    """Wait until process ``pid`` has ended (or is a zombie awaiting its parent); else kill it
    and fail the test with ``why``."""
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
                return
        except FileNotFoundError:
            return
        time.sleep(0.1)
    os.kill(pid, 9)
    pytest.fail(f"process {pid} {why}")
