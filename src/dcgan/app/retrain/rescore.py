"""The champion re-scored by the candidate's instrument, in the same run.

The champion is the promoted model: the version in the GTO stage (``generator#prod#N``), not
whatever the workspace holds. Its generator is sampled and scored by the candidate's own sample
and evaluate stages, with the candidate's params, evaluator (extractor and reference) and prepared
data, so both models are measured by one instrument: the same latents (``base.seed``,
``sample.num_samples``), the same metric code, the same reference. Only what describes the
champion as a model comes from its own commit: its ``models/gan`` and how it is sampled
(``sample.generator``, ``sample.drs``...). A new evaluator seed or device, refreshed data or
another sample count is then compared, not refused; only a champion that no instrument of the
candidate can score (another image size or channel count) is refused, in one line.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from dcgan.app.retrain.constants import (
    EVALUATOR,
    FEATURES,
    METRICS,
    MODELS,
    PREPARED,
    SAMPLES_INFO,
)
from dcgan.app.retrain.gate import PairedGain, is_number
from dcgan.app.retrain.paired import features_match, fid_of, paired_fid_gain
from dcgan.app.retrain.promotion import export_files, tags_at
from dcgan.app.retrain.shell import ExperimentTimeout, Log, failure_message, git_out, run_logged
from dcgan.core import files
from dcgan.core.errors import UserError

MODEL_SAMPLE_KEYS = ("generator", "drs", "drs_burnin", "drs_percentile")
"""``sample`` keys that describe how a model is sampled: the champion keeps its own."""


class Unscorable(UserError):
    """The champion cannot be scored by the candidate's instrument; the message says why."""


@dataclass
class ChampionScore:
    """The champion under the candidate's instrument, beside the candidate."""

    tag: str
    commit: str
    diff: dict[str, dict[str, object]]
    """``{key: {"old": champion, "new": candidate, "diff": new - old}}``, as ``dvc metrics diff``."""
    paired: PairedGain | None
    folder: Path
    """The champion's metrics.json and samples.png as scored here."""
    paired_worse: PairedGain | None = None
    """The same test the other way (the champion's gain over the candidate): is it worse?"""


def tag_commit(root: Path, tag: str) -> str:
    commit = git_out(["rev-list", "-n", "1", tag], root)
    if not commit:
        raise Unscorable(f"the champion's tag {tag} names no commit")
    return commit


def compatible(card: dict, meta: dict) -> str | None:
    """Why a generator (its model.json) cannot be scored against prepared data (its meta.json),
    or None: the images must have one size and channel count."""
    made = (card.get("channels"), card.get("image_size"))
    data = (meta.get("channels"), meta.get("image_size"))
    if made != data:
        return (f"the champion makes {made[0]}x{made[1]}x{made[1]} images, the candidate's data are "
                f"{data[0]}x{data[1]}x{data[1]}: no one instrument scores both")
    return None


def champion_params(candidate: dict, champion: dict) -> dict:
    """The candidate's params with the champion's own ``sample`` model keys: the champion is
    sampled as it was promoted, from the candidate's latents."""
    out = {**candidate, "sample": dict(candidate.get("sample") or {})}
    for key in MODEL_SAMPLE_KEYS:
        if key in (champion.get("sample") or {}):
            out["sample"][key] = champion["sample"][key]
    return out


def shared_latents(a: dict, b: dict) -> bool:
    """Whether two samples.json describe the same latents, row for row (no DRS on either)."""
    return bool(a.get("latents")) and a.get("latents") == b.get("latents") and not a.get("drs") and not b.get("drs")


def _show(root: Path, rev: str, path: str) -> dict:
    res = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=root, capture_output=True, text=True)
    if res.returncode != 0:
        raise Unscorable(f"{path} is not in commit {rev[:12]}: {res.stderr.strip()}")
    return yaml.safe_load(res.stdout) or {}


def run_stage(root: Path, module: str, args: list[str], log: Log, timeout: float | None) -> None:
    """One stage of the re-scoring (``python -m dcgan.app.stages.MODULE ARGS``); its failure or a
    timeout is one line."""
    try:
        code, lines = run_logged([sys.executable, "-m", f"dcgan.app.stages.{module}", *args], root, log,
                                 timeout=timeout)
    except ExperimentTimeout:
        raise UserError(f"re-scoring the champion: its {module} stage ran past the {timeout:g} s limit "
                        f"(experiment_timeout) and was stopped; nothing was promoted") from None
    if code != 0:
        raise Unscorable(f"re-scoring the champion failed in {module}: {failure_message(lines)}")


def _card(path: Path, tag: str, commit: str) -> dict:
    try:
        return files.read_json(path)
    except (OSError, ValueError) as exc:
        raise Unscorable(f"the champion {tag} ({commit[:12]}) has no readable {MODELS}/model.json "
                         f"({type(exc).__name__}: {exc})") from None


def diff_of(old: dict, new: dict) -> dict[str, dict[str, object]]:
    """Two metrics.json side by side, as ``dvc metrics diff --all`` rows."""
    out = {}
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        out[key] = {"old": a, "new": b, "diff": b - a if is_number(a) and is_number(b) else None}
    return out


