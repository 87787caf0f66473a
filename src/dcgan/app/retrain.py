"""Retraining around the DVC pipeline: run a named experiment, diff its metrics against the
workspace, decide promotion, and register a promoted generator as a GTO version.

Nothing here re-implements a stage: experiments run through ``dvc exp run``, metrics are
compared through ``dvc metrics diff``, and a promotion applies the experiment with
``dvc exp apply``, commits what it changed (``dvc.lock``, params, metrics) and registers the
generator artifact declared in ``dvc.yaml`` with GTO (a version tag and a stage tag). So git
holds the record of what ran and what was promoted, and anyone can fetch the model with
``dvc artifacts get <repo> generator --stage prod``. The Prefect flow (flows/retrain.py)
sequences these functions; they are plain Python so that they can be tested and reused
without Prefect.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from dcgan.base import files
from dcgan.base.errors import UserError
from dcgan.metrics import registry

METRICS_FILE = "reports/metrics.json"
SAMPLES_FILE = "reports/samples.png"
ARTIFACT = "generator"  # dvc.yaml `artifacts:` (models/gan), the GTO artifact a promotion versions
DEFAULT_STAGE = "prod"
LOCK_FILE = ".dvc/tmp/retrain.lock"

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,80}$")
_KEY = re.compile(r"^[a-z_]+\.[a-z0-9_]+$")
_STAGE = re.compile(r"^[a-z][a-z0-9-]{0,30}$")  # GTO stage names: lower case, digits, '-'

Log = Callable[[str], None]


class StageFailed(UserError):
    """``dvc exp run`` failed; the message is the failing stage's own error line."""


class WorkspaceBusy(UserError):
    """Another retrain run holds the workspace."""


class ExperimentTimeout(UserError):
    """``dvc exp run`` ran past its time limit and was stopped with its stages."""


def check_inputs(overrides: dict[str, str], name: str, metric: str, stage: str = DEFAULT_STAGE,
                 min_improvement: float = 0.0) -> None:
    """Refuse bad flow arguments before anything runs."""
    if metric not in registry.ranked_keys():
        raise UserError(f"metric must be one of {', '.join(registry.ranked_keys())}, got {metric!r}")
    if not (isinstance(min_improvement, int | float) and min_improvement >= 0
            and math.isfinite(min_improvement)):
        raise UserError(f"min_improvement must be a finite number >= 0, got {min_improvement!r}")
    if not _NAME.match(name):
        raise UserError(f"experiment name {name!r} must be letters, digits, '-', '_' or '.'")
    if not _STAGE.match(stage):
        raise UserError(f"stage {stage!r} must be lower-case letters, digits or '-' (e.g. prod)")
    for key in overrides:
        if not _KEY.match(key):
            raise UserError(f"override {key!r} must look like section.key, e.g. train.lr")


def default_name(now: datetime | None = None) -> str:
    return "retrain-" + (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")


# ---------------------------------------------------------------------------------------
# running dvc, gto and git


def tool_env() -> dict[str, str]:
    """This interpreter's bin folder first on PATH, so that dvc, gto and the stages' ``python``
    are the project's even when a Prefect worker was started without activating the venv."""
    bin_dir = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
            "DVC_NO_ANALYTICS": "1", "GTO_NO_ANALYTICS": "1"}


def tool(name: str) -> str:
    """The project's own ``dvc`` or ``gto`` beside this interpreter, else the one on PATH."""
    local = Path(sys.executable).parent / name
    return str(local) if name in ("dvc", "gto") and local.is_file() else name


