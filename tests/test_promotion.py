"""Promotion on real git, DVC and GTO, without a GAN: a one-stage DVC project whose "model" is
its params, a bare git remote and a DVC remote. It applies the commit the gate scored (never a
name), and at every step either completes or leaves the repository as it was; a crash at any
step is finished or undone by the next run (recover)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dcgan.app import retrain as rt
from tests.conftest import venv_env

STAGE = """\
import json, os, sys, yaml
p = yaml.safe_load(open("params.yaml"))
if isinstance(p["train"]["lr"], (int, float)) and p["train"]["lr"] < 0:
    sys.exit(print("error: train.lr must be > 0") or 2)  # a user error, as the stages report one
os.makedirs("models/gan", exist_ok=True)
open("models/gan/w.txt", "w").write(str(p["train"]["lr"]))
os.makedirs("reports", exist_ok=True)
json.dump({"fid": float(p["train"]["lr"])}, open("reports/metrics.json", "w"))
"""
DVC_YAML = {
    "stages": {"train": {"cmd": "python make_model.py", "deps": ["make_model.py"], "params": ["train.lr"],
                         "outs": ["models/gan"], "metrics": [{"reports/metrics.json": {"cache": False}}]}},
    "artifacts": {"generator": {"path": "models/gan", "type": "model"}},
}
# reports/metrics.json's FIDs 3 -> 2 (its first n samples); 4 -> 3 on all samples, where the gain was measured
COMPARISON = rt.Comparison("fid", "lower", 3.0, 2.0, 1.0, 0.0, True, "better", "paired bootstrap", 0.5, 1.5, 0.01,
                           on_gain_samples=(4.0, 3.0))


def sh(root: Path, *cmd: str, check: bool = True) -> str:
    res = subprocess.run(list(cmd), cwd=root, env=venv_env(), capture_output=True, text=True)
    if check and res.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)}: {res.stdout}{res.stderr}")
    return res.stdout.strip()


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """repo/ (main: lr 1, repro'd and pushed; experiment `clash` with lr 9 on top), origin.git/,
    store/ (DVC remote), all with relative paths so a copy of the folder is a world of its own.
    A tag and a branch named like the experiment, and the experiment named like a short hash,
    point at a side commit with lr 5."""
    top = tmp_path_factory.mktemp("promotion")
    root = top / "repo"
    root.mkdir()
    sh(top, "git", "init", "-q", "--bare", "-b", "main", "origin.git")
    (root / "make_model.py").write_text(STAGE)
    (root / "dvc.yaml").write_text(yaml.safe_dump(DVC_YAML, sort_keys=False))
    (root / "params.yaml").write_text("train:\n  lr: 1\n")
    for cmd in (["git", "init", "-q", "-b", "main"], ["git", "config", "user.email", "t@t"],
                ["git", "config", "user.name", "t"], ["dvc", "init", "-q"], ["dvc", "config", "core.analytics", "false"],
                ["git", "remote", "add", "origin", "../origin.git"], ["dvc", "remote", "add", "-d", "store", "../../store"],
                ["dvc", "repro", "-q"], ["git", "add", "-A"], ["git", "commit", "-q", "-m", "lr 1"],
                ["dvc", "push", "-q"], ["git", "push", "-q", "origin", "main"]):
        sh(root, *cmd)
    (root / "params.yaml").write_text("train:\n  lr: 5\n")
    sh(root, "git", "commit", "-q", "-am", "side: lr 5")
    side = sh(root, "git", "rev-parse", "HEAD")
    sh(root, "git", "reset", "-q", "--hard", "HEAD~1")
    name = side[:7]
    sh(root, "git", "tag", name, side)
    sh(root, "git", "branch", name, side)
    sh(root, "dvc", "exp", "run", "-q", "--temp", "-n", name, "-S", "train.lr=9")
    return top


@pytest.fixture
def world(template, tmp_path) -> Path:
    shutil.copytree(template, tmp_path / "w", symlinks=True)
    return tmp_path / "w"


def state(root: Path) -> dict:
    """What a promotion may change: branch head, tags, workspace files, models, the remote."""
    return {"head": sh(root, "git", "rev-parse", "HEAD"), "tags": sh(root, "git", "tag"),
            "status": sh(root, "git", "status", "--porcelain"), "params": (root / "params.yaml").read_text(),
            "model": (root / "models/gan/w.txt").read_text(), "remote": sh(root, "git", "ls-remote", "../origin.git"),
            "journal": (root / rt.JOURNAL).exists()}


def experiment(root: Path) -> tuple[str, str]:
    name = sh(root, "git", "tag", "--list", "???????").split()[0]
    return name, rt.experiment_rev(root, name)


def test_the_gated_commit_is_promoted_not_a_tag_branch_or_short_hash_of_its_name(world):
    root = world / "repo"
    name, rev = experiment(root)
    # the control: the experiment's name, handed to DVC, is the side commit's tag (lr 5)
    sh(root, "dvc", "exp", "apply", name)
    assert "lr: 5" in (root / "params.yaml").read_text()
    sh(root, "git", "checkout", "-q", "--", "."), sh(root, "dvc", "checkout", "-q", "--force")

    promotion = rt.promote(root, name, rev, COMPARISON, print)
    assert yaml.safe_load(sh(root, "git", "show", "HEAD:params.yaml"))["train"]["lr"] == 9
    assert (root / "models/gan/w.txt").read_text() == "9"
    assert sh(root, "git", "diff", "--name-only", rev, "HEAD") == ""  # the experiment's tree, exactly
    assert sh(root, "git", "rev-parse", "HEAD~1") == sh(root, "git", "rev-parse", "main@{1}")
    assert (promotion.version_tag, promotion.stage_tag) == ("generator@v0.0.1", "generator#prod#1")
    remote = sh(root, "git", "ls-remote", "../origin.git")
    assert f"{promotion.commit}\trefs/heads/main" in remote and "refs/tags/generator#prod#1" in remote
    assert "fid 4 -> 3, gain +1" in sh(root, "git", "log", "-1", "--format=%s")  # the gain's own samples
    assert not (root / rt.JOURNAL).exists() and sh(root, "git", "status", "--porcelain") == ""


@pytest.mark.parametrize("step", range(1, len(rt.STEPS) + 1))
def test_a_fault_at_any_step_leaves_the_repository_as_it_was(world, step, monkeypatch):
    """An error before each step undoes what was done; one after the atomic push (the last)
    keeps the promotion, which the remote already holds."""
    root = world / "repo"
    name, rev = experiment(root)
    before = state(root)
    monkeypatch.setenv("DCGAN_FAULTS", f"promote_fault={step}")
    if step < len(rt.STEPS):
        with pytest.raises(rt.PromotionFailed, match=f"failed at step '{rt.STEPS[step - 1]}'.*undone"):
            rt.promote(root, name, rev, COMPARISON, print)
        assert state(root) == before
    else:
        with pytest.raises(RuntimeError, match="injected fault before 'done'"):
            rt.promote(root, name, rev, COMPARISON, print)
        after = state(root)
        assert "refs/tags/generator#prod#1" in after["remote"] and "generator#prod#1" in after["tags"]
        assert after["model"] == "9" and not after["journal"] and after["status"] == ""


KILLED = """\
import sys
from pathlib import Path
from dcgan.app import retrain as rt
c = rt.Comparison("fid", "lower", 3.0, 2.0, 1.0, 0.0, True, "better")
rt.promote(Path(sys.argv[1]), sys.argv[2], sys.argv[3], c, print)
"""


@pytest.mark.parametrize("step", range(1, len(rt.STEPS) + 1))
def test_a_crash_at_any_step_is_finished_or_undone_by_the_next_run(world, step):
    """SIGKILL (nothing runs after it) before each step, the last one after the atomic push:
    recover() undoes what a crash left before the push, and keeps what had landed."""
    root = world / "repo"
    name, rev = experiment(root)
    before = state(root)
    env = {**venv_env(), "DCGAN_FAULTS": f"promote_kill={step}"}
    res = subprocess.run([sys.executable, "-c", KILLED, str(root), name, rev], cwd=root, env=env,
                         capture_output=True, text=True)
    assert res.returncode == -9, res.stdout + res.stderr
    assert (root / rt.JOURNAL).exists()
    done = rt.recover(root, print)
    after = state(root)
    if step < len(rt.STEPS):
        assert done == "undone" and after == before
    else:
        assert done == "finished" and not after["journal"]
        assert "generator#prod#1" in after["tags"] and "refs/tags/generator#prod#1" in after["remote"]
        assert after["model"] == "9" and after["status"] == ""
    assert rt.recover(root, print) is None  # nothing left to do


def test_a_promotion_refuses_a_branch_that_moved_under_the_experiment(world):
    root = world / "repo"
    name, rev = experiment(root)
    sh(root, "git", "commit", "-q", "--allow-empty", "-m", "someone else's commit")
    before = state(root)
    with pytest.raises(rt.PromotionFailed, match="main moved while .* ran"):
        rt.promote(root, name, rev, COMPARISON, print)
    assert state(root) == before


def test_a_run_refuses_a_dirty_tree_and_names_the_files(world):
    root = world / "repo"
    rt.require_clean(root)
    (root / "make_model.py").write_text(STAGE + "# a local edit\n")
    with pytest.raises(rt.UserError, match=r"uncommitted changes to tracked files \(make_model.py\)"):
        rt.require_clean(root)
    assert "# a local edit" in (root / "make_model.py").read_text()


def test_data_left_out_of_a_run_is_named(world):
    root = world / "repo"
    (root / "data/raw").mkdir(parents=True)
    (root / "data/raw/a.png").write_bytes(b"x")
    sh(root, "dvc", "add", "-q", "data/raw")
    sh(root, "git", "add", "-A"), sh(root, "git", "commit", "-q", "-m", "data")
    assert rt.left_out_data(root) == []
    (root / "data/raw/b.png").write_bytes(b"y")
    (root / "data/new.csv").write_text("1\n")
    lines: list[str] = []
    assert rt.say_left_out(root, lines.append) == ["data/new.csv", "data/raw/b.png"]
    assert "leaves them out: data/new.csv, data/raw/b.png" in lines[0]


def test_the_champion_comes_from_the_remote_s_tags(world, tmp_path):
    """A clone without tags (a process worker that never fetched) still sees the prod version."""
    root = world / "repo"
    sh(root, "git", "tag", "generator@v0.0.1"), sh(root, "git", "tag", "generator#prod#1")
    sh(root, "git", "push", "-q", "origin", "--tags")
    clone = tmp_path / "clone"
    sh(world, "git", "clone", "-q", "--no-tags", "origin.git", str(clone))
    sh(clone, "git", "tag", "-d", *sh(clone, "git", "tag").split(), check=False)
    assert rt.stage_tag(clone, "prod") is None
    assert rt.fetch_tags(clone, print) == "origin"
    assert rt.stage_tag(clone, "prod") == "generator#prod#1" and rt.version_of(clone, "generator#prod#1") == "v0.0.1"
    sh(clone, "git", "remote", "set-url", "origin", str(tmp_path / "gone.git"))
    with pytest.raises(rt.UserError, match="tags of git remote origin cannot be fetched.*nothing was trained"):
        rt.fetch_tags(clone, print)
    way_out = rt.unscorable_way_out(clone, "generator#prod#1", "prod", "it makes 3x32x32 images")
    assert "gto deprecate generator v0.0.1 prod" in way_out and "--allow-first" in way_out
    sh(clone, "git", "tag", "generator@v0.0.10"), sh(clone, "git", "tag", "generator@v0.0.9")
    assert rt.version_of(clone, "generator#prod#1") == "v0.0.10"  # numeric order, not text order



SECRET = "s3cr3t-value-7f1c2e"


def test_an_override_is_a_value_never_an_interpolation(world, monkeypatch):
    """DVC reads ``-S`` values with Hydra's grammar, so ``${oc.env:...}`` would copy the worker's
    environment into params.yaml (the control below shows it does); check_inputs refuses such a
    value before DVC runs, in one line that holds neither the value nor the secret."""
    root = world / "repo"
    monkeypatch.setenv("DCGAN_TEST_SECRET", SECRET)
    res = subprocess.run(["dvc", "exp", "run", "--temp", "-n", "leak", "-S", "train.lr=${oc.env:DCGAN_TEST_SECRET}"],
                         cwd=root, env={**venv_env(), "DCGAN_TEST_SECRET": SECRET}, capture_output=True, text=True)
    assert SECRET in res.stdout + res.stderr  # the danger: the stage read it, and its error line shows it
    for value in ("${oc.env:DCGAN_TEST_SECRET}", "\\${x}", "choice(1,2)", "1,2", "[1]", "'x'", "a=b", "~x", "x*"):
        with pytest.raises(rt.UserError, match=r"^override train.lr: the value holds .*give a plain") as exc:
            rt.check_inputs({"train.lr": value}, "x", "fid")
        assert SECRET not in str(exc.value) and "oc.env" not in str(exc.value) and "\n" not in str(exc.value)
    for value in ("1e-3", "0.0002", "-1", "cpu", "cuda:0", "data/raw", "true", "my images", "a+b@c"):
        rt.check_inputs({"train.lr": value}, "x", "fid")


def test_an_experiment_s_outputs_are_linked_from_the_cache_not_copied(world, tmp_path):
    root = world / "repo"
    _, rev = experiment(root)
    rt.export_files(root, rev, ["models/gan", "params.yaml"], tmp_path / "linked", link=True)
    rt.export_files(root, rev, ["models/gan"], tmp_path / "copied")
    linked, copied = tmp_path / "linked/gan/w.txt", tmp_path / "copied/gan/w.txt"
    assert linked.read_text() == copied.read_text() == "9"
    assert linked.stat().st_nlink > 1 and copied.stat().st_nlink == 1  # the cache file itself, read-only
    assert "lr: 9" in (tmp_path / "linked/params.yaml").read_text()  # a git file: fetched


def test_new_data_is_brought_in_and_committed_and_nothing_new_is_seen(world):
    """A watched folder (dvc add) gets the files dropped into it; nothing else changes."""
    root = world / "repo"
    name, rev = experiment(root)
    (root / "data/raw").mkdir(parents=True)
    (root / "data/raw/a.png").write_bytes(b"x")
    sh(root, "dvc", "add", "-q", "data/raw")
    sh(root, "git", "add", "-A"), sh(root, "git", "commit", "-q", "-m", "data")
    assert rt.data_sources(root) == [("data/raw.dvc", "add")]
    assert rt.refresh_data(root, print) == []  # nothing arrived: no commit
    head = sh(root, "git", "rev-parse", "HEAD")
    (root / "data/raw/b.png").write_bytes(b"y")
    assert rt.refresh_data(root, print) == ["data/raw.dvc"]
    assert sh(root, "git", "rev-parse", "HEAD~1") == head and sh(root, "git", "status", "--porcelain") == ""
    assert "data/raw.dvc" in sh(root, "git", "show", "--name-only", "--format=%s", "HEAD")
    assert rt.nothing_new_since(root, "prod", {}) is None  # no champion yet

    # a champion on HEAD: the same inputs again are nothing new; an override or new data are
    sh(root, "git", "tag", "generator@v0.0.1"), sh(root, "git", "tag", "generator#prod#1")
    said = rt.nothing_new_since(root, "prod", {})
    assert said.startswith("nothing new since v0.0.1 (generator#prod#1, commit ") and "nothing was trained" in said
    assert rt.nothing_new_since(root, "prod", {"train.lr": "1"}) is not None  # the value it holds
    assert rt.nothing_new_since(root, "prod", {"train.lr": "2"}) is None
    assert rt.nothing_new_since(root, "prod", {"train.lr": "1.0"}) is not None  # the same number
    (root / "data/raw/c.png").write_bytes(b"z")
    rt.refresh_data(root, print)
    assert rt.nothing_new_since(root, "prod", {}) is None


def test_a_champion_that_cannot_be_rescored_or_runs_out_of_time_is_one_line(world, tmp_path):
    from dcgan.app.retrain.rescore import run_stage

    root = world / "repo"
    _, rev = experiment(root)
    sh(root, "git", "tag", "generator#prod#1")  # a champion whose models/gan holds no model.json
    with pytest.raises(rt.Unscorable, match=r"^the champion generator#prod#1 \(\w{12}\) has no readable "
                                            r"models/gan/model.json \(FileNotFoundError"):
        rt.score_champion(root, rev, "generator#prod#1", tmp_path / "out", print)
    with pytest.raises(rt.UserError, match=r"^re-scoring the champion: its sample stage ran past the 0.01 s limit"):
        run_stage(root, "sample", ["--help"], print, timeout=0.01)


def test_a_failed_experiment_is_retried_only_when_it_was_not_a_user_error(world):
    """A stage's user error (exit 2, an ``error:`` line) fails the same way again; a crash (a
    traceback, a kill) is worth the train task's retry."""
    root = world / "repo"
    with pytest.raises(rt.StageFailed, match="error: train.lr must be > 0") as user:
        rt.run_experiment(root, "negative", {"train.lr": "-1"}, print)
    assert not user.value.retryable
    with pytest.raises(rt.StageFailed, match="exited with 1") as crash:
        rt.run_experiment(root, "crash", {"train.lr": "abc"}, print)
    assert crash.value.retryable


def test_an_override_of_the_value_the_champion_holds_is_nothing_new(world):
    """DVC writes -S train.lr=0.000001 into params.yaml as 1e-06, which YAML 1.1 reads as a string:
    the same number all the same."""
    root = world / "repo"
    (root / "params.yaml").write_text("train:\n  lr: 1e-06\n")
    sh(root, "git", "commit", "-q", "-am", "lr as DVC writes it")
    head = sh(root, "git", "rev-parse", "HEAD")
    assert rt.nothing_new(root, head, {"train.lr": "0.000001"}) and rt.nothing_new(root, head, {})
    assert not rt.nothing_new(root, head, {"train.lr": "0.00001"})
    assert not rt.nothing_new(root, head, {"train.seed": "1"})  # a key the champion's params lack
