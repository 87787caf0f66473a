"""Retraining around the DVC pipeline: run a named experiment, diff its metrics against the
workspace, decide promotion, keep promoted generators in a registry.

Nothing here re-implements a stage: experiments run through ``dvc exp run``, metrics are
compared through ``dvc metrics diff``, files are read from the experiment's commit through
DVC's file system, and promotion applies the experiment with ``dvc exp apply``. So
``dvc.lock`` stays the record of what ran. The Prefect flow (flows/retrain.py) sequences these
functions; they are plain Python so that they can be tested and reused without Prefect.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from dcgan import io
from dcgan.errors import UserError

METRICS_FILE = "reports/metrics.json"
SAMPLES_FILE = "reports/samples.png"
MODELS_DIR = "models/gan"
REGISTRY_DIR = "models/registry"
LOCK_FILE = ".dvc/tmp/retrain.lock"

# which way is better, for each metric a promotion may be gated on
DIRECTIONS = {
    "fid": "lower", "kid_mean": "lower", "is_mean": "higher", "precision": "higher",
    "recall": "higher", "recon_mse": "lower", "recon_psnr": "higher", "recon_ssim": "higher",
}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,80}$")
_KEY = re.compile(r"^[a-z_]+\.[a-z0-9_]+$")

Log = Callable[[str], None]


class StageFailed(UserError):
    """``dvc exp run`` failed; the message is the failing stage's own error line."""


class WorkspaceBusy(UserError):
    """Another retrain run holds the workspace."""


def check_inputs(overrides: dict[str, str], name: str, metric: str) -> None:
    """Refuse bad flow arguments before anything runs."""
    if metric not in DIRECTIONS:
        raise UserError(f"metric must be one of {', '.join(DIRECTIONS)}, got {metric!r}")
    if not _NAME.match(name):
        raise UserError(f"experiment name {name!r} must be letters, digits, '-', '_' or '.'")
    for key in overrides:
        if not _KEY.match(key):
            raise UserError(f"override {key!r} must look like section.key, e.g. train.lr")


def default_name(now: datetime | None = None) -> str:
    return "retrain-" + (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")


# ---------------------------------------------------------------------------------------
# running DVC


def tool_env() -> dict[str, str]:
    """This interpreter's bin folder first on PATH, so that dvc and the stages' ``python`` are
    the project's even when a Prefect worker was started without activating the venv."""
    bin_dir = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
            "DVC_NO_ANALYTICS": "1"}


def dvc_bin() -> str:
    local = Path(sys.executable).parent / "dvc"
    return str(local) if local.is_file() else "dvc"


def dvc(args: list[str], cwd: Path, log: Log, env: dict[str, str] | None = None) -> tuple[int, list[str]]:
    """Run ``dvc ARGS`` in ``cwd``, sending each output line to ``log``; return (code, lines)."""
    full_env = {**tool_env(), "TQDM_DISABLE": "1", **(env or {})}
    proc = subprocess.Popen([dvc_bin(), *args], cwd=cwd, env=full_env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, bufsize=1)
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip()
        if line:
            lines.append(line)
            log(line)
    return proc.wait(), lines


def dvc_json(args: list[str], cwd: Path) -> object:
    res = subprocess.run([dvc_bin(), *args, "--json"], cwd=cwd, capture_output=True, text=True,
                         env=tool_env())
    if res.returncode != 0:
        raise UserError(f"dvc {' '.join(args)} failed: {res.stderr.strip() or res.stdout.strip()}")
    return json.loads(res.stdout or "null")


def failure_message(lines: list[str]) -> str:
    """The stage's own ``error: ...`` lines if it printed any, else DVC's ERROR lines."""
    ours = [ln for ln in lines if ln.startswith("error: ")]
    theirs = [ln for ln in lines if ln.startswith("ERROR:")]
    picked = ours or theirs or lines[-5:]
    return "; ".join(picked) if picked else "dvc exited without output"


