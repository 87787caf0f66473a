"""Promotion: apply the experiment, commit what it changed, register the generator with GTO (a
version and a stage tag); export an experiment's files; push data, commit, tags and experiment."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from dcgan.app.retrain.constants import ARTIFACT, DEFAULT_STAGE, JOURNAL
from dcgan.app.retrain.gate import Comparison
from dcgan.app.retrain.shell import Log, check, git_out, git_remote, remote_configured
from dcgan.core import files, kill_points
from dcgan.core.errors import UserError


def export_files(cwd: Path, rev: str, paths: list[str], dest: Path, link: bool = False) -> None:
    """Copy ``paths`` (files or DVC-tracked folders) as they are at ``rev`` into ``dest``.

    ``link``: files in this project's DVC cache are hard-linked, not copied (read-only, as the
    cache is): re-scoring reads a CelebA-sized ``data/prepared`` without writing gigabytes.
    Files that are not in the cache (git files, a pruned cache) are fetched as before."""
    from dvc.api import DVCFileSystem

    fs = DVCFileSystem(str(cwd), rev=rev)
    cache = _local_cache(cwd) if link else None
    for path in paths:
        target = dest / Path(path).name
        entries = fs.find(path, detail=True) if fs.isdir(path) else {path: fs.info(path)}
        for name, info in entries.items():
            rel = PurePosixPath(name.lstrip("/")).relative_to(path.strip("/"))
            out = target / rel if str(rel) != "." else target
            out.parent.mkdir(parents=True, exist_ok=True)
            if not (cache and _link_cached(cache, info, out)):
                fs.get_file(name, str(out))


def _local_cache(cwd: Path):
    from dvc.repo import Repo

    with Repo(str(cwd)) as repo:
        return repo.cache.local


def _link_cached(cache, info: dict, out: Path) -> bool:
    """Hard-link the cache file of a DVC entry to ``out``; False when it is not in the cache or the
    cache is on another filesystem (the caller then fetches a copy)."""
    md5 = (info.get("dvc_info") or {}).get("md5")
    src = cache.oid_to_path(md5) if md5 and not str(md5).endswith(".dir") else None
    if not src or not os.path.isfile(src):
        return False
    try:
        os.link(src, out)
    except OSError:
        return False
    return True


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


def tags_at(cwd: Path, commit: str, pattern: str) -> list[str]:
    """Tags matching ``pattern`` on ``commit``, in numeric order (v0.0.9 before v0.0.10)."""
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


STEPS = ("apply", "commit", "register", "assign", "push data", "push git", "done")
"""A promotion's steps, in order; ``DCGAN_FAULTS="promote_fault=N"`` raises before step N (1-based)
and ``"promote_kill=N"`` SIGKILLs the process there (the tests' seam, as training's kill points)."""


class PromotionFailed(UserError):
    """A promotion step failed; the repository was put back as it was."""


def _step(journal: dict, path: Path, index: int) -> None:
    journal["step"] = STEPS[index]
    files.write_json(path, journal)
    if kill_points.armed("promote_kill", index + 1):
        kill_points.kill()
    if kill_points.armed("promote_fault", index + 1):
        raise RuntimeError(f"injected fault before {STEPS[index]!r}")


def _what(name: str, comparison: Comparison) -> str:
    """The commit message's numbers: the gated metric on the same samples as the gain."""
    base, new = comparison.on_gain_samples or (comparison.baseline, comparison.new)
    return (f"{comparison.metric} {_fmt(base)} -> {_fmt(new)}"
            + (f", gain {comparison.improvement:+.4g} (95% CI {comparison.low:+.3g} to {comparison.high:+.3g}, "
               f"p = {comparison.p_value:.3g}, {comparison.test})"
               if comparison.improvement is not None and comparison.low is not None else "")
            + f" (experiment {name})")


