"""The retrain flow's pieces without a pipeline run: the gate, inputs, lock, deployment file."""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path

import pytest
import yaml

from dcgan.app import retrain as rt
from dcgan.app import review
from dcgan.core.errors import UserError
from dcgan.metrics.registry import direction, gate_keys, ranked_keys
from tests.conftest import REPO, check_deployment, load_deployments, wait_gone

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 16


def diff_of(metric: str, old, new, se=(0.05, 0.05), **protocol) -> dict:
    """A scripted metrics diff: the metric, its standard errors, and protocol keys (old, new)."""
    d = {metric: {"old": old, "new": new, "diff": None}}
    if se is not None:
        d[f"{metric}_se"] = {"old": se[0], "new": se[1], "diff": None}
    for key, (a, b) in protocol.items():
        d[f"protocol.{key}"] = {"old": a, "new": b, "diff": None}
    return d


@pytest.mark.parametrize(("metric", "old", "new", "margin", "promote"), [
    ("fid", 3.0, 2.5, 0.0, True),       # lower is better; 0.5 is 7 standard errors of the difference
    ("fid", 3.0, 3.5, 0.0, False),
    ("fid", 3.0, 2.9, 0.0, False),      # better, but 0.1 is 1.4 standard errors: noise can do that
    ("fid", 3.0, 2.7, 0.2, False),      # beyond the margin by 0.1 only: not shown
    ("fid", 3.0, 2.5, 0.2, True),
    ("fid", 3.0, 3.0, 0.0, False),      # equal is not an improvement
    ("is_mean", 4.0, 4.5, 0.0, True),   # higher is better
    ("is_mean", 4.0, 3.5, 0.0, False),
    ("recall", 0.9, 0.95, 0.0, False),  # 0.05 against standard errors of 0.05: not shown
])
def test_decide_follows_direction_margin_and_noise(metric, old, new, margin, promote):
    c = rt.decide(diff_of(metric, old, new), metric, margin)
    assert c.promote is promote, c.reason
    expected = (old - new) if direction(metric) == "lower" else (new - old)
    assert c.improvement == pytest.approx(expected)
    assert c.test == "independent standard errors" and c.low < c.improvement < c.high


def test_decide_at_the_threshold_of_a_one_sided_test():
    """The gain must exceed z(0.95) = 1.645 standard errors of the difference: just above
    promotes, just below does not; alpha moves the threshold."""
    se = 0.1 / math.sqrt(2)  # the difference's standard error is then 0.1
    assert rt.decide(diff_of("fid", 3.0, 3.0 - 0.166, (se, se)), "fid", 0.0).promote
    assert not rt.decide(diff_of("fid", 3.0, 3.0 - 0.163, (se, se)), "fid", 0.0).promote
    assert rt.decide(diff_of("fid", 3.0, 3.0 - 0.13, (se, se)), "fid", 0.0, alpha=0.1).promote


def test_decide_without_an_uncertainty_does_not_promote():
    c = rt.decide(diff_of("fid", 3.0, 1.0, se=None), "fid", 0.0)
    assert not c.promote and "no uncertainty (fid_se)" in c.reason


def test_decide_uses_the_paired_test_when_given():
    diff = diff_of("fid", 3.0, 2.9, se=(1.0, 1.0))  # the standard errors alone would refuse
    shown = rt.PairedGain(0.1, 0.04, 0.16, 0.01, 500)
    c = rt.decide(diff, "fid", 0.0, shown)
    assert c.promote and c.p_value == 0.01 and c.test.startswith("paired bootstrap") and "p = 0.01" in c.reason
    assert not rt.decide(diff, "fid", 0.0, rt.PairedGain(0.1, -0.02, 0.2, 0.09, 500)).promote
    on_all = rt.decide(diff, "fid", 0.0, rt.PairedGain(0.1, 0.04, 0.16, 0.01, 500, 2000, True, 3.2, 3.1))
    assert on_all.on_gain_samples == (3.2, 3.1) and "on all 2000 samples: fid 3.2 -> 3.1, gain +0.1" in on_all.reason


