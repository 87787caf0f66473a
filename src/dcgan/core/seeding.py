"""Seeds: every random stream derived from the master seed and a purpose, stable across runs."""

from __future__ import annotations

import hashlib

import torch


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