def remote_configured(cwd: Path) -> bool:
    res = subprocess.run([dvc_bin(), "remote", "list"], cwd=cwd, capture_output=True, text=True,
                         env=tool_env())
    return res.returncode == 0 and bool(res.stdout.strip())


def git_remote(cwd: Path) -> str | None:
    """The git remote experiments are pushed to: ``origin`` if there is one, else the first."""
    res = subprocess.run(["git", "remote"], cwd=cwd, capture_output=True, text=True)
    names = res.stdout.split() if res.returncode == 0 else []
    return "origin" if "origin" in names else (names[0] if names else None)


def run_experiment(cwd: Path, name: str, overrides: dict[str, str], log: Log,
                   env: dict[str, str] | None = None) -> str:
    """``dvc exp run --temp -n NAME -S k=v ...``; returns the experiment's commit.

    ``--temp`` runs the pipeline in a temporary copy, so the workspace (and the model it
    holds) is untouched until a promotion applies the experiment.
    """
    args = ["exp", "run", "--temp", "-n", name]
    for key, value in overrides.items():
        args += ["-S", f"{key}={value}"]
    log("dvc " + " ".join(args))
    code, lines = dvc(args, cwd, log, env)
    if code != 0:
        raise StageFailed(f"experiment {name} failed: {failure_message(lines)}")
    return experiment_rev(cwd, name)


def experiment_rev(cwd: Path, name: str) -> str:
    """The commit of the experiment ``name`` on top of HEAD."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                          check=True).stdout.strip()
    ref = f"refs/exps/{head[:2]}/{head[2:]}/{name}"
    res = subprocess.run(["git", "rev-parse", "--verify", ref], cwd=cwd, capture_output=True, text=True)
    if res.returncode != 0:
        raise UserError(f"experiment {name} finished but {ref} does not exist")
    return res.stdout.strip()


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
    direction = DIRECTIONS[metric]
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
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------
# files of an experiment, and the registry


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
    """Create ``path`` with a ``.gitignore`` of ``*``: the flow's own files are not part of the
    git/DVC record (that is dvc.lock and the experiment refs), so they never leak into an
    experiment commit or show up in ``git status``."""
    path.mkdir(parents=True, exist_ok=True)
    ignore = path / ".gitignore"
    if not ignore.is_file():
        io.write_text(ignore, "*\n")
    return path


def registry_latest(cwd: Path, registry: str = REGISTRY_DIR) -> dict | None:
    path = cwd / registry / "latest.json"
    return io.read_json(path) if path.is_file() else None


def promote(cwd: Path, name: str, rev: str, comparison: Comparison, diff: dict,
            overrides: dict[str, str], log: Log, registry: str = REGISTRY_DIR) -> Path:
    """Write the experiment's generator, params and metrics to the registry, apply it, point
    ``latest`` at it.

    The entry is assembled in a hidden folder and renamed into place; ``latest.json`` changes
    last, so a failure at any point leaves the previous promoted model as ``latest``.
    """
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    root = own_folder(cwd / registry)
    entry = root / f"{stamp}-{name}"
    tmp = root / f".{entry.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        export_files(cwd, rev, [MODELS_DIR, "params.yaml", METRICS_FILE, SAMPLES_FILE], tmp)
        io.write_json(tmp / "promotion.json", {
            "name": name, "experiment_rev": rev, "promoted_at": stamp, "overrides": overrides,
            "comparison": asdict(comparison),
            "metrics_diff": {k: v for k, v in diff.items() if not k.startswith("protocol.")},
        })
        log(f"dvc exp apply {name}")
        code, lines = dvc(["exp", "apply", name], cwd, log)
        if code != 0:
            raise UserError(f"dvc exp apply {name} failed: {failure_message(lines)}")
        os.replace(tmp, entry)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    io.write_json(root / "latest.json", {"path": entry.name, "name": name, "experiment_rev": rev,
                                         "metric": comparison.metric, "value": comparison.new})
    return entry


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
