"""``dcgan review BASE HEAD``: is HEAD's model better, worse or within the noise of BASE's?

It reads both revisions' reports/metrics.json, sample grid and training curves (and, where the
DVC cache holds them, both runs' generated features for the paired FID test), checks that both
were measured the same way, tests each ranked metric with the promotion gate's rule in both
directions (:mod:`.verdict`) and writes one page (:mod:`.page`): review.md, review.html beside
it and the pictures in ``review_files/``. Modules: :mod:`.sides` (reading a revision),
:mod:`.verdict` (the tests), :mod:`.page` (the renderer the retraining flow shares).
"""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from dcgan.app import paths
from dcgan.app.retrain.gate import ALPHA, Comparison, PairedGain
from dcgan.app.retrain.paired import features_match, paired_fid_gain
from dcgan.app.retrain.rescore import diff_of
from dcgan.app.review.page import Link, Picture, curves_png, data_uri, render, to_html
from dcgan.app.review.sides import BadInput, Side, read_side
from dcgan.app.review.verdict import EXIT, Review, judge
from dcgan.core import files
from dcgan.metrics import registry

__all__ = ["BadInput", "EXIT", "NOISE_FILE", "NOISE_PROTOCOL", "Outcome", "Picture", "data_uri", "retrain_noise",
           "retrain_page", "review"]

NOISE_FILE = str(PurePosixPath(paths.METRICS).with_name("review_noise.json"))
"""benchmarks/review_noise.py's measurement: each ranked metric's spread over unchanged retrains."""
NOISE_PROTOCOL = ("extractor", "n_reference", "n_samples", "feature_dim", "reference_split")
"""What must match between that measurement and the head's run for its spread to apply (the
same data, scored the same way)."""


@dataclass(frozen=True)
class Outcome:
    review: Review
    markdown: Path
    html: Path
    message: str
    """One line: the verdict and where the page is."""


def _paired(base: Side, head: Side, margin: float, resamples: int, alpha: float,
            one_way: bool) -> tuple[tuple[PairedGain, PairedGain | None] | None, str]:
    """The paired FID test, when both runs' features are at hand and reproduce their own
    metrics.json against one reference; else None and why. It tests "better" first, and "worse"
    only where "better" was not shown (and ``one_way`` is False): each way costs ``resamples``
    FIDs of both sets."""
    if base.features is None or head.features is None:
        which = " and ".join(s.label for s in (base, head) if s.features is None)
        return None, f"FID tested with the standard errors: no generated features for {which}"
    if base.metrics.get("fid") == head.metrics.get("fid") and np.array_equal(base.features, head.features):
        return None, "the same generated features on both sides: nothing to test"
    with tempfile.TemporaryDirectory(prefix="dcgan-review-") as tmp:
        ref = head.reference(Path(tmp)) or base.reference(Path(tmp))
        if ref is None:
            return None, "FID tested with the standard errors: no evaluator reference.npz on either side"
        for s in (base, head):
            if not features_match(s.features, s.metrics.get("fid"), ref, s.metrics.get("protocol.n_samples")):
                return None, (f"FID tested with the standard errors: {s.label}'s generated features do not reproduce "
                              "its metrics.json's FID (not from the same evaluate run)")
        def log(line: str) -> None:
            print(f"review: {line}", file=sys.stderr)
        up = paired_fid_gain(head.features, base.features, ref, margin, resamples, 0, log)
        down = None
        if up is not None and up.p_value >= alpha and not one_way:
            down = paired_fid_gain(base.features, head.features, ref, margin, resamples, 1, log)
    if up is None:
        return None, "FID tested with the standard errors: the reference has no training features"
    return (up, down), f"FID tested with the paired bootstrap on all {up.n} generated images of each run"


def retrain_noise(path: Path, head: dict) -> tuple[dict[str, float], str]:
    """The retrain spread in ``path`` (benchmarks/review_noise.py's output) where it was measured
    on runs like ``head`` (its metrics.json), else nothing; and a note saying which."""
    if not path.is_file():
        return {}, (f"no retrain noise ({path} is absent): an unchanged retrain may read as better or worse; "
                    "benchmarks/review_noise.py measures it")
    try:
        data = json.loads(path.read_text())
        spread = {k: float(v) for k, v in data["retrain_sd"].items() if k in registry.gate_keys()}
        measured = data["protocol"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BadInput(f"{path} is not benchmarks/review_noise.py's output ({type(exc).__name__}: {exc})") from None
    differ = [k for k in NOISE_PROTOCOL if measured.get(k) != head.get(f"protocol.{k}")]
    if differ:
        return {}, (f"the retrain noise in {path} was measured on other runs ({', '.join(differ)} differ): not used; "
                    "rerun benchmarks/review_noise.py on this data")
    sds = ", ".join(f"{k} {v:.3g}" for k, v in spread.items())
    return spread, f"retrain noise from {path} ({len(data.get('runs', []))} retrains, {data.get('machine', '?')}): {sds}"


def review(root: Path, base: str, head: str | None, out: Path, metric: str = "fid", alpha: float = ALPHA,
           margins: dict[str, float] | None = None, retrain_sd: dict[str, float] | None = None,
           resamples: int = 200, noise_file: Path | None = None) -> Outcome:
    """Review ``head`` (a revision; None: the workspace) against ``base``; write the page to
    ``out`` (markdown), ``out`` with .html, and the pictures in ``<out stem>_files/``.
    ``noise_file``: the retrain noise (:func:`retrain_noise`); ``retrain_sd`` overrides it per
    metric. :class:`BadInput` for anything it cannot use."""
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
    spread, said = retrain_noise(noise_file, b.metrics) if noise_file is not None else ({}, "")
    retrain_sd = {**spread, **(retrain_sd or {})}
    diff = diff_of(a.metrics, b.metrics)
    paired, how = _paired(a, b, margins.get("fid", 0.0), resamples, alpha, bool(retrain_sd.get("fid")))
    notes = (how, *([said] if said else []), *(f"{s.label}: {m}" for s in (a, b) for m in s.missing))
    rv = judge(diff, metric, alpha, margins, paired, retrain_sd, notes)
    folder = out.with_name(out.stem + "_files")

    def link(name: str, data: bytes) -> str:
        files.write_bytes(folder / name, data)
        return f"{folder.name}/{name}"

    grids = [Picture(a.label, "base_samples.png", a.grid), Picture(b.label, "head_samples.png", b.grid)]
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
