"""The real retrain flow (Prefect test harness, ephemeral server) on a real DVC project with a
git remote and a DVC remote: promotion to a GTO version, fetching it by stage, refusal, failure."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from dcgan.app import retrain as rt
from tests.conftest import REPO, Receiver, ctrl_c_default, tiny_params
from tests.e2e.conftest import make_project

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
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], check=True)
    project.sh("git", "remote", "add", "origin", str(origin))
    project.dvc("remote", "add", "-d", "store", str(store))
    project.git_commit("remotes")
    project.sh("git", "push", "-q", "origin", "main")
    return origin, store


def digit_files(folder, start: int, stop: int) -> None:
    """scikit-learn's digits start..stop as 16x16 PNG files in class subfolders (an image folder
    dataset, as a user's data/raw would hold them)."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    bunch = load_digits()
    for i in range(start, stop):
        pixels = (bunch.images[i] * (255 / 16)).astype(np.uint8)
        path = folder / str(bunch.target[i]) / f"{i:04d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).resize((16, 16), Image.BILINEAR).save(path)


@pytest.fixture
def folder_project(tmp_path):
    """The tiny pipeline on an image folder of 300 digits, data/raw, tracked by DVC (dvc add): the
    folder the retrain flow watches for new images."""
    root = tmp_path / "project"
    root.mkdir()
    digit_files(root / "data/raw", 0, 300)
    project = make_project(root, tiny_params(prepare={"dataset": "folder", "root": "data/raw", "max_images": 0}))
    project.sh("git", "rm", "-r", "-q", "--cached", "data/raw")
    project.dvc("add", "-q", "data/raw")
    project.git_commit("data/raw tracked by DVC")
    return project


SECRET = "s3cr3t-7c0ffee-42"


def found_anywhere(root, text: str) -> list[str]:
    """Files under ``root`` (.git's objects unpacked: every commit's diff) that hold ``text``."""
    hits = [str(f) for f in root.rglob("*") if f.is_file() and text.encode() in f.read_bytes()]
    history = subprocess.run(["git", "log", "-p", "--all"], cwd=root, capture_output=True, text=True).stdout
    return hits + (["git log -p --all"] if text in history else [])


def run_processes(root) -> list[str]:
    """Processes (other than this one) that run in ``root`` or name it on their command line."""
    import os

    out = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(proc / "cwd")
            if (proc / "stat").read_text().split()[2] == "Z":
                continue
        except OSError:
            continue
        if str(root) in cmd or cwd.startswith(str(root)):
            out.append(f"{proc.name}: {cmd[:200]}")
    return out


