"""A named DVC experiment: the flow's inputs checked, ``dvc exp run`` with overrides, its commit,
and its metrics diffed against the workspace."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from pathlib import Path

from dcgan.app.retrain.constants import DATA, DEFAULT_STAGE
from dcgan.app.retrain.gate import ALPHA
from dcgan.app.retrain.shell import (
    Log,
    StageFailed,
    dvc,
    dvc_json,
    failure_message,
    git_out,
)
from dcgan.core.errors import UserError
from dcgan.metrics import registry

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,80}$")
_KEY = re.compile(r"^[a-z_]+\.[a-z0-9_]+$")
_STAGE = re.compile(r"^[a-z][a-z0-9-]{0,30}$")  # GTO stage names: lower case, digits, '-'
# An override value is a value: a number, a word, a path. DVC reads ``-S key=value`` with Hydra's
# override grammar, whose ${...} interpolations and resolvers (``${oc.env:AWS_SECRET_ACCESS_KEY}``)
# would read the worker's environment into params.yaml, and whose ``choice(...)``, ``[...]``,
# ``a,b`` and quotes make sweeps, lists and strings: none of that is a value.
_VALUE = re.compile(r"^[A-Za-z0-9_.+\-/: @]{0,200}$")


def check_inputs(overrides: dict[str, str], name: str, metric: str, stage: str = DEFAULT_STAGE,
                 min_improvement: float = 0.0, alpha: float = ALPHA, resamples: int = 500) -> None:
    """Refuse bad flow arguments before anything runs: among them a gate that could never
    promote (a metric without a standard error; too few resamples for a p below alpha)."""
    if metric not in registry.ranked_keys():
        raise UserError(f"metric must be one of {', '.join(registry.ranked_keys())}, got {metric!r}")
    if metric not in registry.UNCERTAIN:
        raise UserError(f"metric {metric} has no standard error (evaluate's bootstrap gives one to "
                        f"{', '.join(registry.UNCERTAIN)} only), so the gate could never tell a gain from noise: "
                        f"gate on one of those")
    if not (isinstance(alpha, int | float) and 0 < alpha < 0.5):
        raise UserError(f"alpha must be between 0 and 0.5, got {alpha!r}")
    if metric == "fid" and resamples < 2 / alpha:
        raise UserError(f"gate_resamples {resamples} cannot show p < alpha {alpha:g}: the paired test's smallest "
                        f"p is 1/(resamples + 1); use at least {math.ceil(2 / alpha)}")
    if not (isinstance(min_improvement, int | float) and min_improvement >= 0
            and math.isfinite(min_improvement)):
        raise UserError(f"min_improvement must be a finite number >= 0, got {min_improvement!r}")
    if not _NAME.match(name):
        raise UserError(f"experiment name {name!r} must be letters, digits, '-', '_' or '.'")
    if not _STAGE.match(stage):
        raise UserError(f"stage {stage!r} must be lower-case letters, digits or '-' (e.g. prod)")
    for key, value in overrides.items():
        if not _KEY.match(key):
            raise UserError(f"override {key!r} must look like section.key, e.g. train.lr")
        check_value(key, value)


def check_value(key: str, value: object) -> None:
    """Refuse an override value that is not a plain value, in one line that never repeats it
    (it may hold a secret's name; DVC would resolve it, we never do)."""
    text = str(value)
    if _VALUE.match(text):
        return
    bad = sorted({c for c in text if not _VALUE.match(c)})
    what = ("an interpolation or resolver (${...})" if "$" in text
            else "characters that are override syntax, not a value (" + " ".join(repr(c) for c in bad[:6]) + ")")
    raise UserError(f"override {key}: the value holds {what}; give a plain number, word or path "
                    f"(letters, digits, '.', '-', '+', '_', '/', ':', '@', spaces)")


def modified_tracked(cwd: Path) -> list[str]:
    """Tracked files (and DVC-tracked ``.dvc`` files) that differ from HEAD, staged or not."""
    out = git_out(["diff", "--name-only", "-z", "HEAD"], cwd)
    if out is None:
        raise UserError(f"{cwd}: git diff HEAD failed (a git repository with a commit is needed)")
    return sorted(filter(None, out.split("\0")))


def require_clean(cwd: Path) -> None:
    """A retrain starts from what is committed: refuse, in one line that names them, when
    tracked files are modified, since ``dvc exp run`` would carry them into the experiment
    and a promotion would commit them. Untracked files are left alone (and not used)."""
    changed = modified_tracked(cwd)
    if changed:
        shown = ", ".join(changed[:8]) + (f" and {len(changed) - 8} more" if len(changed) > 8 else "")
        raise UserError(f"the workspace has uncommitted changes to tracked files ({shown}): a retrain "
                        f"runs only from a clean tree, so that a promotion holds only what the experiment "
                        f"changed; commit or stash them (git stash), then run again. Nothing was started")


def left_out_data(cwd: Path) -> list[str]:
    """Data files the run will not see, since the experiment is built from what is committed:
    files under DVC-tracked folders that are new, changed or gone but not ``dvc add``-ed (``dvc
    data status``: uncommitted), and files under data/ that git does not track."""
    try:
        status = dvc_json(["data", "status", "--granular"], cwd) or {}
    except UserError:
        status = {}
    uncommitted = (status.get("uncommitted") or {}) if isinstance(status, dict) else {}
    found = {p for kind in ("added", "modified", "deleted") for p in uncommitted.get(kind) or []
             if not p.endswith("/")}  # a folder's own entry beside its files
    untracked = git_out(["ls-files", "-z", "--others", "--exclude-standard", "--", DATA], cwd) or ""
    return sorted(found | set(filter(None, untracked.split("\0"))))


def say_left_out(cwd: Path, log: Log) -> list[str]:
    """Name in the log, in one line, the data files this run leaves out (:func:`left_out_data`)."""
    left = left_out_data(cwd)
    if left:
        shown = ", ".join(left[:10]) + (f" and {len(left) - 10} more" if len(left) > 10 else "")
        log(f"{len(left)} data file(s) are in the workspace but not committed, so this run leaves them out: "
            f"{shown} (dvc add / git add and commit them to train on them)")
    return left


def default_name(now: datetime | None = None) -> str:
    return "retrain-" + (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")


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
        user_error = any(ln.startswith("error: ") or ln.rstrip().endswith("exited with 2") for ln in lines)
        raise StageFailed(f"experiment {name} failed: {failure_message(lines)}", retryable=not user_error)
    return experiment_rev(cwd, name)


def experiment_rev(cwd: Path, name: str) -> str:
    """The commit of the experiment ``name`` on top of HEAD."""
    head = git_out(["rev-parse", "HEAD"], cwd) or ""
    ref = f"refs/exps/{head[:2]}/{head[2:]}/{name}"
    rev = git_out(["rev-parse", "--verify", "-q", ref], cwd)
    if not rev:
        raise UserError(f"experiment {name} finished but {ref} does not exist")
    return rev
