"""Grey or colour: what the pixels are, not how they are stored. The recipes for the two kinds
differ (the train section's ``auto`` keys, dcgan.app.recipe; ``augment.copies: auto``)."""

from __future__ import annotations

import numpy as np

KIND_SAMPLE = 1024
"""Images (evenly spaced over the set) that :func:`data_kind` reads to tell grey from colour."""


def data_kind(images) -> tuple[str, str]:
    """(grey or colour, why) for uint8 images (N, C, H, W), an array or a memmap: one channel is
    grey; three channels are grey too when every sampled image has R = G = B (grey images stored
    as RGB), so the recipe follows what the pixels are, not how they are stored."""
    n, c = images.shape[0], images.shape[1]
    if c == 1:
        return "grey", "1 channel"
    picks = np.unique(np.linspace(0, n - 1, min(n, KIND_SAMPLE)).round().astype(np.int64)) if n else []
    for i in picks:
        x = np.asarray(images[int(i)])
        if not ((x[0] == x[1]).all() and (x[1] == x[2]).all()):
            return "colour", f"{c} channels"
    return "grey", f"{c} channels, but R = G = B in every one of {len(picks)} images read: grey stored as RGB"