def test_retrain_promotes_refuses_fails_and_queues(folder_project, harness, tmp_path, monkeypatch):
    retrain = load_flow()
    project = folder_project
    root = project.root
    origin, store = with_remotes(project, tmp_path)
    head0 = project.sh("git", "rev-parse", "HEAD").stdout.strip()
    hook = Receiver()
    monkeypatch.setenv("DCGAN_NOTIFY", hook.url)
    monkeypatch.setenv("DCGAN_TEST_SECRET", SECRET)

    # 1. another run holds the workspace: fail before anything starts
    with rt.workspace_lock(root, 0, lambda m: None):
        with pytest.raises(rt.WorkspaceBusy, match="another retrain run holds"):
            retrain(overrides={"train.lr": "0.001"}, name="blocked", workspace=str(root), lock_timeout=0.5)
    assert experiments(root) == [] and not (root / "reports/retrain").exists()

    # 2. an override that would read the worker's environment is refused, and the secret is nowhere
    state = retrain(overrides={"train.lr": "${oc.env:DCGAN_TEST_SECRET}"}, name="leak", workspace=str(root),
                    return_state=True)
    assert state.is_failed() and "interpolation or resolver" in state.message and SECRET not in state.message
    assert experiments(root) == [] and found_anywhere(root, SECRET) == []
    assert "Failed" in hook.got[-1]["title"] and SECRET not in json.dumps(hook.got)  # someone heard

    # 3. an uncommitted edit to a tracked source file: refused, named, and left as it was
    edited = root / "src/dcgan/app/stages/sample.py"
    edited.write_text(edited.read_text() + "# a local edit\n")
    with pytest.raises(rt.UserError, match=r"uncommitted changes to tracked files \(src/dcgan/app/stages/sample.py\)"):
        retrain(overrides={"train.lr": "0.001"}, name="dirty", workspace=str(root))
    assert edited.read_text().endswith("# a local edit\n") and experiments(root) == []
    project.sh("git", "checkout", "--", "src")

    # 4. no model yet: the first run is promoted, committed, versioned and pushed, though a tag
    #    and a branch are named like it (the gated commit is applied, not the name)
    project.sh("git", "tag", "first", head0)
    project.sh("git", "branch", "first", head0)
    result = retrain(overrides={"train.lr": "0.000001"}, name="first", workspace=str(root))
    assert result["promoted"] and "no baseline" in result["reason"], result
    assert "checked only against its own floors" in result["reason"], result
    assert (result["version_tag"], result["stage_tag"]) == ("generator@v0.0.1", "generator#prod#1")
    commit = project.sh("git", "rev-parse", "HEAD").stdout.strip()
    assert result["commit"] == commit and project.sh("git", "rev-parse", "HEAD~1").stdout.strip() == head0
    committed = set(project.sh("git", "show", "--name-only", "--format=", "HEAD").stdout.split())
    assert {"dvc.lock", "params.yaml", "reports/metrics.json"} <= committed and not any(
        c.startswith("src/") for c in committed)
    assert "Promote first" in project.sh("git", "log", "-1", "--format=%s").stdout
    assert project.sh("git", "status", "--porcelain", "--untracked-files=no").stdout.strip() == ""
    assert float(yaml.safe_load((root / "params.yaml").read_text())["train"]["lr"]) == 1e-06  # dvc writes 1e-06
    promoted_metrics = (root / "reports/metrics.json").read_bytes()
    shown = json.loads(project.sh("gto", "show", "--json").stdout)
    assert shown["generator"]["version"] == "v0.0.1" and shown["generator"]["stage"]["prod"] == "v0.0.1"
    remote_refs = project.sh("git", "ls-remote", str(origin)).stdout
    assert f"{commit}\trefs/heads/main" in remote_refs and "refs/tags/generator@v0.0.1" in remote_refs
    assert "refs/tags/generator#prod#1" in remote_refs and "refs/exps/" in remote_refs
    diff_md = artifact("dcgan-metrics-diff").data
    assert "Retrain `first`: promoted" in diff_md and "| **fid** |" in diff_md and "`train.lr=0.000001`" in diff_md
    table = artifact("dcgan-metrics").data
    assert "fid" in table and "floor" in table
    pictures = artifact("dcgan-samples").data
    assert "](data:image/png;base64," in pictures and "file://" not in pictures
    assert (root / "reports/retrain/first/samples.png").stat().st_size > 0
    assert hook.got[-1]["title"] == "dcgan retrain first: promoted generator@v0.0.1 to prod"

    # 5. a consumer fetches the prod model by name from the git remote alone, and samples it
    consumer = tmp_path / "consumer"
    consumer.mkdir()
    project.sh("dvc", "artifacts", "get", str(origin), "generator", "--stage", "prod",
               "-o", str(consumer / "gan"))
    assert (consumer / "gan/generator_best.safetensors").read_bytes() == \
        (root / "models/gan/generator_best.safetensors").read_bytes()
    out = project.sh("dcgan", "sample", "--model", str(consumer / "gan"), "-n", "16",
                     "-o", str(consumer / "grid.png"))
    assert (consumer / "grid.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", out.stdout

    # 6. the schedule fires again with nothing new: it says so and trains nothing
    same = retrain(overrides={"train.lr": "0.000001"}, name="again", workspace=str(root))
    assert not same["promoted"] and same["reason"].startswith("nothing new since v0.0.1"), same
    assert "again" not in experiments(root) and project.sh("git", "rev-parse", "HEAD").stdout.strip() == commit

    # 7. a failing stage fails the flow run with the stage's own message; nothing is touched
    state = retrain(overrides={"train.lr": "-1"}, name="broken", workspace=str(root), return_state=True)
    assert state.is_failed()
    with pytest.raises(rt.StageFailed, match=r"error: train.lr must be > 0") as failed:
        state.result()
    assert not failed.value.retryable  # a user error: the train task does not try it again
    assert tags(root) == ["first", "generator#prod#1", "generator@v0.0.1"]
    assert (root / "reports/metrics.json").read_bytes() == promoted_metrics
    assert project.sh("git", "rev-parse", "HEAD").stdout.strip() == commit
    assert "first" in experiments(root)
    assert hook.got[-1]["title"] == "dcgan retrain broken: Failed" and "train.lr must be > 0" in hook.got[-1]["message"]

    # 8. 60 new images are dropped into the watched folder, nothing else, and this clone has lost
    #    its GTO tags. A retrain with another training seed and device brings the images in (dvc
    #    add, committed) and trains; Ctrl-C during training stops it with everything it started
    digit_files(root / "data/raw", 300, 360)
    project.sh("git", "tag", "-d", "generator@v0.0.1", "generator#prod#1")
    from prefect.settings import PREFECT_API_URL

    over = {"train.lr": "0.002", "train.epochs": "4", "base.seed": "1", "base.device": "cpu"}
    env = {**project.env, "PREFECT_API_URL": PREFECT_API_URL.value(), "PYTHONUNBUFFERED": "1"}
    flow = subprocess.Popen([sys.executable, str(REPO / "flows/retrain.py"), "--workspace", str(root),
                             *(a for k, v in over.items() for a in ("-S", f"{k}={v}")), "--name", "refreshed"],
                            cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=ctrl_c_default)
    kept = root / rt.CHECKPOINT_STORE
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and flow.poll() is None and not list(kept.glob("*/ckpt-*.pt")):
        time.sleep(0.02)
    assert flow.poll() is None, "the run ended before the test could interrupt its training"
    flow.send_signal(signal.SIGINT)  # what Ctrl-C at the terminal sends
    assert flow.wait(120) != 0
    assert run_processes(root) == []
    with rt.workspace_lock(root, 0, lambda m: None):
        pass  # the next run starts cleanly
    [ckpt_dir] = list(kept.iterdir())
    assert "data/raw.dvc" in project.sh("git", "show", "--name-only", "--format=", "HEAD").stdout  # brought in

    #    ... the next attempt resumes from the kept checkpoints (not from step 0). The champion is
    #    the remote's prod version; it is re-scored by the candidate's instrument (issue 38: the new
    #    data's reference, the candidate's seed-1 latents; compared, not refused), the paired test
    #    runs on all samples of both, jointly, and the better model is promoted
    better = retrain(overrides=over, name="refreshed", workspace=str(root))
    assert better["promoted"] and better["version_tag"] == "generator@v0.0.2", better
    assert better["reason"].startswith("champion generator#prod#1 re-scored by the candidate's instrument"), better
    assert better["test"] == "paired bootstrap, 500 resamples, 100 samples a side, the same latents", better
    assert better["p_value"] < 0.05 and "measured differently" not in better["reason"], better
    assert not ckpt_dir.exists()  # handed over to the experiment's checkpoints/train
    live = json.loads(project.sh("git", "show", f"{better['experiment_rev']}:dvclive/metrics.json").stdout)
    assert "images_per_s" not in live["train"], live  # logged by runs that did not resume only
    champion_then = json.loads((root / "reports/retrain/refreshed/champion/metrics.json").read_text())
    assert better["baseline"] == champion_then["fid"] != json.loads(promoted_metrics)["fid"]
    assert champion_then["protocol.reference_id"] != json.loads(promoted_metrics)["protocol.reference_id"]
    assert champion_then["protocol.reference_id"] == project.metrics()["protocol.reference_id"]  # one reference
    assert champion_then["protocol.n_reference"] > json.loads(promoted_metrics)["protocol.n_reference"]
    assert artifact("dcgan-samples").data.count("](data:image/png;base64,") == 2  # champion and candidate
    assert tags(root) == ["first", "generator#prod#1", "generator#prod#2", "generator@v0.0.1", "generator@v0.0.2"]
    hook.close()
