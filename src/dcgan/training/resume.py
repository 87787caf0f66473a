"""Whether and from where a run resumes (:func:`resume_point`, the one place that decides), and
the checkpoint's content (:func:`snapshot`, :func:`restore`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from dcgan.core.errors import SettingError
from dcgan.training import checkpoint as ckpt
from dcgan.training.ada import AdaPipe
from dcgan.training.distributed import DistEnv
from dcgan.training.nets import Nets
from dcgan.training.position import BestGenerator, Position

Fingerprint = str | dict[str, object]
"""What identifies a run for resuming: :func:`checkpoint.fingerprint` (or a plain id in tests)."""


def resume_point(ckpt_dir: str | Path, fingerprint: Fingerprint, dist: DistEnv, device: torch.device,
                 log: Callable[[str], None]) -> dict[str, Any] | None:
    """The newest checkpoint of this very run (same fingerprint), or None to train from scratch.
    One of another run is reported and cleared; one saved by another process count is refused.
    Every rank calls it (a barrier: all have read before rank 0 may clear)."""
    state, path = ckpt.load_latest(ckpt_dir, map_location=device, warn=log)
    dist.barrier()
    if state is None:
        return None
    if state["fingerprint"] != ckpt.fingerprint_id(fingerprint):
        changed = ckpt.changed_keys(state.get("fingerprint_inputs"), fingerprint)
        log(f"checkpoint {path} is from a run with other training params, data or code "
            f"(changed: {changed}); training from scratch")
        if dist.is_main:
            ckpt.clear(ckpt_dir)
        return None
    saved_by = int(state.get("world_size", 1))
    if saved_by != dist.world_size:
        raise SettingError("nproc", f"is {dist.world_size}, but checkpoint {path} was saved by {saved_by} "
                                    f"processes and this run has {dist.world_size}: resume with {{nproc}}: "
                                    f"{saved_by} (the checkpoint is left as it is)")
    state["path"] = str(path)
    return state


def snapshot(nets: Nets, pos: Position, best: BestGenerator, fingerprint: Fingerprint, world_size: int,
             finished: bool, ada: AdaPipe | None = None) -> dict[str, Any]:
    return {
        "fingerprint": ckpt.fingerprint_id(fingerprint),
        **({"fingerprint_inputs": fingerprint} if isinstance(fingerprint, dict) else {}),
        "world_size": world_size, **pos.state_dict(), "finished": finished,
        **nets.state_dict(), **best.state_dict(),
        **({"ada": ada.state_dict()} if ada is not None else {}),
    }


def restore(state: dict[str, Any], nets: Nets, pos: Position, best: BestGenerator,
            ada: AdaPipe | None = None) -> None:
    """The reverse of :func:`snapshot`."""
    nets.load_state_dict(state)
    pos.load_state_dict(state)
    best.load_state_dict(state)
    if ada is not None:
        if "ada" not in state:
            raise SettingError("ada", f"is on, but checkpoint {state.get('path', '')} has no ADA state (p)")
        ada.load_state_dict(state["ada"])