@pytest.mark.parametrize("key", ["extractor_id", "n_samples", "bootstrap", "reference_id", "resize", "metric_code"])
def test_a_protocol_mismatch_never_yields_a_comparison(key):
    diff = diff_of("fid", 30.0, 1.0, **{key: ("a", "b"), "n_reference": (100, 100)})
    c = rt.decide(diff, "fid", 0.0, rt.PairedGain(29.0, 28.0, 30.0, 0.001, 500))
    assert not c.promote and c.improvement is None and c.mismatch == [f"protocol.{key}: 'a' -> 'b'"]
    assert c.reason.startswith("not compared: the runs were measured differently") and "30" not in c.reason
    missing = diff_of("fid", 30.0, 1.0, **{key: (None, "b")})  # a key only one run has
    assert not rt.decide(missing, "fid", 0.0).promote


def test_the_model_s_own_protocol_keys_may_differ():
    diff = diff_of("fid", 3.0, 2.0, generator=("best", "last"), drs=(0, 1), train_precision=("fp32", "bf16"),
                   train_compile=("none", "graph"), n_samples=(359, 359))
    assert rt.decide(diff, "fid", 0.0).promote


def test_decide_never_promotes_a_missing_or_non_finite_value():
    assert not rt.decide(diff_of("fid", 3.0, None), "fid", -1e9).promote
    assert not rt.decide(diff_of("fid", 3.0, math.nan), "fid", -1e9).promote
    assert not rt.decide({}, "fid", -1e9).promote
    first = rt.decide(diff_of("fid", None, 3.0, extractor_id=(None, "c")), "fid", 0.0, champion=False)
    assert first.promote and "no baseline" in first.reason


@pytest.mark.parametrize("old", [None, math.nan])
def test_a_champion_without_the_metric_is_not_outscored_by_default(old):
    """Issue 38: with a promoted model, the protocol is checked first and a baseline that lacks
    the metric (never evaluated with it, or NaN) is not compared; only with no promoted model
    does the first run promote unmeasured."""
    c = rt.decide(diff_of("kid_mean", old, 0.01, n_samples=(359, 359)), "kid_mean", 0.0)
    assert not c.promote and "promoted model has no finite kid_mean" in c.reason
    moved = rt.decide(diff_of("kid_mean", old, 0.01, extractor_id=("a", "b")), "kid_mean", 0.0)
    assert not moved.promote and moved.mismatch == ["protocol.extractor_id: 'a' -> 'b'"]
    assert rt.decide(diff_of("kid_mean", old, 0.01), "kid_mean", 0.0, champion=False).promote


def test_the_gate_refuses_at_start_what_could_never_promote():
    rt.check_inputs({}, "x", "fid", alpha=0.05, resamples=40)  # p can reach 1/41 < 0.05
    with pytest.raises(UserError, match=r"gate_resamples 500 cannot show p < alpha 0.001: .* use at least 2000"):
        rt.check_inputs({}, "x", "fid", alpha=0.001, resamples=500)
    rt.check_inputs({}, "x", "is_mean", alpha=0.001, resamples=500)  # no resampling test for IS
    for metric in ("precision", "recall", "recon_psnr"):
        with pytest.raises(UserError, match=f"metric {metric} has no standard error"):
            rt.check_inputs({}, "x", metric)


def test_check_inputs_names_the_problem():
    rt.check_inputs({"train.lr": "1e-3"}, "retrain-1", "fid")
    with pytest.raises(UserError, match="metric must be one of"):
        rt.check_inputs({}, "x", "accuracy")
    with pytest.raises(UserError, match="override 'lr' must look like section.key"):
        rt.check_inputs({"lr": "1"}, "x", "fid")
    with pytest.raises(UserError, match="experiment name"):
        rt.check_inputs({}, "bad name/with slash", "fid")
    with pytest.raises(UserError, match="min_improvement must be a finite number >= 0"):
        rt.check_inputs({}, "x", "fid", min_improvement=-0.1)
    with pytest.raises(UserError, match="stage 'Prod!' must be lower-case"):
        rt.check_inputs({}, "x", "fid", stage="Prod!")


def test_the_gate_ranks_exactly_the_registry_keys():
    # every ranked key is a number the evaluate stage writes, with the floor beside it
    metrics = yaml.safe_load((REPO / "reports/metrics.json").read_text())
    for key in ranked_keys():
        assert key in metrics and f"{key}_floor" in metrics, key
    assert direction("fid") == "lower" and direction("is_mean") == "higher"
    with pytest.raises(KeyError):
        direction("is_std")  # a spread, not ranked


