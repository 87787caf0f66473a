"""reports/report.md and its figures, from the files the pipeline wrote."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pandas as pd

from dcgan.core import files
from dcgan.metrics.late_fall import LATE_FALL
from dcgan.metrics.registry import ALL_KEYS, UNOFFICIAL_WEIGHTS


def read_curves(live_dir: str | Path) -> dict[str, pd.DataFrame]:
    """dvclive TSVs under plots/metrics/train -> {name: DataFrame(step, value)}."""
    out = {}
    for tsv in sorted((Path(live_dir) / "plots" / "metrics" / "train").glob("*.tsv")):
        df = pd.read_csv(tsv, sep="\t")
        if "step" in df and tsv.stem in df:
            out[tsv.stem] = df[["step", tsv.stem]]
    return out


def _save_fig(fig, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    files.write_bytes(path, buf.getvalue())


def plot_curves(curves: dict[str, pd.DataFrame], folder: str | Path) -> list[tuple[str, str]]:
    """Loss, D-output and FID curves as PNGs; returns (title, filename) for each written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(folder)
    groups = [("Losses", "losses.png", ["loss_d", "loss_g"], "loss"),
              ("Discriminator outputs", "d_outputs.png", ["d_real", "d_fake"], "mean sigmoid(D)"),
              ("FID during training", "fid.png", ["fid"], "FID")]
    written = []
    for title, fname, names, ylabel in groups:
        present = [n for n in names if n in curves]
        if not present:
            continue
        fig, ax = plt.subplots(figsize=(6, 3.2))
        for n in present:
            df = curves[n]
            ax.plot(df["step"], df[n], label=n, marker="o" if len(df) < 30 else None)
        if names == ["fid"]:
            ax.set_yscale("log")  # early FIDs are orders of magnitude above the late ones
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
        _save_fig(fig, folder / fname)
        plt.close(fig)
        written.append((title, fname))
    return written


def fid_trajectory(curves: dict[str, pd.DataFrame]) -> pd.DataFrame | None:
    """One row per in-training FID: step, fid, and D's mean outputs on reals and fakes
    (``d_real``, ``d_fake``) over the last logging window ending at or before that step."""
    if "fid" not in curves or curves["fid"].empty:
        return None
    out = curves["fid"].sort_values("step").reset_index(drop=True)
    for name in ("d_real", "d_fake"):
        if name in curves and not curves[name].empty:
            out = pd.merge_asof(out, curves[name].sort_values("step"), on="step", direction="backward")
    return out


def late_fall(traj: pd.DataFrame, threshold: float = LATE_FALL) -> str:
    """One sentence on where the best in-training FID was and how far the end fell from it."""
    best = traj.loc[traj["fid"].idxmin()]
    last = traj.iloc[-1]
    ratio = float(last["fid"]) / max(float(best["fid"]), 1e-12)
    where = (f"best in-training FID {best['fid']:.4g} at step {int(best['step']):,}; the last evaluation "
             f"(step {int(last['step']):,}) scored {last['fid']:.4g}, {ratio:.2f}× the best")
    if ratio >= threshold:
        return (f"**Quality fell late in training**: {where}. With `sample.generator: best` (and `auto` "
                "without an EMA of G) the shipped generator is the best one, not the last.")
    return f"No late fall: {where} (a fall is flagged from {threshold}×)."


def trajectory_section(curves: dict[str, pd.DataFrame]) -> list[str]:
    traj = fid_trajectory(curves)
    if traj is None:
        return []
    cols = [c for c in ("step", "fid", "d_real", "d_fake") if c in traj]
    names = {"step": "step", "fid": "FID", "d_real": "D(real)", "d_fake": "D(fake)"}
    lines = ["| " + " | ".join(names[c] for c in cols) + " |", "|" + "---|" * len(cols)]
    for _, r in traj.iterrows():
        lines.append("| " + " | ".join(f"{int(r[c]):,}" if c == "step" else _fmt(float(r[c]))
                                       for c in cols) + " |")
    return ["## Quality during training", "", late_fall(traj), "",
            "FID at each in-training evaluation, with D's mean outputs over the logging window "
            "before it (sigmoid for the BCE loss; D(real) near 1 and D(fake) near 0 mean D is "
            "winning outright, the usual sign before a collapse):", "", *lines, ""]


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def with_error(m: dict[str, Any], key: str) -> str:
    """``value ± standard error [95% interval]`` where the evaluate stage bootstrapped it."""
    v = _fmt(m[key])
    if isinstance(m.get(f"{key}_se"), float):
        v += f" ± {m[key + '_se']:.2g} [{m[key + '_ci_low']:.3g}, {m[key + '_ci_high']:.3g}]"
    return v


