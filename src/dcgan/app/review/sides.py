"""One side of a review: a revision's metrics, sample grid, training curves and generated features.

A committed revision is read through DVC's filesystem at that commit (git-tracked files from git,
DVC outputs from the cache: ``dvc pull`` or ``dvc repro`` puts them there); the workspace from
disk. A revision name is resolved once, to a commit id, and only the id is used after that.
"""

from __future__ import annotations

import io
import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from dcgan.app import paths
from dcgan.core.errors import UserError

WORKSPACE = "workspace"
REFERENCE = f"{paths.EVALUATOR}/reference.npz"
CURVES = f"{paths.LIVE}/plots/metrics/train"


class BadInput(UserError):
    """A revision, file or option the review cannot use (exit code 3)."""


@dataclass
class Side:
    label: str
    """``main (0123456789ab)`` or ``workspace``."""
    commit: str | None
    """The full commit id; None for the workspace."""
    metrics: dict
    grid: bytes | None = None
    curves: dict[str, pd.DataFrame] = field(default_factory=dict)
    features: np.ndarray | None = None
    missing: list[str] = field(default_factory=list)
    """What could not be read, and why (for the page's notes)."""
    reader: _Reader | None = None
    """Reads more of this side where needed (the evaluator's reference: :meth:`reference`)."""

    def reference(self, folder: Path) -> Path | None:
        """models/evaluator/reference.npz of this side, as a file (in ``folder`` when it has to be
        fetched from a commit), or None (and why, in :attr:`missing`). Fetched only for the paired
        test: on CelebA it holds the training features of up to 50,000 images."""
        try:
            return self.reader.file(REFERENCE, folder / f"{self.commit or 'workspace'}-reference.npz")
        except Exception as exc:  # noqa: BLE001 (absent, not in the cache: the page says so)
            self.missing.append(f"{REFERENCE}: {_why(exc)}" + (
                "" if self.commit is None else " (a DVC output: `dvc pull` or `dvc repro` puts it in the cache)"))
            return None


def resolve(root: Path, name: str) -> str:
    """The commit id ``name`` names in the repository at ``root`` (a branch, tag or id). The name
    is passed to git as a value after ``--end-of-options``, never through a shell."""
    res = subprocess.run(["git", "rev-parse", "--verify", "--quiet", "--end-of-options", f"{name}^{{commit}}"],
                         cwd=root, capture_output=True, text=True)
    if res.returncode != 0 or not res.stdout.strip():
        raise BadInput(f"{name!r} names no commit in {root} (a branch, tag or commit id; fetch it first in a "
                       "shallow clone)")
    return res.stdout.strip()


class _Reader:
    """Reads paths at one commit (DVC's filesystem) or in the workspace."""

    def __init__(self, root: Path, commit: str | None):
        self.root, self.commit, self._fs = root, commit, None

    @property
    def fs(self):
        if self._fs is None:
            from dvc.api import DVCFileSystem

            self._fs = DVCFileSystem(str(self.root), rev=self.commit)
        return self._fs

    def read(self, path: str) -> bytes:
        """The file's bytes; FileNotFoundError (or a DVC error) when it cannot be had."""
        if self.commit is None:
            return (self.root / path).read_bytes()
        with self.fs.open(path, mode="rb") as f:
            return f.read()

    def file(self, path: str, dest: Path) -> Path:
        """``path`` as a file: the workspace's own, or fetched from the commit to ``dest``."""
        if self.commit is None:
            if not (self.root / path).is_file():
                raise FileNotFoundError(path)
            return self.root / path
        self.fs.get_file(path, str(dest))
        return dest

    def listdir(self, folder: str) -> list[str]:
        if self.commit is None:
            d = self.root / folder
            return sorted(p.name for p in d.iterdir()) if d.is_dir() else []
        try:
            return sorted(Path(p).name for p in self.fs.ls(folder, detail=False))
        except FileNotFoundError:
            return []


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")


def read_side(root: Path, name: str | None) -> Side:
    """The side ``name`` (a revision; None: the workspace). Its reports/metrics.json must exist
    and be a JSON object (else :class:`BadInput`); the rest is read where it can be, and what is
    missing is listed."""
    commit = None if name is None else resolve(root, name)
    given_as_id = name is not None and all(c in "0123456789abcdef" for c in name.lower()) and commit.startswith(
        name.lower())
    label = WORKSPACE if commit is None else commit[:12] if given_as_id else f"{name} ({commit[:12]})"
    r = _Reader(root, commit)
    try:
        metrics = json.loads(r.read(paths.METRICS))
    except FileNotFoundError:
        raise BadInput(f"{label} has no {paths.METRICS}: run `dvc repro` there and commit it") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadInput(f"{label}: {paths.METRICS} is not JSON ({exc})") from None
    except Exception as exc:  # noqa: BLE001 (a DVC or git error reading the revision)
        raise BadInput(f"{label}: {paths.METRICS} cannot be read ({_why(exc)})") from None
    if not isinstance(metrics, dict):
        raise BadInput(f"{label}: {paths.METRICS} holds {type(metrics).__name__}, not a JSON object of metrics")
    side = Side(label, commit, metrics, reader=r)
    side.grid = _optional(r, paths.SAMPLE_GRID, side)
    for name_ in r.listdir(CURVES):
        if name_.endswith(".tsv"):
            raw = _optional(r, f"{CURVES}/{name_}", side)
            if raw is not None:
                try:
                    df = pd.read_csv(io.BytesIO(raw), sep="\t")
                except ValueError as exc:
                    side.missing.append(f"{CURVES}/{name_}: not a TSV ({exc})")
                    continue
                stem = name_[:-4]
                if "step" in df and stem in df:
                    side.curves[stem] = df[["step", stem]]
    raw = _optional(r, paths.FEATURES, side)
    if raw is not None:
        try:
            side.features = np.load(io.BytesIO(raw), allow_pickle=False)
        except ValueError as exc:
            side.missing.append(f"{paths.FEATURES}: not a .npy array ({exc})")
    return side


def _optional(r: _Reader, path: str, side: Side) -> bytes | None:
    try:
        return r.read(path)
    except Exception as exc:  # noqa: BLE001 (absent in git, not in the DVC cache, unreadable: the page says so)
        where = "" if side.commit is None else " (a DVC output: `dvc pull` or `dvc repro` puts it in the cache)"
        side.missing.append(f"{path}: {_why(exc)}{where if path == paths.FEATURES else ''}")
        return None
