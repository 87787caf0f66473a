"""The metrics diff of a retrain as markdown (the flow's artifact and report file)."""

from __future__ import annotations

from dcgan.app.retrain.gate import Comparison, is_number
from dcgan.metrics import registry


def diff_markdown(name: str, overrides: dict[str, str], diff: dict, comparison: Comparison) -> str:
    """The metrics diff as a markdown table: baseline, new, change and the floor beside them."""
    keys = [k for k in diff if not k.startswith("protocol.") and not k.endswith("_floor")]
    def cell(x: object) -> str:
        return f"{x:.4g}" if is_number(x) else ("—" if x is None else str(x))
    lines = [f"# Retrain `{name}`: {'promoted' if comparison.promote else 'not promoted'}", "",
             comparison.reason, "", "| metric | baseline | new | change | floor |", "|---|---|---|---|---|"]
    for key in sorted(keys, key=lambda k: (k != comparison.metric, k)):
        row, floor = diff[key], diff.get(f"{key}_floor", {})
        mark = f"**{key}**" if key == comparison.metric else key
        lines.append(f"| {mark} | {cell(row['old'])} | {cell(row['new'])} | {cell(row['diff'])} | "
                     f"{cell(floor.get('new'))} |")
    lines += ["", "Overrides: " + (", ".join(f"`{k}={v}`" for k, v in overrides.items()) or "none"),
              "", "The floor is the same metric for held-out real images: the best a model can reach."]
    official = diff.get("protocol.weights_official", {})
    unofficial = [side for side in ("old", "new") if official.get(side) == 0]
    if unofficial:
        which = {"old": "baseline", "new": "new run"}
        lines += ["", f"**Warning** ({' and '.join(which[s] for s in unofficial)}): "
                      f"{registry.UNOFFICIAL_WEIGHTS}"]
    return "\n".join(lines) + "\n"