def metrics_table(m: dict[str, Any]) -> str:
    lines = ["| metric | generated (± standard error [95% interval]) | floor (held-out real) | better |",
             "|---|---|---|---|"]
    for k in ALL_KEYS:
        if k.key in m:
            lines.append(f"| {k.label} | {with_error(m, k.key)} | {_fmt(m.get(k.key + '_floor', '—'))} | "
                         f"{k.better or '—'} |")
    if "drs_acceptance_rate" in m:
        lines.append(f"| DRS acceptance rate | {m['drs_acceptance_rate']:.1%} | — | — |")
    return "\n".join(lines)


def params_table(params: dict[str, dict[str, Any]], sections: list[str]) -> str:
    lines = ["| key | value |", "|---|---|"]
    for s in sections:
        for k, v in params[s].items():
            lines.append(f"| `{s}.{k}` | {_fmt(list(v) if isinstance(v, tuple) else v)} |")
    return "\n".join(lines)


def render(params: dict[str, dict[str, Any]], data_meta: dict, model_meta: dict, metrics: dict,
           figures: list[tuple[str, str]], images: dict[str, str], figures_dir: str,
           train_summary: dict | None = None, curves: dict[str, pd.DataFrame] | None = None) -> str:
    """The report's markdown. ``train_summary`` is dvclive's summary of the train stage (its
    wall time lives there, not in the versioned model folder); ``curves`` (:func:`read_curves`)
    give the in-training FID trajectory and whether quality fell late."""
    proto = {k.split(".", 1)[1]: v for k, v in metrics.items() if k.startswith("protocol.")}
    wall = (train_summary or {}).get("train", {}).get("wall_s")
    best = model_meta.get("best_fid")
    parts = [
        "# DCGAN run report",
        "",
        "## What was trained",
        "",
        f"- **Data**: `{data_meta['dataset']}` ({data_meta['source']}), {data_meta['n_train']} training + "
        f"{data_meta['n_holdout']} held-out images of {data_meta['channels']}×{data_meta['image_size']}"
        f"×{data_meta['image_size']}; per-channel mean {[round(x, 4) for x in data_meta['mean']]}, "
        f"std {[round(x, 4) for x in data_meta['std']]}.",
        f"- **Model**: G/D widths {model_meta['g_width']}/{model_meta['d_width']}, latent size "
        f"{model_meta['latent_dim']}; {model_meta.get('step')} steps, {model_meta.get('epochs')} epochs"
        + (f", {wall:.1f} s of training" if wall else "")
        + f" in {model_meta.get('precision', proto.get('train_precision', 'fp32'))} "
          "(`train.precision`, `auto` resolved on the training machine).",
        f"- **Scored generator**: `{proto.get('generator', '?')}`"
        + (f" (best in-training FID {best:.4g} at step {model_meta.get('best_step')})" if best is not None else "")
        + ".",
        "",
        "## Metrics",
        "",
        metrics_table(metrics),
        "",
        f"Protocol: extractor `{proto.get('extractor_id', proto.get('extractor'))}` "
        f"({proto.get('feature_dim')}-d features), {proto.get('n_samples')} generated and "
        f"{proto.get('n_samples')} held-out images against {proto.get('n_reference')} training images; "
        f"IS over {proto.get('is_splits')} splits; KID over {proto.get('kid_subsets')} subsets of "
        f"{proto.get('kid_subset_size')}; precision/recall with k={proto.get('pr_k')}; reconstructions of "
        f"{proto.get('recon_images')} held-out images by {proto.get('recon_method', '?').replace('_', ' ')} "
        "(the reconstruction floor inverts the generator's own samples)"
        + (f"; ± is the standard error over {proto['bootstrap']} bootstrap resamples of the generated and "
           "the training features, [..] their 95% interval: two runs whose intervals overlap widely are "
           "not told apart by these samples" if proto.get("bootstrap") else "")
        + ("; the copy rate counts generated images nearer a training image than that image's own "
           "nearest neighbour (its floor: held-out real images by the same rule)" if "copy_rate" in metrics else "")
        + ".",
        "",
        *([f"**Warning:** {UNOFFICIAL_WEIGHTS}", ""] if proto.get("weights_official") == 0 else []),
    ]
    for title, fname in images.items():
        parts += [f"## {title}", "", f"![{title}]({fname})", ""]
    parts += trajectory_section(curves or {})
    if figures:
        parts += ["## Training curves", ""]
        for title, fname in figures:
            parts += [f"![{title}]({figures_dir}/{fname})", ""]
    parts += ["## Params", "", params_table(params, list(params)), ""]
    return "\n".join(parts)
