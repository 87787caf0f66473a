"""A named DVC experiment: the flow's inputs checked, ``dvc exp run`` with overrides, its commit,
and its metrics diffed against the workspace."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from pathlib import Path

from dcgan.app.retrain.constants import DEFAULT_STAGE, METRICS
from dcgan.app.retrain.gate import ALPHA, is_number
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
    for key in overrides:
        if not _KEY.match(key):
            raise UserError(f"override {key!r} must look like section.key, e.g. train.lr")


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


def metrics_diff(cwd: Path, rev: str) -> dict[str, dict[str, object]]:
    """``dvc metrics diff --all`` of workspace (old) vs the experiment (new), for metrics.json.

    DVC diffs ``a_rev`` against the workspace, so the experiment is ``a_rev`` and the columns
    are swapped back: ``{key: {"old": workspace, "new": experiment, "diff": new - old}}``.
    """
    raw = dvc_json(["metrics", "diff", "--all", rev], cwd) or {}
    out = {}
    for key, row in (raw.get(METRICS) or {}).items():
        old, new = row.get("new"), row.get("old")
        diff = new - old if is_number(old) and is_number(new) else None
        out[key] = {"old": old, "new": new, "diff": diff}
    return out