def test_flow_parameters_are_validated_against_the_registry():
    import sys

    sys.path.insert(0, str(REPO / "flows"))
    try:
        from retrain import retrain
    finally:
        sys.path.remove(str(REPO / "flows"))
    schema = retrain.parameters.model_dump()["properties"]
    assert schema["metric"]["enum"] == list(gate_keys()) and {"fid", "is_mean", "kid_mean"} <= set(gate_keys())
    assert schema["min_improvement"]["minimum"] == 0
    assert schema["experiment_timeout"]["exclusiveMinimum"] == 0
    retrain.validate_parameters({"metric": "kid_mean", "min_improvement": 0.5})
    for bad in ({"metric": "accuracy"}, {"metric": "recall"}, {"min_improvement": -1.0}, {"experiment_timeout": 0}):
        with pytest.raises(Exception, match="invalid parameters"):
            retrain.validate_parameters(bad)


def test_failure_message_prefers_the_stage_error_line():
    lines = ["Running stage 'train':", "error: train.lr must be > 0, got -1.0",
             "ERROR: failed to reproduce 'train': failed to run: python -m ..., exited with 2"]
    assert rt.failure_message(lines) == "error: train.lr must be > 0, got -1.0"
    assert rt.failure_message(lines[2:]).startswith("ERROR: failed to reproduce 'train'")


def test_the_flows_metrics_diff_is_the_review_page_with_the_gates_decision():
    diff = {"fid": {"old": 3.0, "new": 2.5, "diff": -0.5}, "fid_floor": {"old": 0.4, "new": 0.41, "diff": 0.01},
            "fid_se": {"old": 0.05, "new": 0.05, "diff": 0},
            "is_mean": {"old": 4.0, "new": 4.2, "diff": 0.2}, "protocol.n_samples": {"old": 9, "new": 9, "diff": 0}}
    c = rt.decide(diff, "fid", 0.0)
    md = review.retrain_page("exp1", {"train.lr": "1e-3"}, diff, c,
                             [review.Picture("champion", "c.png", PNG), review.Picture("candidate", "n.png", None)])
    assert md.startswith("# Retrain `exp1`: promoted\n\n**BETTER** on fid (the gated metric)")
    assert "| **fid** | 3 | 2.5 | -0.5 | 0.4 | 0.41 |" in md  # both floors beside the values
    assert "| is_mean | 4 | 4.2 | 0.2 | — | — |" in md
    assert "| fid (lower is better) | **better** | 3 | 2.5 | +0.5 |" in md  # the same test as the gate's
    assert "Gate: **promoted**" in md and "`train.lr=1e-3`" in md
    assert "![champion](data:image/png;base64," in md and "(candidate: no picture)" in md


def test_workspace_lock_queues_then_fails_clearly(tmp_path: Path):
    (tmp_path / ".dvc").mkdir()
    messages: list[str] = []
    with rt.workspace_lock(tmp_path, 0, messages.append):
        # a second holder gives up after its timeout, naming the holder
        with pytest.raises(rt.WorkspaceBusy, match=r"another retrain run holds .*retrain.lock \(pid \d+"):
            with rt.workspace_lock(tmp_path, 0.3, messages.append, poll=0.05):
                pass
    assert any("waiting for another retrain run" in m for m in messages)

    # a queued run starts as soon as the holder is done
    release = threading.Event()

    def hold():
        with rt.workspace_lock(tmp_path, 0, lambda m: None):
            release.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    time.sleep(0.2)
    t0 = time.monotonic()
    threading.Timer(0.5, release.set).start()
    with rt.workspace_lock(tmp_path, 10, lambda m: None, poll=0.05):
        waited = time.monotonic() - t0
    holder.join()
    assert 0.3 < waited < 5


# --------------------------------------------------------------------------------------
# prefect.yaml


def test_prefect_yaml_deployment_is_valid():
    raw, deployments = load_deployments()
    # the flow's defaults live in its signature alone (argparse reads them from there too)
    assert all(not d.get("parameters") for d in deployments)
    dep = next(d for d in deployments if d["name"] == "weekly-retrain")  # the process-pool one
    assert check_deployment(dep) == []
    assert dep["work_pool"]["name"] == "dcgan-gpu"
    env = dep["work_pool"]["job_variables"]["env"]
    assert env["CUDA_VISIBLE_DEVICES"] == "0" and env["DCGAN_DEVICE"] == "cuda"
    assert dep["concurrency_limit"]["limit"] == 1


