"""Resumable training checkpoints: atomic, last two kept, loaded without unpickling code.

A checkpoint is a dict of tensors, numbers and strings written with torch.save and read with
``torch.load(weights_only=True)``, which refuses arbitrary Python objects. It carries a
fingerprint of everything that shapes training (train params, seed, data, code), so a
checkpoint left by a run with other params is recognised and not resumed.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from dcgan.core import files, kill_points

_NAME = re.compile(r"^ckpt-(\d{9})\.pt$")
KEEP = 2


def code_digest() -> str:
    """sha256 over the dcgan package's source files (what the train stage runs)."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for f in sorted(root.rglob("*.py")):
        h.update(str(f.relative_to(root)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def fingerprint(train_params: dict[str, Any], seed: int, data_digest: str,
                **extra: object) -> dict[str, object]:
    """What shapes a training run, key by key (``train.lr``, ``seed``, ``data`` (the training
    file's sha256, e.g. from :func:`dcgan.core.files.recorded_digest`), ``code``, and ``extra``
    such as the FID extractor): resuming is only valid when all of it matches. Checkpoints
    keep it, so a refused resume can say which keys changed."""
    flat = {f"train.{k}": list(v) if isinstance(v, tuple) else v for k, v in train_params.items()}
    return {**flat, "seed": seed, "data": data_digest, "code": code_digest(), **extra}


def fingerprint_id(fp: str | dict[str, object]) -> str:
    """A short hash of a fingerprint (a plain string, e.g. in tests, is its own id)."""
    if isinstance(fp, str):
        return fp
    return hashlib.sha256(json.dumps(fp, sort_keys=True, default=list).encode()).hexdigest()[:16]


def changed_keys(old: dict[str, object] | None, new: str | dict[str, object]) -> str:
    """``train.lr 0.0002 -> 0.001, code`` for what differs between two fingerprints."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return "training params, data or code"
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if a != b:
            digest_like = key in ("data", "code") or key.endswith("_id")
            out.append(key if digest_like else f"{key} {a!r} -> {b!r}")
    return ", ".join(out) or "nothing that is recorded"


def list_checkpoints(folder: str | Path) -> list[Path]:
    """Checkpoint files in ``folder``, newest (highest step) first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if _NAME.match(p.name)]
    return sorted(found, key=lambda p: int(_NAME.match(p.name).group(1)), reverse=True)


def save_checkpoint(folder: str | Path, step: int, state: dict[str, Any]) -> Path:
    """Write ckpt-<step>.pt atomically, then drop all but the newest KEEP checkpoints."""
    folder = Path(folder)
    path = folder / f"ckpt-{step:09d}.pt"
    if kill_points.armed("kill_in_checkpoint", step):  # test seam: die with half a file written
        def write(fh):
            buf = io.BytesIO()
            torch.save(state, buf)
            fh.write(buf.getvalue()[: len(buf.getvalue()) // 2])
            fh.flush()
            kill_points.kill()
        files.atomic_write(path, write)
    else:
        files.atomic_write(path, lambda fh: torch.save(state, fh))
    for old in list_checkpoints(folder)[KEEP:]:
        old.unlink(missing_ok=True)
    return path


def load_latest(folder: str | Path, map_location: str | torch.device = "cpu",
                warn=print) -> tuple[dict[str, Any] | None, Path | None]:
    """The newest checkpoint that loads; corrupt ones are named via ``warn`` and skipped.

    Temporary files of a write that was killed midway (never renamed into place) are removed.
    """
    if Path(folder).is_dir():
        for stale in Path(folder).glob(".ckpt-*.tmp"):
            warn(f"removing {stale}, an unfinished checkpoint write of an interrupted run")
            stale.unlink(missing_ok=True)
    for path in list_checkpoints(folder):
        try:
            state = torch.load(path, map_location=map_location, weights_only=True)
        except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            warn(f"checkpoint {path} is corrupt or unsafe, skipping it: {first}")
            continue
        if not isinstance(state, dict) or "fingerprint" not in state:
            warn(f"checkpoint {path} is not a dcgan training checkpoint, skipping it")
            continue
        return state, path
    return None, None


def clear(folder: str | Path) -> None:
    for p in list_checkpoints(folder):
        p.unlink(missing_ok=True)
