"""The review page, one renderer for ``dcgan review`` and the retraining flow's metrics diff.

A page is markdown: the verdict line first, the protocol check, each ranked metric's test, both
sample grids side by side, the training curves of both runs in one picture, and every metric
beside its floor. Pictures are handed to ``link``, which says where the page finds them: files
beside review.md (a pull-request comment, whose images CML uploads, and review.html), or ``data:``
URIs (the Prefect UI, which shows no local file).
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from dcgan.app.retrain.gate import is_number
from dcgan.app.review.verdict import Review
from dcgan.metrics import registry

Link = Callable[[str, bytes], str]
"""(file name, PNG bytes) -> the URL the page uses for that picture."""


@dataclass(frozen=True)
class Picture:
    label: str
    name: str
    """A file name for it (``base_samples.png``)."""
    data: bytes | None


def data_uri(name: str, data: bytes) -> str:
    """A picture inline, for pages read where no file beside them can be (the Prefect UI)."""
    return "data:image/png;base64," + base64.b64encode(data).decode()


def cell(x: object) -> str:
    return f"{x:.4g}" if is_number(x) else ("—" if x is None else str(x))


def p_cell(p: float | None) -> str:
    return "—" if p is None else "< 0.001" if p < 0.001 else f"{p:.2g}"


def verdict_line(review: Review) -> str:
    """The first line: the gated metric's verdict, then the other ranked metrics'."""
    g = review.gated
    others = ", ".join(f"{v.metric} **{v.word}**" for v in review.verdicts[1:])
    return f"**{g.word.upper()}** on {g.metric} (the gated metric). Others: {others or 'none'}."


def protocol_section(review: Review, diff: dict) -> list[str]:
    if review.mismatch:
        return ["## Protocol: not comparable", "",
                "The runs were measured differently, so no number is compared. Keys that differ:", "",
                *[f"- `{m}`" for m in review.mismatch], "",
                "Rebuild the base with the head's evaluator and evaluate settings (`dvc repro`) to compare them.", ""]
    keys = ("extractor_id", "reference_id", "metric_code", "n_samples")
    same = ", ".join(f"{k} `{diff.get(f'protocol.{k}', {}).get('new')}`" for k in keys)
    return ["## Protocol", "", f"Same measurement on both sides ({same}).", ""]


def tests_table(review: Review, base: str, head: str) -> list[str]:
    lines = [f"| metric | verdict | {base} | {head} | gain (better > 0) | 95% CI | p better | p worse | noise |",
             "|---|---|---|---|---|---|---|---|---|"]
    for v in review.verdicts:
        ci = f"{v.low:+.3g} to {v.high:+.3g}" if v.low is not None else "—"
        test = v.test or v.reason
        lines.append(f"| {v.metric} ({v.direction} is better) | **{v.word}** | {cell(v.old)} | {cell(v.new)} | "
                     f"{'—' if v.gain is None else f'{v.gain + 0.0:+.4g}'} | {ci} | {p_cell(v.p_better)} | "
                     f"{p_cell(v.p_worse)} | {test} |")
    return lines + [""]


def pictures_row(pictures: list[Picture], link: Link) -> list[str]:
    head = "| " + " | ".join(p.label for p in pictures) + " |"
    cells = [f"![{p.label}]({link(p.name, p.data)})" if p.data else f"({p.label}: no picture)" for p in pictures]
    return [head, "|" + "---|" * len(pictures), "| " + " | ".join(cells) + " |", ""]


def metrics_table(diff: dict, base: str, head: str, gated: str) -> list[str]:
    """Every metric, both sides, the change, and each side's floor (the same metric for held-out
    real images: the best a model can reach)."""
    keys = [k for k in diff if not k.startswith("protocol.") and not k.endswith(("_floor", "_se", "_ci_low",
                                                                                 "_ci_high"))]
    lines = [f"| metric | {base} | {head} | change | floor ({base}) | floor ({head}) |", "|---|---|---|---|---|---|"]
    for key in sorted(keys, key=lambda k: (k != gated, k)):
        row, floor = diff[key], diff.get(f"{key}_floor", {})
        mark = f"**{key}**" if key == gated else key
        lines.append(f"| {mark} | {cell(row.get('old'))} | {cell(row.get('new'))} | {cell(row.get('diff'))} | "
                     f"{cell(floor.get('old'))} | {cell(floor.get('new'))} |")
    return lines + ["", "The floor is the same metric for held-out real images: the best a model can reach.", ""]


def curves_png(curves: dict[str, dict[str, pd.DataFrame]]) -> bytes | None:
    """The in-training FID and the losses of every side (``{label: {name: DataFrame}}``) in one
    picture: one colour a side, FID on a log scale."""
    panels = [(n, t) for n, t in (("fid", "FID during training"), ("loss_d", "D loss"), ("loss_g", "G loss"))
              if any(n in c for c in curves.values())]
    if not panels:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.2), squeeze=False)
    for ax, (name, title) in zip(axes[0], panels, strict=True):
        for (label, c), style in zip(curves.items(), ("--", "-"), strict=False):
            if name in c:
                ax.plot(c[name]["step"], c[name][name], style, label=label, marker="o" if len(c[name]) < 30 else None)
        if name == "fid":
            ax.set_yscale("log")
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def render(title: str, review: Review, diff: dict, base: str, head: str, pictures: list[Picture],
           curves: Picture | None, link: Link, lead: list[str] = ()) -> str:
    """The page as markdown. ``lead``: lines under the verdict (the flow's promotion decision)."""
    lines = [f"# {title}", "", verdict_line(review), "", review.gated.reason, "", *lead]
    if lead:
        lines.append("")
    lines += protocol_section(review, diff)
    if not review.mismatch:
        lines += ["## Tests", "", *tests_table(review, base, head)]
    lines += ["## Samples", "", *pictures_row(pictures, link)]
    if curves is not None and curves.data:
        lines += ["## Training curves", "", f"![{curves.label}]({link(curves.name, curves.data)})", ""]
    lines += ["## Every metric", "", *metrics_table(diff, base, head, review.metric)]
    official = diff.get("protocol.weights_official", {})
    unofficial = [s for s, side in (("old", base), ("new", head)) if official.get(s) == 0]
    if unofficial:
        lines += [f"**Warning** ({' and '.join(dict((('old', base), ('new', head)))[s] for s in unofficial)}): "
                  f"{registry.UNOFFICIAL_WEIGHTS}", ""]
    if review.notes:
        lines += ["## Notes", "", *[f"- {n}" for n in review.notes], ""]
    return "\n".join(lines)


CSS = ("body{font-family:system-ui,sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem;line-height:1.4}"
       "table{border-collapse:collapse;margin:0.5rem 0}td,th{border:1px solid #ccc;padding:0.25rem 0.5rem;"
       "vertical-align:top}img{max-width:100%}code{background:#f4f4f4;padding:0 0.2rem}")


def to_html(markdown_text: str, title: str) -> str:
    """The same page as a standalone HTML document (its images at the same relative URLs)."""
    import markdown

    body = markdown.markdown(markdown_text, extensions=["tables"], output_format="html")
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head>\n<body>\n{body}\n</body></html>\n")
