"""evaluate: FID and Inception Score of the samples (and the real-data floor) -> reports/metrics.json."""

from __future__ import annotations

import sys
from pathlib import Path

from dcgan import io
from dcgan.data import arrays
from dcgan.metrics.features import load_classifier
from dcgan.metrics.suite import score
from dcgan.runtime import pick_device
from dcgan.stages._common import log, params_from, parser, run


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__)
    ap.add_argument("--samples", default="data/samples/samples.npy", help="sample's output")
    ap.add_argument("--data", default="data/prepared", help="prepare's output folder (train + holdout)")
    ap.add_argument("--evaluator", default="models/evaluator", help="evaluator's output folder")
    ap.add_argument("--out", default="reports/metrics.json", help="metrics file")
    args = ap.parse_args(argv)
    params = params_from(args)
    p = params.evaluate
    data = Path(args.data)
    train = arrays.load_images(data / "train.npy")
    c, s = train.shape[1], train.shape[-1]
    holdout = arrays.load_images(data / "holdout.npy", channels=c, size=s)
    samples = arrays.load_images(args.samples, channels=c, size=s)
    device = pick_device(params.base.device)
    model = load_classifier(args.evaluator, device)
    n = p.num_samples or len(holdout)
    metrics = score(samples, train, holdout, model, n, p.is_splits, p.batch_size, device)
    info = io.read_json(Path(args.evaluator) / "classifier.json")
    metrics.update({
        # the protocol, so numbers are only compared when they were measured the same way
        "protocol.extractor": p.extractor,
        "protocol.feature_dim": model.cfg.feature_dim,
        "protocol.extractor_holdout_accuracy": round(info.get("holdout_accuracy", float("nan")), 4),
        "protocol.reference_split": "train",
        "protocol.floor_split": "holdout",
        "protocol.is_splits": p.is_splits,
    })
    io.write_json(args.out, metrics)
    log(f"evaluate: fid {metrics['fid']:.3f} (floor {metrics['fid_floor']:.3f}), "
        f"IS {metrics['is_mean']:.3f} ± {metrics['is_std']:.3f} (floor {metrics['is_floor']:.3f}) -> {args.out}")


if __name__ == "__main__":
    sys.exit(run(main))
