"""Promotion: apply the experiment, commit what it changed, register the generator with GTO (a
version and a stage tag); export an experiment's files; push data, commit, tags and experiment."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from dcgan.app.retrain.constants import ARTIFACT, DEFAULT_STAGE
from dcgan.app.retrain.gate import Comparison
from dcgan.app.retrain.shell import Log, check, git_out, git_remote, remote_configured
from dcgan.core import files
from dcgan.core.errors import UserError


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


def stage_tag(cwd: Path, stage: str = DEFAULT_STAGE) -> str | None:
    """The GTO tag that put a version of the generator in ``stage`` last (``generator#prod#3``),
    or None when no version is there: none was ever assigned, or the last tag unassigned it
    (``generator#prod!#4``)."""
    found = (git_out(["tag", "--list", f"{ARTIFACT}#{stage}#*", f"{ARTIFACT}#{stage}!#*"], cwd) or "").split()
    if not found:
        return None
    last = max(found, key=lambda t: int(t.rsplit("#", 1)[1]) if t.rsplit("#", 1)[1].isdigit() else -1)
    return None if f"#{stage}!#" in last else last


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
    what = (f"{comparison.metric} {_fmt(comparison.baseline)} -> {_fmt(comparison.new)}"
            + (f", gain {comparison.improvement:+.4g} (95% CI {comparison.low:+.3g} to {comparison.high:+.3g}, "
               f"p = {comparison.p_value:.3g}, {comparison.test})"
               if comparison.improvement is not None and comparison.low is not None else "")
            + f" (experiment {name})")
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
