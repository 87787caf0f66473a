"""How images reach the Inception network's 299×299 input (``evaluator.resize``).

- ``legacy``: torch-fidelity's bilinear resize with TensorFlow 1.x semantics, inside the
  network, on the uint8 images (what torch-fidelity, pytorch-fid and the TTUR code compare).
- ``clean``: clean-fid's resize (Parmar et al. 2022, "On Aliased Resizing and Surprising
  Subtleties in GAN Evaluation"): each channel of the uint8 image as written to disk, as a
  float32 PIL image, resized with PIL's anti-aliased bicubic filter and clipped to [0, 255],
  kept in float (not rounded back to uint8). Equal to ``cleanfid.resize.make_resizer("PIL",
  False, "bicubic", (299, 299))``, which the tests check.

The two give different FIDs for the same images: compare a number only with numbers made the
same way (the protocol records ``resize``; the promotion gate refuses to compare across it).
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def clean_resize(images: np.ndarray, size: int = 299) -> np.ndarray:
    """uint8 (N, C, H, W) -> float32 (N, C, size, size), clean-fid's PIL bicubic per channel."""
    x = np.asarray(images)
    if x.dtype != np.uint8 or x.ndim != 4:
        raise ValueError(f"clean resize takes uint8 images (N, C, H, W), got {x.dtype} {x.shape}")
    out = np.empty((x.shape[0], x.shape[1], size, size), np.float32)
    for i in range(x.shape[0]):
        for c in range(x.shape[1]):
            im = Image.fromarray(x[i, c].astype(np.float32), mode="F")
            out[i, c] = np.asarray(im.resize((size, size), resample=Image.BICUBIC)).clip(0, 255)
    return out