def candidate_diff(root: Path, rev: str) -> dict[str, dict[str, object]]:
    """The candidate's metrics (at ``rev``) as a diff with nothing on the old side: what a first
    model is judged on (its own floors), never the workspace's metrics."""
    return diff_of({}, _show(root, rev, METRICS))


def version_of(root: Path, tag: str) -> str | None:
    """The GTO version (v0.0.3) on the commit a stage tag points at."""
    commit = git_out(["rev-list", "-n", "1", tag], root)
    found = tags_at(root, commit, f"{tag.split('#', 1)[0]}@v*") if commit else []
    return found[-1].split("@", 1)[1] if found else None


def unscorable_way_out(root: Path, tag: str, stage: str, why: object) -> str:
    """One line: why the champion cannot be re-scored, and the two ways on."""
    artifact = tag.split("#", 1)[0]
    version = version_of(root, tag) or "VERSION"
    return (f"the champion {tag} cannot be re-scored by the candidate's instrument ({why}); nothing is promoted "
            f"while it stays in {stage}. Ways on: take it out of {stage} (gto deprecate {artifact} {version} "
            f"{stage}, then git push origin --tags) so the next run is a first model, or rerun with "
            f"allow_first=True (--allow-first) to promote this one without a comparison")


def score_champion(root: Path, rev: str, tag: str, out: Path, log: Log, margin: float = 0.0,
                   resamples: int = 500, timeout: float | None = None) -> ChampionScore:
    """Sample and score the champion (``tag``) with the candidate's (``rev``) stages, params,
    evaluator and data; the paired FID test on all samples of both. Raises :class:`Unscorable`
    (one line) when it cannot be done."""
    commit = tag_commit(root, tag)
    out.mkdir(parents=True, exist_ok=True)
    work_root = root / ".dvc" / "tmp"
    work_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rescore-", dir=work_root) as tmp:
        work = Path(tmp)
        try:
            export_files(root, commit, [MODELS], work / "champion")
        except Exception as exc:  # noqa: BLE001 (a DVC or git error: say which model, and why)
            raise Unscorable(f"the champion {tag} ({commit[:12]}): its {MODELS} cannot be fetched ({exc})") from None
        card = _card(work / "champion/gan/model.json", tag, commit)
        try:
            export_files(root, rev, [EVALUATOR, PREPARED, SAMPLES_INFO, FEATURES, METRICS], work / "candidate",
                         link=True)
        except Exception as exc:  # noqa: BLE001
            raise Unscorable(f"the candidate ({rev[:12]}) lacks what scoring needs ({exc})") from None
        cand = work / "candidate"
        why = compatible(card, files.read_json(cand / "prepared/meta.json"))
        if why:
            raise Unscorable(why)
        params = champion_params(_show(root, rev, "params.yaml"), _show(root, commit, "params.yaml"))
        files.write_text(work / "params.yaml", yaml.safe_dump(params, sort_keys=False))
        c = work / "champion"
        log(f"re-scoring the champion {tag} ({commit[:12]}) with the candidate's instrument")
        run_stage(root, "sample", ["--params", str(work / "params.yaml"), "--models", str(c / "gan"),
                                "--out", str(c / "samples.npy"), "--grid", str(c / "samples.png"),
                                "--interpolation", str(c / "interpolation.png")], log, timeout)
        run_stage(root, "evaluate", ["--params", str(work / "params.yaml"), "--samples", str(c / "samples.npy"),
                                  "--data", str(cand / "prepared"), "--evaluator", str(cand / "evaluator"),
                                  "--models", str(c / "gan"), "--out", str(c / "metrics.json"),
                                  "--recon-grid", str(c / "reconstructions.png"),
                                  "--copies-grid", str(c / "copies.png"), "--features", str(c / "features.npy")],
              log, timeout)
        for name in ("metrics.json", "samples.png"):
            shutil.copy(c / name, out / name)
        old, new = files.read_json(c / "metrics.json"), files.read_json(cand / "metrics.json")
        reference = cand / "evaluator" / "reference.npz"
        cand_features = np.load(cand / "features.npy", allow_pickle=False)
        paired = worse = None
        if not (is_number(new.get("fid")) and is_number(old.get("fid")) and math.isfinite(old["fid"])):
            pass  # no FID on one side: the gate says so (a FID gate), or gates another metric
        elif not features_match(cand_features, new["fid"], reference, new.get("protocol.n_samples")):
            log(f"paired test skipped: the candidate's {FEATURES} gives FID "
                f"{fid_of(cand_features[:new.get('protocol.n_samples') or None], reference):.6g}, not its "
                f"metrics.json's {new['fid']!r}: they are not from the same evaluate run")
        else:
            champ_features = np.load(c / "features.npy", allow_pickle=False)
            shared = shared_latents(files.read_json(c / "samples.json"), files.read_json(cand / "samples.json"))
            shared = shared and len(cand_features) == len(champ_features)
            paired = paired_fid_gain(cand_features, champ_features, reference, margin, resamples, 0, log,
                                     shared_latents=shared)
            worse = paired_fid_gain(champ_features, cand_features, reference, margin, resamples, 0, lambda _: None,
                                    shared_latents=shared)
    return ChampionScore(tag, commit, diff_of(old, new), paired, out, worse)
