"""Decoding and shaping: a loader's images (:mod:`dcgan.data.loaders`) to uint8 (N, C, S, S),
chunk by chunk (:func:`fitted_chunks`, what the prepare stage streams) or whole in memory
(:func:`load_dataset`, small sets and tests)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import numpy as np

from dcgan.data.encoded import UNREADABLE, RawDataset, decode_image

# torch loads where images are shaped, so that listing the loaders stays cheap
if TYPE_CHECKING:
    import torch


def to_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """uint8 (N, C, H, W) with C in {1, 3} -> ``channels`` (ITU-R 601 luma for RGB -> grey)."""
    import torch

    if x.shape[1] == channels:
        return x
    if channels == 3:
        return x.expand(-1, 3, -1, -1).contiguous()
    w = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (x.float() * w).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)


def fit_square(x: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (N, C, H, W) -> (N, C, size, size): center-crop to a square, antialiased resize.

    torchvision's ``center_crop`` and ``resize(antialias=True)`` as its v2 functional computes
    them on a float tensor, bit for bit (tested), with torch alone: importing torchvision would
    cost each prepare run 1.5 s."""
    import torch
    import torch.nn.functional as F

    h, w = x.shape[-2:]
    side = min(h, w)
    if h != w:  # torchvision's anchor: Python's round of half the margin
        top, left = int(round((h - side) / 2.0)), int(round((w - side) / 2.0))
        x = x[..., top:top + side, left:left + side]
    if side != size:
        x = F.interpolate(x.float(), size=[size, size], mode="bilinear", align_corners=False, antialias=True)
        x = x.round().clamp(0, 255).to(torch.uint8)
    return x


ARRAY_CHUNK = 4096
"""Images of an array dataset shaped per call (bounds the float copy that resize makes)."""
ITEM_CHUNK = 256
"""Encoded images decoded per task (a worker process's unit of work)."""


def fit_items(items: list[tuple[str, bytes | None]], channels: int, size: int
              ) -> tuple[np.ndarray, list[int], list[str]]:
    """Decode and shape a chunk of encoded images: (uint8 (k, channels, size, size), the
    positions in ``items`` that were kept, the names of the unreadable ones, which are skipped)."""
    import torch

    out, kept, skipped = [], [], []
    for i, (name, payload) in enumerate(items):
        try:
            im = decode_image(name, payload)
        except UNREADABLE:
            skipped.append(name)
            continue
        out.append(fit_square(to_channels(torch.from_numpy(im)[None], channels), size)[0].numpy())
        kept.append(i)
    fitted = np.stack(out) if out else np.empty((0, channels, size, size), np.uint8)
    return fitted, kept, skipped


def _batched(it, n: int) -> Iterator[list]:
    batch = []
    for x in it:
        batch.append(x)
        if len(batch) == n:
            yield batch
            batch = []
    if batch:
        yield batch


def fitted_chunks(raw: RawDataset, channels: int, size: int, pool_map: Callable | None = None
                  ) -> Iterator[tuple[np.ndarray, np.ndarray, int]]:
    """``(images, item indices, items consumed)`` chunk by chunk in item order: images uint8
    (k, channels, size, size), the indices (into ``raw.labels``) of the items they came from.
    Unreadable files or records are skipped and their names added to ``raw.skipped_files``.
    ``pool_map(fn, chunks)``: an ordered map over worker processes (default: in this process)."""
    import functools

    import torch

    if isinstance(raw.images, np.ndarray):
        for start in range(0, len(raw.images), ARRAY_CHUNK):
            chunk = torch.from_numpy(np.ascontiguousarray(raw.images[start:start + ARRAY_CHUNK]))
            yield (fit_square(to_channels(chunk, channels), size).numpy(),
                   np.arange(start, start + len(chunk), dtype=np.int64), len(chunk))
        return
    fn = functools.partial(fit_items, channels=channels, size=size)
    start = 0
    for fitted, kept, skipped, count in (pool_map or _map_counted)(fn, _batched(raw.images.items(), ITEM_CHUNK)):
        raw.skipped_files += skipped
        yield fitted, start + np.asarray(kept, np.int64), count
        start += count


def _map_counted(fn: Callable, chunks: Iterator[list]) -> Iterator[tuple]:
    for chunk in chunks:
        yield (*fn(chunk), len(chunk))
