"""report: reports/report.md with the metrics beside their floors, grids and training curves."""

from __future__ import annotations

import sys
from pathlib import Path

from dcgan.app import paths
from dcgan.app.params.whole import load_params
from dcgan.app.report_md import plot_curves, read_curves, render
from dcgan.app.stages._common import log, parser, run
from dcgan.core import files


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__)
    ap.add_argument("--metrics", default=paths.METRICS, help="evaluate's output")
    ap.add_argument("--data", default=paths.PREPARED, help="prepare's output (meta.json)")
    ap.add_argument("--models", default=paths.MODELS, help="train's output (model.json)")
    ap.add_argument("--live", default=paths.LIVE, help="train's dvclive folder")
    ap.add_argument("--out", default=paths.REPORT, help="report file; figures go beside it")
    args = ap.parse_args(argv)
    params = load_params(args.params)
    out = Path(args.out)
    figures_dir = out.parent / "figures"
    curves = read_curves(args.live)
    figures = plot_curves(curves, figures_dir)
    candidates = {"Samples": "samples.png", "Latent interpolation": "interpolation.png",
                  "Reconstructions (rows: held-out reals, then their reconstructions)": "reconstructions.png",
                  "Closest to a training image (top: the 8 generated images nearest a training image; "
                  "bottom: that training image)": "copies.png"}
    images = {t: f for t, f in candidates.items() if (out.parent / f).is_file()}
    summary = Path(args.live) / "metrics.json"
    text = render(params.to_dict(), files.read_json(Path(args.data) / "meta.json"),
                  files.read_json(Path(args.models) / "model.json"), files.read_json(args.metrics),
                  figures, images, figures_dir.name,
                  files.read_json(summary) if summary.is_file() else None, curves)
    files.write_text(out, text)
    log(f"report: {out} with {len(figures)} figure(s) and {len(images)} image grid(s)")


if __name__ == "__main__":
    sys.exit(run(main))
