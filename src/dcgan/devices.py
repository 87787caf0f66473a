"""Device choice: ``base.device`` to a torch.device, refusing one that is not there."""

from __future__ import annotations

import torch

from dcgan.errors import UserError


def pick_device(name: str) -> torch.device:
    """``auto`` picks cuda > mps > cpu; an explicit device must exist."""
    has_mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if has_mps else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("base.device is 'cuda' but no CUDA device is available (use auto or cpu)")
    if name == "mps" and not has_mps:
        raise UserError("base.device is 'mps' but MPS is not available (use auto or cpu)")
    return torch.device(name)
