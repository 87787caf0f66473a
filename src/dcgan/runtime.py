"""Device choice and seed derivation shared by the stages."""

from __future__ import annotations

import hashlib

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


def derive_seed(seed: int, *parts: object) -> int:
    """A 63-bit seed from the master seed and a purpose/step tuple, stable across runs.

    Each random stream (data order of epoch e, noise of step s, ...) gets its own seed, so a
    resumed run redraws exactly what an uninterrupted run drew, with no RNG state to carry.
    """
    key = "/".join(str(p) for p in (seed, *parts)).encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "little") >> 1


def generator_for(seed: int, *parts: object) -> torch.Generator:
    """A CPU torch.Generator seeded by :func:`derive_seed`."""
    g = torch.Generator()
    g.manual_seed(derive_seed(seed, *parts))
    return g
