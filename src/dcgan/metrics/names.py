"""Names that the feature extractors accept, as data (no imports): params validation reads them
here without loading the extractors' code, which checks its input against the same list. Kept
apart from the metric catalogue (:mod:`dcgan.metrics.registry`): the evaluator and train stages
import this, so an edit to the catalogue does not rerun them."""

RESIZE_MODES: tuple[str, ...] = ("legacy", "clean")
"""``evaluator.resize``: how images reach the Inception network's input
(:mod:`dcgan.metrics.resize`); the protocol records it."""
