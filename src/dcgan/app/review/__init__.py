"""``dcgan review BASE HEAD``: is HEAD's model better, worse or within the noise of BASE's?

It reads both revisions' reports/metrics.json, sample grid and training curves (and, where the
DVC cache holds them, both runs' generated features for the paired FID test), checks that both
were measured the same way, tests each ranked metric with the promotion gate's rule in both
directions (:mod:`.verdict`) and writes one page (:mod:`.page`): review.md, review.html beside
it and the pictures in ``review_files/``. Modules: :mod:`.sides` (reading a revision),
:mod:`.verdict` (the tests), :mod:`.page` (the renderer the retraining flow shares).
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from dcgan.app.retrain.gate import ALPHA, Comparison, PairedGain
from dcgan.app.retrain.paired import features_match, paired_fid_gain
from dcgan.app.retrain.rescore import diff_of
from dcgan.app.review.page import Link, Picture, curves_png, data_uri, render, to_html
from dcgan.app.review.sides import BadInput, Side, read_side
from dcgan.app.review.verdict import EXIT, Review, judge
from dcgan.core import files
from dcgan.metrics import registry

__all__ = ["BadInput", "EXIT", "Outcome", "Picture", "data_uri", "retrain_page", "review"]


@dataclass(frozen=True)
class Outcome:
    review: Review
    markdown: Path
    html: Path
    message: str
    """One line: the verdict and where the page is."""


def _paired(base: Side, head: Side, margin: float, resamples: int) -> tuple[tuple[PairedGain, PairedGain] | None, str]:
    """The paired FID test both ways, when both runs' features are at hand and reproduce their
    own metrics.json against one reference; else None and why."""
    if base.features is None or head.features is None:
        which = " and ".join(s.label for s in (base, head) if s.features is None)
        return None, f"FID tested with the standard errors: no generated features for {which}"
    reference = head.reference or base.reference
    if reference is None:
        return None, "FID tested with the standard errors: no evaluator reference.npz on either side"
    with tempfile.TemporaryDirectory(prefix="dcgan-review-") as tmp:
        ref = Path(tmp) / "reference.npz"
        ref.write_bytes(reference)
        for s in (base, head):
            if not features_match(s.features, s.metrics.get("fid"), ref, s.metrics.get("protocol.n_samples")):
                return None, (f"FID tested with the standard errors: {s.label}'s generated features do not reproduce "
                              "its metrics.json's FID (not from the same evaluate run)")
        def log(line: str) -> None:
            print(f"review: {line}", file=sys.stderr)
        up = paired_fid_gain(head.features, base.features, ref, margin, resamples, 0, log)
        down = paired_fid_gain(base.features, head.features, ref, margin, resamples, 0, log)
    if up is None or down is None:
        return None, "FID tested with the standard errors: the reference has no training features"
    return (up, down), f"FID tested with the paired bootstrap on all {up.n} generated images of each run"


def review(root: Path, base: str, head: str | None, out: Path, metric: str = "fid", alpha: float = ALPHA,
           margins: dict[str, float] | None = None, retrain_sd: dict[str, float] | None = None,
           resamples: int = 500) -> Outcome:
    """Review ``head`` (a revision; None: the workspace) against ``base``; write the page to
    ``out`` (markdown), ``out`` with .html, and the pictures in ``<out stem>_files/``.
    :class:`BadInput` for anything it cannot use."""
    if metric not in registry.gate_keys():
        raise BadInput(f"--metric {metric!r} is not a ranked metric with a standard error "
                       f"({', '.join(registry.gate_keys())})")
    if out.suffix != ".md":
        raise BadInput(f"-o {out}: the page is markdown, name it *.md (review.html is written beside it)")
    if not 0 < alpha < 0.5:
        raise BadInput(f"--alpha must be in (0, 0.5), got {alpha}")
    for name, table in (("--margin", margins or {}), ("--retrain-sd", retrain_sd or {})):
        for key, value in table.items():
            if key not in registry.gate_keys() or not value >= 0:
                raise BadInput(f"{name} {key}={value}: needs a metric of {', '.join(registry.gate_keys())} "
                               "and a value >= 0")
    margins = margins or {}
    a, b = read_side(root, base), read_side(root, head)
    diff = diff_of(a.metrics, b.metrics)
    paired, how = _paired(a, b, margins.get("fid", 0.0), resamples)
    notes = (how, *(f"{s.label}: {m}" for s in (a, b) for m in s.missing))
    rv = judge(diff, metric, alpha, margins, paired, retrain_sd, notes)
    folder = out.with_name(out.stem + "_files")

    def link(name: str, data: bytes) -> str:
        files.write_bytes(folder / name, data)
        return f"{folder.name}/{name}"

    grids = [Picture(f"{a.label}", "base_samples.png", a.grid), Picture(f"{b.label}", "head_samples.png", b.grid)]
    curves = Picture("training curves (dashed: base, solid: head)", "curves.png",
                     curves_png({f"base {a.label}": a.curves, f"head {b.label}": b.curves}))
    title = f"Review: {b.label} against {a.label}"
    md = render(title, rv, diff, a.label, b.label, grids, curves, link)
    files.write_text(out, md)
    page = files.write_text(out.with_suffix(".html"), to_html(md, title))
    message = f"{rv.gated.word}: {rv.gated.reason} (page: {out}, {page.name})"
    return Outcome(rv, out, page, message)


def retrain_page(name: str, overrides: dict[str, str], diff: dict, comparison: Comparison, pictures: list[Picture],
                 link: Link = data_uri, paired: tuple[PairedGain, PairedGain] | None = None,
                 alpha: float = ALPHA) -> str:
    """The retraining flow's metrics diff (champion against candidate) on the review's page: the
    same verdicts, tests and tables, under the gate's decision. ``link``: ``data_uri`` for the
    Prefect UI."""
    rv = judge(diff, comparison.metric, alpha, {comparison.metric: comparison.min_improvement}, paired)
    decision = "promoted" if comparison.promote else "not promoted"
    lead = [f"Gate: **{decision}**. {comparison.reason}", "",
            "Overrides: " + (", ".join(f"`{k}={v}`" for k, v in overrides.items()) or "none")]
    return render(f"Retrain `{name}`: {decision}", rv, diff, "champion", f"candidate {name}", pictures, None,
                  link, lead)