def promote(cwd: Path, name: str, rev: str, comparison: Comparison, log: Log,
            stage: str = DEFAULT_STAGE) -> Promotion:
    """Apply the experiment commit ``rev`` (the id the gate scored, never a name), commit what it
    changed, register a GTO version of the generator on that commit, assign it ``stage``, push
    the DVC data and then the commit and both tags in one ``git push --atomic``.

    All or nothing: a failure at any step (an exception, Ctrl-C, SIGTERM) puts the repository
    back as it was (branch, workspace files, models, tags) and raises :class:`PromotionFailed`;
    a crash that leaves no chance to undo is finished or undone by :func:`recover` on the next
    run (the steps are journaled in ``.dvc/tmp``)."""
    journal = _journal(cwd, name, rev, stage)
    old, branch = journal["old"], journal["branch"]
    what = _what(name, comparison)
    path = cwd / JOURNAL
    try:
        promotion = _steps(cwd, journal, path, name, what, log)
    except BaseException as exc:
        step = journal["step"]
        if step in ("push git", "done") and _landed(cwd, journal):
            path.unlink(missing_ok=True)  # the atomic push went through: the promotion is complete
            raise
        undo(cwd, journal, log)
        if not isinstance(exc, Exception):
            raise  # Ctrl-C, SIGTERM: undone, and still a stop
        detail = str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"
        raise PromotionFailed(f"promoting {name} failed at step {step!r} ({detail}); undone: {branch} is at "
                              f"{old[:12]} again, with no new tag and the workspace as it was") from None
    path.unlink(missing_ok=True)
    return promotion


def _journal(cwd: Path, name: str, rev: str, stage: str) -> dict:
    """What :func:`promote` will do, before it does anything: the branch it moves from which
    commit, the files the experiment ``rev`` changed. Refuses a detached head, and a branch that
    moved since the experiment ran."""
    old = git_out(["rev-parse", "HEAD"], cwd) or ""
    branch = git_out(["symbolic-ref", "--short", "-q", "HEAD"], cwd)
    if not old or not branch:
        raise PromotionFailed(f"{cwd} has no branch checked out: nothing was promoted")
    base = git_out(["rev-parse", "--verify", "-q", f"{rev}^"], cwd)
    if base != old:
        raise PromotionFailed(f"{branch} moved while {name} ran (it is at {old[:12]}, the experiment was run on "
                              f"{(base or '?')[:12]}): nothing was promoted; run the retrain again on the new head")
    changed = (git_out(["diff", "--name-only", "-z", old, rev], cwd) or "").split("\0")
    return {"name": name, "rev": rev, "old": old, "branch": branch, "stage": stage, "changed": [c for c in changed if c],
            "commit": None, "tags": [], "remote": git_remote(cwd), "step": None}


def _steps(cwd: Path, journal: dict, path: Path, name: str, what: str, log: Log) -> Promotion:
    """:func:`promote`'s steps in order, each journaled before it runs."""
    rev, branch, stage, changed = journal["rev"], journal["branch"], journal["stage"], journal["changed"]
    _step(journal, path, 0)
    check("dvc", ["exp", "apply", rev], cwd, log)
    _step(journal, path, 1)
    if changed:
        check("git", ["add", "--", *changed], cwd, log)
        check("git", ["commit", "-q", "--no-verify", "-m", f"Promote {name}: {what}", "--", *changed], cwd, log)
    commit = git_out(["rev-parse", "HEAD"], cwd) or ""
    if changed and git_out(["diff", "--name-only", rev, commit, "--", *changed], cwd) != "":
        raise RuntimeError(f"the commit {commit[:12]} does not hold the experiment {rev[:12]}'s files")
    journal["commit"] = commit
    log(f"committed {name} on {branch} as {commit[:12]}")
    _step(journal, path, 2)
    check("gto", ["register", ARTIFACT, commit, "-m", f"{ARTIFACT}: {what}"], cwd, log)
    version_tag = tags_at(cwd, commit, f"{ARTIFACT}@v*")[-1]
    journal["tags"].append(version_tag)
    version = version_tag.split("@", 1)[1]
    _step(journal, path, 3)
    check("gto", ["assign", ARTIFACT, "--version", version, "--stage", stage,
                  "-m", f"{ARTIFACT} {version} -> {stage}: {what}"], cwd, log)
    stage_tag = tags_at(cwd, commit, f"{ARTIFACT}#{stage}#*")[-1]
    journal["tags"].append(stage_tag)
    _step(journal, path, 4)
    if remote_configured(cwd):
        check("dvc", ["push"], cwd, log)  # the data before any tag that announces them
    _step(journal, path, 5)
    if journal["remote"]:
        check("git", ["push", "-q", "--atomic", journal["remote"], f"{commit}:refs/heads/{branch}",
                      *(f"refs/tags/{t}" for t in journal["tags"])], cwd, log)
    _step(journal, path, 6)
    return Promotion(branch, commit, version, version_tag, stage, stage_tag)