def test_deployment_check_catches_mistakes():
    _, deployments = load_deployments()
    bad = {**deployments[0], "parameters": {"overides": {}, "min_improvement": "a lot"},
           "schedules": [{"cron": "every monday"}]}
    problems = check_deployment(bad)
    assert any("overides" in p for p in problems)
    assert any("do not validate" in p for p in problems)
    assert any("bad cron" in p for p in problems)


def test_experiments_are_pushed_to_origin_or_the_only_remote(tmp_path: Path):
    import subprocess

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    assert rt.git_remote(tmp_path) is None
    git("remote", "add", "upstream", "https://example.com/a.git")
    assert rt.git_remote(tmp_path) == "upstream"
    git("remote", "add", "origin", "https://example.com/b.git")
    assert rt.git_remote(tmp_path) == "origin"


def test_a_timeout_stops_the_command_and_everything_it_started(tmp_path: Path):
    """The experiment's time limit ends dvc *and* its stages (a process group), not just the
    thread that waits for it."""

    pids = tmp_path / "pids"
    script = f"sleep 300 & echo $! > {pids}; echo started; sleep 300"
    lines: list[str] = []
    t0 = time.monotonic()
    with pytest.raises(rt.ExperimentTimeout, match="ran past its 1 s limit"):
        rt.run_logged(["bash", "-c", script], tmp_path, lines.append, timeout=1)
    assert time.monotonic() - t0 < 30 and lines == ["started"]
    wait_gone(int(pids.read_text()), 5, "started by the command outlived the timeout")


def test_use_branch_switches_creates_and_refuses(tmp_path: Path):
    import subprocess

    def git(*args):
        return subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True,
                              text=True).stdout.strip()

    git("init", "-q", "-b", "main")
    git("-c", "user.email=a@b", "-c", "user.name=t", "commit", "-q", "--allow-empty", "-m", "x")
    assert rt.use_branch(tmp_path, None, print) == "main"
    assert rt.use_branch(tmp_path, "models", print) == "models"  # created at HEAD
    assert git("symbolic-ref", "--short", "HEAD") == "models"
    assert rt.use_branch(tmp_path, "main", print) == "main"      # an existing one
    with pytest.raises(UserError, match="not a valid git branch name"):
        rt.use_branch(tmp_path, "bad..name", print)
    git("checkout", "-q", "--detach")
    with pytest.raises(UserError, match="detached HEAD"):
        rt.use_branch(tmp_path, None, print)


def test_the_promoted_artifact_is_declared_in_dvc_yaml():
    artifacts = yaml.safe_load((REPO / "dvc.yaml").read_text())["artifacts"]
    art = artifacts[rt.ARTIFACT]
    assert art["type"] == "model" and art["path"] == "models/gan" and art["desc"] and art["labels"]


def test_flow_tasks_are_named_apart_from_the_functions_they_call():
    """A task named like the library function it wraps (`push` calling `rt.push`) reads as a
    recursion and hides which one a traceback means: every task has a name of its own."""
    import ast
    import importlib
    import pkgutil

    tree = ast.parse((REPO / "flows" / "retrain.py").read_text())
    tasks = [f.name for f in tree.body if isinstance(f, ast.FunctionDef) and any(
        (d.func.id if isinstance(d, ast.Call) else getattr(d, "id", "")) == "task" for d in f.decorator_list)]
    assert len(tasks) >= 6, tasks
    library = set(dir(rt))
    for mod in pkgutil.iter_modules(rt.__path__):
        library |= set(dir(importlib.import_module(f"dcgan.app.retrain.{mod.name}")))
    assert not set(tasks) & library, set(tasks) & library


def test_the_champion_is_the_version_in_the_stage(tmp_path: Path):
    """stage_tag: the last GTO stage tag, unless that tag unassigned the stage."""
    import subprocess

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "x")
    assert rt.stage_tag(tmp_path, "prod") is None
    for tag, expected in (("generator#prod#1", "generator#prod#1"), ("generator#staging#2", "generator#prod#1"),
                          ("generator#prod!#3", None), ("generator#prod#10", "generator#prod#10")):
        git("tag", tag)
        assert rt.stage_tag(tmp_path, "prod") == expected, tag


