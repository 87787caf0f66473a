"""params.yaml's ``evaluator`` section, read by the evaluator stage (the extractor's keys by train and evaluate too)."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from dcgan.app.params.typed import Bool, Count, Int, Positive, Section, Str, at_least, section
from dcgan.metrics.names import RESIZE_MODES


@section
class EvaluatorParams(Section):
    """The feature extractor behind FID, KID, IS and precision/recall, and the reference features
    of the prepared images: the domain classifier trained here (offline default) or FID Inception-v3."""

    SECTION: ClassVar[str] = "evaluator"

    extractor: Literal["classifier", "inception"]
    """classifier: the domain net trained by this stage (offline default); inception: FID Inception-v3."""
    inception_weights: Str
    """Path of the FID Inception-v3 weights (pt_inception-2015-12-05-6726825d.pth) for extractor: inception."""
    resize: Literal[RESIZE_MODES]
    """How Inception's 299×299 input is made: legacy (torch-fidelity/pytorch-fid's bilinear, as most
    papers) or clean (clean-fid's anti-aliased PIL bicubic); the two FIDs are not comparable
    (recorded in the protocol). The classifier reads images at their own size."""
    inception_download: Bool
    """With extractor: inception, download the weights once from torch-fidelity's published URL
    into inception_weights when the file is missing (sha256 checked); off: never touch the network."""
    feature_batch_size: Count
    """Images per batch when extracting features (the reference here; in-training FID too)."""
    reference_max_images: Annotated[Int, at_least(2)]
    """Use at most this many images of each split (a seeded subset) for the reference statistics
    and features; 50,000 is the usual FID protocol."""
    epochs: Count
    """Training epochs of the classifier."""
    batch_size: Count
    """The classifier's training mini-batch size."""
    lr: Positive
    """Adam learning rate (the classifier)."""
    width: Count
    """Channels of the classifier's first conv layer (doubles per block)."""
    feature_dim: Count
    """Size of the classifier's penultimate layer (its embedding), the last part of its
    multi-scale features."""
    seed: Annotated[Int, at_least(0)]
    """Seed of the classifier's training and of the reference subset: its own, not base.seed, so
    that the instrument holds still when a model is retrained with another seed."""
    device: Literal["auto", "cpu", "cuda", "mps"]
    """Where this stage builds the extractor and the reference: cpu (default) builds the same
    instrument whatever base.device trains on; auto/cuda/mps are faster for Inception on large sets,
    and give another instrument than a CPU build."""
