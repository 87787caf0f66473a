"""Pixel conversions, all in one place: uint8 [0, 255] <-> float [-1, 1] (G's tanh range), and
[-1, 1] <-> per-channel standardised values ((x01 - mean) / std) for ``normalize: meanstd``."""

from __future__ import annotations

import functools

import numpy as np
import torch


def to_unit(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float32 in [-1, 1], the range of G's Tanh output."""
    x = torch.as_tensor(images)
    return x.float().div_(127.5).sub_(1.0)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """float in [-1, 1] -> uint8 [0, 255], rounded and clamped."""
    return x.detach().float().add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8)


def to_01(images: np.ndarray) -> np.ndarray:
    """uint8 images -> float64 in [0, 1] (what PSNR and SSIM compare)."""
    return images.astype(np.float64) / 255.0


@functools.lru_cache(maxsize=16)
def affine(mean: tuple[float, ...], std: tuple[float, ...],
           device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift) of shape (1, C, 1, 1) with standardised = scale * x + shift for x in [-1, 1]:
    ((x + 1) / 2 - mean) / std; computed on the CPU, kept on ``device``. Cached per device (the
    train step maps every batch, and a captured step may not copy from the host); the tensors
    are shared, so nothing may change them in place."""
    if device is not None and device.type != "cpu":
        return tuple(t.to(device) for t in affine(mean, std))  # type: ignore[return-value]
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return 0.5 / s, (0.5 - m) / s


def standardise(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """[-1, 1] -> (x01 - mean) / std per channel."""
    scale, shift = affine(mean, std, x.device)
    return x * scale + shift


def unstandardise(y: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """The inverse of :func:`standardise`: standardised values -> [-1, 1] (float32)."""
    scale, shift = affine(mean, std, y.device)
    return (y.float() - shift) / scale
