"""The standard FID Inception-v3 (TF 2015-12-05 weights) through torch-fidelity.

By default the weights are never downloaded: the file must be at ``evaluator.inception_weights``.
With ``evaluator.inception_download: true`` a missing file is fetched once from torch-fidelity's
published URL (:func:`download_weights`) and kept only if its sha256 starts with the published
id. Before torch-fidelity loads the file (it unpickles without restrictions), it is opened with
``torch.load(weights_only=True)``, which refuses anything but tensors and containers.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from dcgan.core.errors import SettingError, UserError
from dcgan.core.files import file_digest
from dcgan.core.progress import progress
from dcgan.metrics.names import RESIZE_MODES
from dcgan.metrics.resize import clean_resize

WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth"
OFFICIAL_SHA256_PREFIX = "6726825d"


def download_weights(path: str | Path, url: str | None = None, expected_prefix: str | None = None,
                     timeout_s: float = 60.0, log=print) -> Path:
    """Fetch the weights into ``path`` once (nothing happens when the file is there). The file is
    written beside ``path`` and renamed into place only when its sha256 starts with
    ``expected_prefix`` (the published id); otherwise it is deleted and the run stops."""
    import hashlib
    import urllib.error
    import urllib.request

    path = Path(path)
    url = url or WEIGHTS_URL
    expected = expected_prefix or OFFICIAL_SHA256_PREFIX
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    log(f"inception: downloading {url} -> {path}")
    h = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp, open(part, "wb") as fh:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with progress(total=total, desc="inception weights", unit="B", unit_scale=True) as bar:
                while chunk := resp.read(1 << 20):
                    fh.write(chunk)
                    h.update(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        part.unlink(missing_ok=True)
        reason = getattr(exc, "reason", None) or exc
        raise SettingError("inception_download", f"is on, but the Inception weights could not be downloaded "
                                                 f"from {url} ({reason}): download the file by hand and put it "
                                                 f"at {path}, or set {{extractor}}: classifier (offline)") from None
    digest = h.hexdigest()
    if not digest.startswith(expected):
        part.unlink(missing_ok=True)
        raise UserError(f"the file downloaded from {url} has sha256 {digest[:16]}..., not the published "
                        f"{expected}...: it was deleted; nothing was written to {path}")
    part.replace(path)
    log(f"inception: {path} verified (sha256 {digest[:16]}...)")
    return path


def check_weights(path: str | Path) -> str:
    """Fail clearly if the weights file is missing or unsafe; return its sha256."""
    path = Path(path)
    if not path.is_file():
        raise SettingError(
            "inception_weights", f"{path}: the Inception weights are not there, and they are never downloaded "
                                 f"unless {{inception_download}} is true: set it, or download {WEIGHTS_NAME} "
                                 f"from {WEIGHTS_URL} and put it there, or set {{extractor}}: classifier"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"Inception weights {path} are corrupt or unsafe to load: {first}") from None
    if not isinstance(state, dict) or "fc.weight" not in state:
        raise UserError(f"Inception weights {path} are not an Inception-v3 state dict")
    return file_digest(path)


def forward_resized(net, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """torch-fidelity's FeatureExtractorInceptionV3 forward from a float (N, 3, 299, 299) input
    in [0, 255] (already resized): its layers in its order, (pool3 2048, logits_unbiased).

    Its own forward takes uint8 only and resizes inside; this is the rest of it, layer for
    layer (the tests check it against torch-fidelity's forward bit for bit)."""
    x = x.to(net.feature_extractor_internal_dtype)
    x = (x - 128) / 128
    for name in ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "MaxPool_1", "Conv2d_3b_1x1",
                 "Conv2d_4a_3x3", "MaxPool_2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b",
                 "Mixed_6c", "Mixed_6d", "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c", "AvgPool"):
        x = getattr(net, name)(x)
    pool = torch.flatten(x, 1)
    return pool.to(torch.float32), pool.mm(net.fc.weight.T).to(torch.float32)


class InceptionExtractor:
    """uint8 images (N, 1 or 3, H, W) -> (pool3 features (N, 2048), logits_unbiased (N, 1008)).

    Grey images are repeated to 3 channels. ``resize`` legacy: torch-fidelity resizes to
    299x299 the way the TF reference does (bilinear, TF1 semantics); clean: clean-fid's
    anti-aliased PIL bicubic (:mod:`dcgan.metrics.resize`). Then (x - 128) / 128.
    """

    kind = "inception"
    feature_dim = 2048

    def __init__(self, weights: str | Path, device: torch.device, batch_size: int = 64,
                 download: bool = False, resize: str = "legacy"):
        if resize not in RESIZE_MODES:
            raise ValueError(f"resize must be one of {', '.join(RESIZE_MODES)}, got {resize!r}")
        self.resize = resize
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        if download:
            download_weights(weights)
        sha = check_weights(weights)
        official = sha.startswith(OFFICIAL_SHA256_PREFIX)
        self.id = (f"inception-v3-2015-12-05:{sha[:12]}" + ("" if official else ":unofficial")
                   + ("" if resize == "legacy" else f":{resize}"))
        self.official = official
        try:
            self.net = FeatureExtractorInceptionV3(
                "inception-v3-compat", ["2048", "logits_unbiased"],
                feature_extractor_weights_path=str(weights),
            ).to(device).eval()
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0]
            raise UserError(f"Inception weights {weights} do not fit Inception-v3: {first}") from None
        self.device, self.batch_size = device, batch_size

    @torch.inference_mode()
    def __call__(self, images, desc: str = "inception") -> tuple[np.ndarray, np.ndarray]:
        """uint8 images (an array, or rows read on demand) -> float32 (features, logits)."""
        n = len(images)
        feats = np.empty((n, self.feature_dim), np.float32)
        logits = np.empty((n, 1008), np.float32)
        for start in progress(range(0, n, self.batch_size), desc=desc, unit="batch",
                              leave=False, disable=n < 4 * self.batch_size):
            batch = np.asarray(images[start:start + self.batch_size])
            if self.resize == "clean":  # on the CPU, as clean-fid does, then the float image
                x = torch.from_numpy(clean_resize(batch)).to(self.device)
                x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
                f, lg = forward_resized(self.net, x)
            else:
                x = torch.from_numpy(batch).to(self.device)
                x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
                f, lg = self.net(x)
            feats[start:start + len(x)] = f.float().cpu().numpy()
            logits[start:start + len(x)] = lg.float().cpu().numpy()
        return feats, logits