def undo(cwd: Path, journal: dict, log: Log) -> None:
    """Put the repository back as it was before the journaled promotion: its local tags deleted,
    the branch back at the old commit (``git reset --keep``: other local edits stay), the files
    the experiment changed and the DVC outputs restored. The remote was never touched before the
    last step, and that step is one atomic push."""
    old, branch = journal["old"], journal["branch"]
    for tag in journal.get("tags") or []:
        if journal.get("commit") and git_out(["rev-list", "-n", "1", tag], cwd) == journal["commit"]:
            git_out(["tag", "-d", tag], cwd)
    head = git_out(["rev-parse", "HEAD"], cwd)
    if journal.get("commit") and head == journal["commit"]:
        check("git", ["reset", "-q", "--keep", old], cwd, log)
    elif git_out(["rev-parse", f"refs/heads/{branch}"], cwd) == journal.get("commit"):
        check("git", ["update-ref", f"refs/heads/{branch}", old, journal["commit"]], cwd, log)
    if journal.get("changed"):
        check("git", ["checkout", "-q", old, "--", *journal["changed"]], cwd, log)
    check("dvc", ["checkout", "--force", "-q"], cwd, log)
    (cwd / JOURNAL).unlink(missing_ok=True)
    log(f"promotion of {journal['name']} undone: {branch} at {old[:12]}, workspace as it was")


def _landed(cwd: Path, journal: dict) -> bool:
    """Whether the journaled promotion's atomic push reached the git remote (its version tag is
    there). A remote that cannot be read stops the caller in one line: undoing a promotion that
    landed would leave the remote ahead of the branch."""
    remote, tags = journal.get("remote"), journal.get("tags") or []
    if not (remote and tags):
        return False
    found = git_out(["ls-remote", "--tags", remote, f"refs/tags/{tags[0]}"], cwd)
    if found is None:
        raise UserError(f"a promotion of {journal['name']} was interrupted and the git remote {remote} cannot be "
                        f"read to learn whether its push landed: its journal ({JOURNAL}) is kept; retry when it "
                        f"answers")
    return bool(found)


def recover(cwd: Path, log: Log) -> str | None:
    """Finish or undo a promotion that a crash interrupted (its journal is left): finished when
    the atomic push landed (the remote has its version tag), or when every step before the push
    was done and there is no git remote; undone otherwise. Returns what was done, or None."""
    path = cwd / JOURNAL
    if not path.is_file():
        return None
    try:
        journal = files.read_json(path)
        step = STEPS.index(journal["step"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{path}: an interrupted promotion's journal is unreadable ({exc}); "
                        f"check git log, git tag and gto show, then delete it") from None
    remote, tags = journal.get("remote"), journal.get("tags") or []
    if _landed(cwd, journal) or (not remote and step >= STEPS.index("push git")):
        path.unlink()
        log(f"the interrupted promotion of {journal['name']} had finished ({', '.join(tags)}): kept")
        return "finished"
    log(f"the promotion of {journal['name']} was interrupted at step {journal['step']!r}: undoing it")
    undo(cwd, journal, log)
    return "undone"


def _fmt(x: float | None) -> str:
    return "none" if x is None else f"{x:.4g}"


def push(cwd: Path, name: str, log: Log) -> list[str]:
    """Publish the experiment itself (``dvc exp push``, with its data where a DVC remote is
    configured): a promotion has already pushed its data, commit and tags. Returns what was pushed."""
    remote = git_remote(cwd)
    if not remote:
        return []
    check("dvc", ["exp", "push", *([] if remote_configured(cwd) else ["--no-cache"]), remote, name], cwd, log)
    return [f"dvc exp push {remote} {name}"]
