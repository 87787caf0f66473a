"""What is new since the champion: the data brought up to date from their declared source first,
then "nothing new" when the run would train the champion's own inputs again.

The sources are the project's ``.dvc`` files: an import (``dvc import``, ``dvc import-url``) is
brought up to date with ``dvc update``; a folder added with ``dvc add`` is a watched folder,
added again (``dvc add``) so the images dropped into it since are in. A ``.dvc`` file that
changed is committed, by path, before the experiment, which then runs on top of it."""

from __future__ import annotations

from pathlib import Path

import yaml

from dcgan.app.retrain.promotion import stage_tag
from dcgan.app.retrain.rescore import version_of
from dcgan.app.retrain.shell import Log, check, git_out
from dcgan.core.errors import UserError


def data_sources(cwd: Path) -> list[tuple[str, str]]:
    """``(dvc file, "update" | "add")`` for every committed ``.dvc`` file: imports are updated
    (frozen ones are left as they are), added folders and files are added again."""
    listed = (git_out(["ls-files", "-z", "--", "*.dvc"], cwd) or "").split("\0")
    out = []
    for name in filter(None, listed):
        try:
            spec = yaml.safe_load((cwd / name).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise UserError(f"{name} cannot be read as a .dvc file ({exc}): nothing was started") from None
        deps = spec.get("deps") or []
        if not deps:
            out.append((name, "add"))  # a folder or file added with dvc add: watched
        elif not spec.get("frozen"):
            out.append((name, "update"))  # dvc import / import-url: brought up to date
    return out


def refresh_data(cwd: Path, log: Log) -> list[str]:
    """Bring every data source up to date (:func:`data_sources`) and commit the ``.dvc`` files
    that changed, by path; returns them (empty: nothing new arrived). A failing source puts
    every ``.dvc`` file back as it was and stops the run in one line."""
    sources = data_sources(cwd)
    try:
        for name, how in sources:
            target = name if how == "update" else str(Path(name).with_suffix(""))
            if how == "add" and not (cwd / target).exists():
                log(f"{target} is not in the workspace (dvc pull brings it): it is not re-added")
                continue
            check("dvc", [how, "-q", target], cwd, log)
        changed = sorted(filter(None, (git_out(["diff", "--name-only", "-z", "--", *(n for n, _ in sources)], cwd)
                                       or "").split("\0"))) if sources else []
        if changed:
            check("git", ["commit", "-q", "--no-verify", "-m", f"data: {', '.join(changed)} brought up to date "
                          "by the retrain flow", "--", *changed], cwd, log)
    except BaseException:
        if sources:
            git_out(["checkout", "-q", "HEAD", "--", *(n for n, _ in sources)], cwd)
        raise
    for name in changed:
        log(f"new data: {name} changed and is committed at {(git_out(['rev-parse', 'HEAD'], cwd) or '')[:12]}")
    return changed


def _same_value(text: str, value: object) -> bool:
    """Whether an override's text sets the value params.yaml holds: as YAML reads it, or as a
    number (DVC writes 0.000001 as 1e-06, which YAML 1.1 reads as a string)."""
    try:
        if yaml.safe_load(text) == value:
            return True
    except yaml.YAMLError:
        return False
    try:
        return not isinstance(value, bool) and float(text) == float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def nothing_new(cwd: Path, champion_commit: str, overrides: dict[str, str]) -> bool:
    """Whether a run would train exactly what the champion was trained on: the tree at HEAD is the
    champion's commit's (data, code, params), and every override sets a value the champion's
    params.yaml already holds. Then DVC would rerun nothing and the gain would be 0."""
    if git_out(["diff", "--quiet", champion_commit, "HEAD", "--"], cwd) is None:
        return False
    shown = git_out(["show", f"{champion_commit}:params.yaml"], cwd)
    params = yaml.safe_load(shown or "") or {}
    for key, value in overrides.items():
        section, _, name = key.partition(".")
        held = (params.get(section) or {}) if isinstance(params.get(section), dict) else {}
        if name not in held or not _same_value(value, held[name]):
            return False
    return True


def nothing_new_since(cwd: Path, stage: str, overrides: dict[str, str]) -> str | None:
    """The line to say when this run would only train the champion again (:func:`nothing_new`),
    else None (no champion, or something is new)."""
    tag = stage_tag(cwd, stage)
    if tag is None:
        return None
    commit = git_out(["rev-list", "-n", "1", tag], cwd)
    if not commit or not nothing_new(cwd, commit, overrides):
        return None
    return (f"nothing new since {version_of(cwd, tag) or tag} ({tag}, commit {commit[:12]}): the data, code and "
            f"params are the ones it was trained on, so nothing was trained")