def test_guardrails_stop_a_winner_that_copies_or_loses_precision_or_recall():
    """Issue 38: FID rewards memorising the training set; a winner on FID whose copy rate is above
    its own floor, or whose precision or recall fell, by more than the noise, is not promoted."""
    def diff(**rows) -> dict:
        d = diff_of("fid", 3.0, 2.0, n_samples=(359, 359), pr_images=(359, 359))
        d.update({k: {"old": a, "new": b, "diff": None} for k, (a, b) in rows.items()})
        return d

    fine = diff(copy_rate=(0.2, 0.22), copy_rate_floor=(0.46, 0.46), precision=(0.75, 0.72), recall=(0.9, 0.88))
    assert rt.decide(fine, "fid", 0.0).promote and rt.guardrails(fine) == []
    copies = rt.decide(diff(copy_rate=(0.2, 0.62), copy_rate_floor=(0.46, 0.46)), "fid", 0.0)
    assert not copies.promote and "copy rate 0.62 is above its floor 0.46" in copies.reason
    assert copies.improvement == pytest.approx(1.0)  # the win is still reported
    for key in ("precision", "recall"):
        fell = rt.decide(diff(**{key: (0.9, 0.8)}), "fid", 0.0)
        assert not fell.promote and f"{key} fell from 0.9 to 0.8" in fell.reason
    first = diff_of("fid", None, 2.0, n_samples=(None, 359))
    first.update({"copy_rate": {"new": 0.62}, "copy_rate_floor": {"new": 0.46}})
    assert not rt.decide(first, "fid", 0.0, champion=False).promote  # the first model too


# --- the champion re-scored by the candidate's instrument (issue 38) -----------------------

def test_a_champion_of_another_image_size_or_channel_count_cannot_be_rescored():
    from dcgan.app.retrain.rescore import compatible

    assert compatible({"channels": 1, "image_size": 32}, {"channels": 1, "image_size": 32}) is None
    why = compatible({"channels": 1, "image_size": 32}, {"channels": 3, "image_size": 32})
    assert why == ("the champion makes 1x32x32 images, the candidate's data are 3x32x32: "
                   "no one instrument scores both")
    assert "64x64" in compatible({"channels": 3, "image_size": 64}, {"channels": 3, "image_size": 32})


def test_the_champion_is_sampled_as_promoted_from_the_candidates_latents():
    """The candidate's params throughout (seed, sample count, evaluator, evaluate), except the
    sample keys that describe the champion as a model: which generator, DRS."""
    from dcgan.app.retrain.rescore import champion_params

    cand = {"base": {"seed": 1}, "sample": {"num_samples": 2000, "batch_size": 500, "generator": "auto", "drs": False},
            "evaluator": {"seed": 0}}
    champ = {"base": {"seed": 0}, "sample": {"num_samples": 500, "batch_size": 100, "generator": "best", "drs": True,
                                             "drs_percentile": 80}}
    got = champion_params(cand, champ)
    assert got["base"] == {"seed": 1} and got["evaluator"] == {"seed": 0}
    assert got["sample"] == {"num_samples": 2000, "batch_size": 500, "generator": "best", "drs": True,
                             "drs_percentile": 80}
    assert cand["sample"]["generator"] == "auto"  # the candidate's params are not changed


def test_shared_latents_need_the_same_draw_and_no_drs():
    from dcgan.app.retrain.rescore import shared_latents

    z = {"seed": 1, "n": 2000, "batch_size": 500, "latent_dim": 64, "prior": "normal"}
    assert shared_latents({"drs": False, "latents": z}, {"drs": False, "latents": dict(z)})
    assert not shared_latents({"drs": False, "latents": z}, {"drs": False, "latents": {**z, "seed": 2}})
    assert not shared_latents({"drs": False, "latents": z}, {"drs": False, "latents": {**z, "batch_size": 250}})
    assert not shared_latents({"drs": True, "latents": z}, {"drs": False, "latents": z})
    assert not shared_latents({"drs": False}, {"drs": False})  # samples from before the record: unknown


