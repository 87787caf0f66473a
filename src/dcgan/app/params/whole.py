"""params.yaml as a whole: every section (the validate stage, the report, the CLI and tests read
it all; a stage reads only its own sections, :func:`dcgan.app.params.typed.load_sections`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dcgan.app.params.augment import AugmentParams
from dcgan.app.params.base import BaseParams
from dcgan.app.params.evaluate import EvaluateParams
from dcgan.app.params.evaluator import EvaluatorParams
from dcgan.app.params.prepare import PrepareParams
from dcgan.app.params.sample import SampleParams
from dcgan.app.params.train import TrainParams
from dcgan.app.params.typed import parse_sections, read_yaml, sections_of
from dcgan.core.errors import ConfigError


@dataclass(frozen=True)
class Params:
    """All of params.yaml, one frozen object per section."""

    base: BaseParams
    prepare: PrepareParams
    augment: AugmentParams
    evaluator: EvaluatorParams
    train: TrainParams
    sample: SampleParams
    evaluate: EvaluateParams

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return dataclasses.asdict(self)


SECTIONS: dict[str, type] = sections_of(Params)
"""Every section's class, by name, in params.yaml's order."""


MOVED = {
    "evaluate.extractor": "evaluator.extractor",
    "evaluate.inception_weights": "evaluator.inception_weights",
    "evaluate.inception_download": "evaluator.inception_download",
    "evaluate.reference_max_images": "evaluator.reference_max_images",
    "evaluate.generator": "sample.generator",
}
"""Keys of an older params.yaml layout and where each lives now (each stage reads its own section)."""
NEW_KEYS = {"evaluator.feature_batch_size": "the evaluator's feature-extraction batch (evaluate.batch_size before)"}


def _has(raw: dict, dotted: str) -> bool:
    section, key = dotted.split(".")
    return isinstance(raw.get(section), dict) and key in raw[section]


def check_layout(raw: dict) -> None:
    """A params.yaml written for the old layout: one line saying which key moved where."""
    old = [k for k in MOVED if _has(raw, k)]
    if old:
        moves = ", ".join(f"{k} -> {MOVED[k]}" for k in old)
        new = ", ".join(f"{k} ({why})" for k, why in NEW_KEYS.items() if not _has(raw, k))
        raise ConfigError(f"params.yaml has the old layout; move {moves}" + (f" and add {new}" if new else ""))


def parse_params(raw: Any) -> Params:
    """Validate a whole params mapping (as read from params.yaml)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"params must be a mapping of sections, got {type(raw).__name__}")
    check_layout(raw)
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"{unknown[0]} is not a known params section (known: {', '.join(SECTIONS)})")
    return parse_sections(raw, Params)


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate params.yaml; every problem raises ConfigError naming it."""
    return parse_params(read_yaml(path))