def capture(cmd: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Run ``dvc``/``gto``/``git`` ARGS quietly for what it prints (reads: --json, lists)."""
    return subprocess.run([tool(cmd), *args], cwd=cwd, capture_output=True, text=True, env=tool_env())


def run_logged(cmd: list[str], cwd: Path, log: Log, env: dict[str, str] | None = None,
               timeout: float | None = None) -> tuple[int, list[str]]:
    """Run ``cmd`` in ``cwd``, sending each output line to ``log``; return (code, lines).

    The command runs in its own process group. Past ``timeout`` seconds the whole group (the
    command and everything it started, e.g. the stages of ``dvc exp run``) gets SIGTERM, then
    SIGKILL 10 s later, and :class:`ExperimentTimeout` is raised.
    """
    full_env = {**tool_env(), "TQDM_DISABLE": "1", **(env or {})}
    proc = subprocess.Popen(cmd, cwd=cwd, env=full_env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, bufsize=1, start_new_session=True)
    expired = threading.Event()

    def stop() -> None:
        expired.set()
        for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 0.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(grace)
                return

    timer = threading.Timer(timeout, stop) if timeout else None
    if timer:
        timer.daemon = True
        timer.start()
    lines = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            if line:
                lines.append(line)
                log(line)
        code = proc.wait()
    finally:
        if timer:
            timer.cancel()
    if expired.is_set():
        with contextlib.suppress(ProcessLookupError):  # stragglers that closed their output
            os.killpg(proc.pid, signal.SIGKILL)
        raise ExperimentTimeout(f"{' '.join([Path(cmd[0]).name, *cmd[1:3]])} ran past its "
                                f"{timeout:g} s limit; it was stopped with everything it started")
    return code, lines


def dvc(args: list[str], cwd: Path, log: Log, env: dict[str, str] | None = None,
        timeout: float | None = None) -> tuple[int, list[str]]:
    """``dvc ARGS`` in ``cwd`` through :func:`run_logged`; return (code, output lines)."""
    return run_logged([tool("dvc"), *args], cwd, log, env, timeout)


def check(cmd: str, args: list[str], cwd: Path, log: Log) -> list[str]:
    """Run ``dvc``/``gto``/``git`` ARGS; a non-zero exit raises UserError with its error lines."""
    code, lines = run_logged([tool(cmd), *args], cwd, log)
    if code != 0:
        raise UserError(f"{cmd} {' '.join(args)} failed: {failure_message(lines)}")
    return lines


def dvc_json(args: list[str], cwd: Path) -> object:
    res = capture("dvc", [*args, "--json"], cwd)
    if res.returncode != 0:
        raise UserError(f"dvc {' '.join(args)} failed: {res.stderr.strip() or res.stdout.strip()}")
    return json.loads(res.stdout or "null")


def git_out(args: list[str], cwd: Path) -> str | None:
    """``git ARGS`` stdout, stripped; None when git exits non-zero."""
    res = capture("git", args, cwd)
    return res.stdout.strip() if res.returncode == 0 else None


def failure_message(lines: list[str]) -> str:
    """The stage's own ``error: ...`` lines if it printed any, else the tool's ERROR lines."""
    ours = [ln for ln in lines if ln.startswith("error: ")]
    theirs = [ln for ln in lines if ln.startswith(("ERROR:", "fatal:", "❌"))]
    picked = ours or theirs or lines[-5:]
    return "; ".join(picked) if picked else "exited without output"


def remote_configured(cwd: Path) -> bool:
    res = capture("dvc", ["remote", "list"], cwd)
    return res.returncode == 0 and bool(res.stdout.strip())


def git_remote(cwd: Path) -> str | None:
    """The git remote commits, tags and experiments go to: ``origin``, else the first one."""
    names = (git_out(["remote"], cwd) or "").split()
    return "origin" if "origin" in names else (names[0] if names else None)


def use_branch(cwd: Path, branch: str | None, log: Log) -> str:
    """The branch promotions are committed on: ``branch`` (checked out, created at HEAD when
    new) or the current one. Called before the experiment, so that its baseline is that
    branch's last promoted model."""
    current = git_out(["symbolic-ref", "--short", "-q", "HEAD"], cwd)
    if branch in (None, "", current):
        if not current:
            raise UserError(f"{cwd} is on a detached HEAD: check out a branch or pass branch=")
        return current
    if git_out(["check-ref-format", "--branch", branch], cwd) is None:
        raise UserError(f"branch {branch!r} is not a valid git branch name")
    exists = git_out(["rev-parse", "--verify", "-q", f"refs/heads/{branch}"], cwd) is not None
    check("git", ["checkout", *([] if exists else ["-b"]), branch], cwd, log)
    return branch


def run_experiment(cwd: Path, name: str, overrides: dict[str, str], log: Log,
                   env: dict[str, str] | None = None, timeout: float | None = None) -> str:
    """``dvc exp run --temp -n NAME -S k=v ...``; returns the experiment's commit.

    ``--temp`` runs the pipeline in a temporary copy, so the workspace (and the model it
    holds) is untouched until a promotion applies the experiment. Past ``timeout`` seconds
    dvc and its stages are stopped (:class:`ExperimentTimeout`).
    """
    args = ["exp", "run", "--temp", "-n", name]
    for key, value in overrides.items():
        args += ["-S", f"{key}={value}"]
    log("dvc " + " ".join(args))
    code, lines = dvc(args, cwd, log, env, timeout)
    if code != 0:
        raise StageFailed(f"experiment {name} failed: {failure_message(lines)}")
    return experiment_rev(cwd, name)


def experiment_rev(cwd: Path, name: str) -> str:
    """The commit of the experiment ``name`` on top of HEAD."""
    head = git_out(["rev-parse", "HEAD"], cwd) or ""
    ref = f"refs/exps/{head[:2]}/{head[2:]}/{name}"
    rev = git_out(["rev-parse", "--verify", "-q", ref], cwd)
    if not rev:
        raise UserError(f"experiment {name} finished but {ref} does not exist")
    return rev


# ---------------------------------------------------------------------------------------
# comparing


@dataclass
class Comparison:
    metric: str
    direction: str
    baseline: float | None
    new: float | None
    improvement: float | None  # > 0: better, in the metric's own units
    min_improvement: float
    promote: bool
    reason: str


def metrics_diff(cwd: Path, rev: str) -> dict[str, dict[str, object]]:
    """``dvc metrics diff --all`` of workspace (old) vs the experiment (new), for metrics.json.

    DVC diffs ``a_rev`` against the workspace, so the experiment is ``a_rev`` and the columns
    are swapped back: ``{key: {"old": workspace, "new": experiment, "diff": new - old}}``.
    """
    raw = dvc_json(["metrics", "diff", "--all", rev], cwd) or {}
    out = {}
    for key, row in (raw.get(METRICS_FILE) or {}).items():
        old, new = row.get("new"), row.get("old")
        diff = new - old if _number(old) and _number(new) else None
        out[key] = {"old": old, "new": new, "diff": diff}
    return out


def _number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def decide(diff: dict[str, dict[str, object]], metric: str, min_improvement: float) -> Comparison:
    """Promote when ``metric`` improves on the baseline by more than ``min_improvement``.

    Improvement is measured in the metric's units in its better direction (FID 3.1 -> 2.9 is
    +0.2). A missing baseline (first run) promotes; a missing or non-finite new value never does.
    """
    direction = registry.direction(metric)
    row = diff.get(metric, {})
    old, new = row.get("old"), row.get("new")
    def result(promote: bool, reason: str, improvement: float | None = None) -> Comparison:
        return Comparison(metric, direction, old if _number(old) else None,
                          new if _number(new) else None, improvement, min_improvement, promote, reason)
    if not _number(new) or not math.isfinite(float(new)):
        return result(False, f"the new run has no finite {metric} ({new!r})")
    if not _number(old) or not math.isfinite(float(old)):
        return result(True, f"no baseline {metric} in the workspace: the first model is promoted")
    improvement = (old - new) if direction == "lower" else (new - old)
    if improvement > min_improvement:
        return result(True, f"{metric} {old:.4g} -> {new:.4g} ({direction} is better): improved by "
                            f"{improvement:.4g} > {min_improvement:g}", improvement)
    return result(False, f"{metric} {old:.4g} -> {new:.4g} ({direction} is better): improvement "
                         f"{improvement:.4g} is not more than {min_improvement:g}", improvement)


def diff_markdown(name: str, overrides: dict[str, str], diff: dict, comparison: Comparison) -> str:
    """The metrics diff as a markdown table: baseline, new, change and the floor beside them."""
    keys = [k for k in diff if not k.startswith("protocol.") and not k.endswith("_floor")]
    def cell(x: object) -> str:
        return f"{x:.4g}" if _number(x) else ("—" if x is None else str(x))
    lines = [f"# Retrain `{name}`: {'promoted' if comparison.promote else 'not promoted'}", "",
             comparison.reason, "", "| metric | baseline | new | change | floor |", "|---|---|---|---|---|"]
    for key in sorted(keys, key=lambda k: (k != comparison.metric, k)):
        row, floor = diff[key], diff.get(f"{key}_floor", {})
        mark = f"**{key}**" if key == comparison.metric else key
        lines.append(f"| {mark} | {cell(row['old'])} | {cell(row['new'])} | {cell(row['diff'])} | "
                     f"{cell(floor.get('new'))} |")
    lines += ["", "Overrides: " + (", ".join(f"`{k}={v}`" for k, v in overrides.items()) or "none"),
              "", "The floor is the same metric for held-out real images: the best a model can reach."]
    official = diff.get("protocol.weights_official", {})
    unofficial = [side for side in ("old", "new") if official.get(side) == 0]
    if unofficial:
        which = {"old": "baseline", "new": "new run"}
        lines += ["", f"**Warning** ({' and '.join(which[s] for s in unofficial)}): "
                      f"{registry.UNOFFICIAL_WEIGHTS}"]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------
# files of an experiment, and promotion: commit + GTO version + stage


def export_files(cwd: Path, rev: str, paths: list[str], dest: Path) -> None:
    """Copy ``paths`` (files or DVC-tracked folders) as they are at ``rev`` into ``dest``."""
    from dvc.api import DVCFileSystem

    fs = DVCFileSystem(str(cwd), rev=rev)
    for path in paths:
        target = dest / Path(path).name
        if fs.isdir(path):
            fs.get(path, str(target), recursive=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            fs.get_file(path, str(target))


def own_folder(path: Path) -> Path:
    """Create ``path`` with a ``.gitignore`` of ``*``: the flow's own report files are not part
    of the git/DVC record (that is dvc.lock, the experiment refs and the GTO tags), so they
    never leak into an experiment or promotion commit or show up in ``git status``."""
    path.mkdir(parents=True, exist_ok=True)
    ignore = path / ".gitignore"
    if not ignore.is_file():
        files.write_text(ignore, "*\n")
    return path


@dataclass
class Promotion:
    """What a promotion left in git: a commit on ``branch`` and two GTO tags on it."""

    branch: str
    commit: str
    version: str      # v0.0.3
    version_tag: str  # generator@v0.0.3
    stage: str        # prod
    stage_tag: str    # generator#prod#3


def _tags_at(cwd: Path, commit: str, pattern: str) -> list[str]:
    found = (git_out(["tag", "--points-at", commit, "--list", pattern], cwd) or "").split()
    return sorted(found, key=lambda t: [int(x) for x in re.findall(r"\d+", t)])


def promote(cwd: Path, name: str, rev: str, comparison: Comparison, log: Log,
            stage: str = DEFAULT_STAGE) -> Promotion:
    """Apply the experiment, commit what it changed, register a GTO version of the generator
    artifact on that commit and assign it ``stage``.

    Only the files the experiment changed (``dvc.lock``, params, metrics, plots) are committed,
    so other local edits stay out of the commit. The tags come last: a failure before them
    leaves no version, and the error says what was done.
    """
    changed = (git_out(["diff", "--name-only", "HEAD", rev], cwd) or "").split()
    branch = git_out(["symbolic-ref", "--short", "-q", "HEAD"], cwd) or "HEAD"
    check("dvc", ["exp", "apply", name], cwd, log)
    what = (f"{comparison.metric} {_fmt(comparison.baseline)} -> {_fmt(comparison.new)} "
            f"(experiment {name})")
    if changed:
        check("git", ["add", "--", *changed], cwd, log)
        check("git", ["commit", "-q", "-m", f"Promote {name}: {what}", "--", *changed], cwd, log)
    commit = git_out(["rev-parse", "HEAD"], cwd) or ""
    log(f"committed {name} on {branch} as {commit[:12]}")
    try:
        check("gto", ["register", ARTIFACT, commit, "-m", f"{ARTIFACT}: {what}"], cwd, log)
        version_tag = _tags_at(cwd, commit, f"{ARTIFACT}@v*")[-1]
        version = version_tag.split("@", 1)[1]
        check("gto", ["assign", ARTIFACT, "--version", version, "--stage", stage,
                      "-m", f"{ARTIFACT} {version} -> {stage}: {what}"], cwd, log)
        stage_tag = _tags_at(cwd, commit, f"{ARTIFACT}#{stage}*")[-1]
    except (UserError, IndexError) as exc:
        raise UserError(f"{name} is committed on {branch} ({commit[:12]}) but registering it with "
                        f"GTO failed: {exc}. Finish by hand: gto register {ARTIFACT} {commit[:12]} "
                        f"&& gto assign {ARTIFACT} --stage {stage}") from None
    return Promotion(branch, commit, version, version_tag, stage, stage_tag)


def _fmt(x: float | None) -> str:
    return "none" if x is None else f"{x:.4g}"


def push(cwd: Path, name: str, promotion: Promotion | None, log: Log) -> list[str]:
    """Publish what this run made, where remotes exist: the DVC data first (``dvc push``), then
    the promotion commit and its tags and the experiment (``git push``, ``dvc exp push``), so
    no tag is announced before its data can be fetched. Returns what was pushed."""
    done = []
    has_dvc_remote = remote_configured(cwd)
    if has_dvc_remote:
        check("dvc", ["push"], cwd, log)
        done.append("dvc push")
    remote = git_remote(cwd)
    if remote and promotion:
        check("git", ["push", "-q", remote, promotion.branch, promotion.version_tag,
                      promotion.stage_tag], cwd, log)
        done.append(f"git push {remote} {promotion.branch} {promotion.version_tag} {promotion.stage_tag}")
    if remote:
        check("dvc", ["exp", "push", *([] if has_dvc_remote else ["--no-cache"]), remote, name],
              cwd, log)
        done.append(f"dvc exp push {remote} {name}")
    return done


# ---------------------------------------------------------------------------------------
# one retrain at a time per workspace


@contextlib.contextmanager
def workspace_lock(cwd: Path, timeout: float, log: Log, poll: float = 1.0) -> Iterator[Path]:
    """Hold an exclusive lock on the workspace for a whole retrain.

    Waits (queues) up to ``timeout`` seconds for another run to finish, then fails with
    :class:`WorkspaceBusy`, before any stage has started. The OS drops the lock when its holder
    dies, so a killed run never leaves the workspace locked.
    """
    path = cwd / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = open(path, "a+")  # noqa: SIM115 (held for the duration of the context)
    deadline = time.monotonic() + timeout
    announced = False
    try:
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                fh.seek(0)
                holder = fh.read().strip() or "unknown"
                if time.monotonic() >= deadline:
                    raise WorkspaceBusy(
                        f"another retrain run holds {path} ({holder}); waited {timeout:g} s. "
                        "Nothing was started; retry later or raise lock_timeout to queue.") from None
                if not announced:
                    log(f"waiting for another retrain run to finish ({holder})")
                    announced = True
                time.sleep(poll)
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} since {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC\n")
        fh.flush()
        yield path
    finally:
        fh.close()  # releases the lock