def test_two_metrics_files_side_by_side_as_a_metrics_diff():
    from dcgan.app.retrain.rescore import diff_of as side_by_side

    d = side_by_side({"fid": 3.0, "protocol.extractor": "classifier", "kid_mean": 0.1},
                     {"fid": 2.5, "protocol.extractor": "classifier", "is_mean": 4.0})
    assert d["fid"] == {"old": 3.0, "new": 2.5, "diff": -0.5}
    assert d["kid_mean"] == {"old": 0.1, "new": None, "diff": None}
    assert d["is_mean"] == {"old": None, "new": 4.0, "diff": None}
    assert rt.protocol_mismatch(d) == []
    # how reconstruction inverts G follows from whether G trained an encoder: the model's, not the instrument's
    both = side_by_side({"protocol.recon_method": "latent_optimisation"}, {"protocol.recon_method": "encoder"})
    assert rt.protocol_mismatch(both) == []


def test_not_compared_never_promotes_and_says_why():
    c = rt.not_compared("fid", "the champion generator#prod#2 cannot be re-scored: it makes 1x32x32 images")
    assert not c.promote and c.reason.startswith("not compared: the champion generator#prod#2")
    assert c.improvement is None and c.direction == "lower"


def test_the_paired_gate_reports_the_gain_on_all_samples_and_the_joint_draw():
    paired = rt.PairedGain(0.4, 0.1, 0.7, 0.01, 500, 2000, True)
    c = rt.decide(diff_of("fid", 3.0, 2.9), "fid", 0.0, paired)
    assert c.promote and c.improvement == 0.4  # the paired test's gain, on all 2000 samples
    assert c.test == "paired bootstrap, 500 resamples, 2000 samples a side, the same latents"
    assert "on all 2000 samples: gain +0.4" in c.reason


def test_the_flow_tells_the_train_stage_where_checkpoints_outlive_the_experiment():
    from dcgan.app.stages import train

    assert rt.CHECKPOINT_STORE_ENV == train.CHECKPOINT_STORE


INTERRUPTED = """\
import sys
from pathlib import Path
from dcgan.app import retrain as rt
with rt.children_stopped(print):
    rt.run_logged(["bash", "-c", sys.argv[1]], Path.cwd(), print)
"""


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_a_stopped_run_stops_everything_it_started(tmp_path: Path, sig):
    """Ctrl-C reaches the flow's process alone (each command runs in a process group of its own);
    SIGTERM is what Prefect's cancellation and a worker's shutdown send, and Prefect's engine turns
    it into an exception, as this script's handler does. Either way the command and the process it
    started in the background are gone when the run has ended."""
    import os
    import signal
    import subprocess
    import sys

    from tests.conftest import ctrl_c_default, venv_env

    pids = tmp_path / "pids"
    script = f"sleep 300 & echo $! > {pids}; echo started; sleep 300"
    prelude = "import signal\nsignal.signal(signal.SIGTERM, lambda *a: (_ for _ in ()).throw(SystemExit(143)))\n"
    proc = subprocess.Popen([sys.executable, "-c", prelude + INTERRUPTED, script], cwd=tmp_path, env=venv_env(),
                            stdout=subprocess.PIPE, text=True, preexec_fn=ctrl_c_default)
    assert proc.stdout.readline().strip() == "started"
    child = int(pids.read_text())
    os.kill(proc.pid, getattr(signal, sig))
    assert proc.wait(30) != 0
    wait_gone(child, 15, f"started by the run outlived its {sig}")


def test_notifications_reach_a_webhook_and_never_show_its_url(tmp_path: Path):
    from tests.conftest import Receiver

    hook = Receiver()
    try:
        lines: list[str] = []
        env = {rt.notify.ENV: f"{hook.url}?token=hush, json://127.0.0.1:9/nothing-listens?token=hush"}
        assert rt.send("dcgan retrain r1: Failed", "error: train.lr must be > 0", "failure", lines.append, env) == 1
        assert hook.got[0]["title"] == "dcgan retrain r1: Failed" and "train.lr" in hook.got[0]["message"]
        assert hook.got[0]["type"] == "failure"
        assert lines and all("hush" not in line and "127.0.0.1" not in line for line in lines), lines
        assert rt.send("x", "y", env={}) == 0  # none configured: nothing sent, nothing said
    finally:
        hook.close()


def test_sample_grids_are_inline_pictures_a_browser_opens(tmp_path: Path):
    import base64

    png = REPO / "reports/samples.png"
    md = rt.image_markdown([("champion", png), ("candidate", tmp_path / "missing.png")], "r1: samples")
    data = md.split("](data:image/png;base64,", 1)[1].split(")", 1)[0]
    assert base64.b64decode(data) == png.read_bytes()
    assert "file://" not in md and "(candidate: no picture)" in md
