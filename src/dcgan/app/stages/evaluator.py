"""evaluator: the feature extractor behind FID/IS, and the real data's reference features.

With evaluator.extractor: classifier, trains the domain feature network (a small classifier on
the prepared labelled data). With inception, loads the FID Inception-v3 weights. Either way,
writes the training set's and the holdout's features once, so runs that only change train
params reuse them.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dcgan.app import paths
from dcgan.app.params.evaluator import EvaluatorParams
from dcgan.app.params.typed import keyed
from dcgan.app.stages._common import log, params_from, parser, run
from dcgan.core import files
from dcgan.core.devices import pick_device
from dcgan.core.errors import UserError
from dcgan.data import arrays
from dcgan.metrics.classifier import ClassifierConfig, accuracy, save_classifier, train_classifier
from dcgan.metrics.reference import make_extractor, write_reference


@dataclass(frozen=True)
class Reads:
    """The params sections this stage reads."""

    evaluator: EvaluatorParams


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__)
    ap.add_argument("--data", default=paths.PREPARED, help="prepare's output folder")
    ap.add_argument("--out", default=paths.EVALUATOR, help="output folder")
    args = ap.parse_args(argv)
    params = params_from(args, Reads)
    p = params.evaluator
    src, out = Path(args.data), Path(args.out)
    meta = files.read_json(src / "meta.json")
    with keyed("evaluator"):  # a library error about a setting names its params key
        device = pick_device(p.device)  # cpu by default: the same instrument whatever trains where
        if p.extractor == "classifier":
            if not meta["labelled"]:
                raise UserError(
                    f"dataset {meta['dataset']!r} has no class labels, so the offline classifier "
                    f"feature extractor cannot be trained; set evaluator.extractor: inception"
                )
            train = arrays.load_images(src / "train.npy")
            labels = np.load(src / "train_labels.npy", allow_pickle=False)
            holdout = arrays.load_images(src / "holdout.npy")
            hold_labels = np.load(src / "holdout_labels.npy", allow_pickle=False)
            num_classes = int(labels.max()) + 1
            cfg = ClassifierConfig(train.shape[-1], train.shape[1], num_classes, p.width, p.feature_dim)
            model = train_classifier(train, labels, cfg, p.epochs, p.batch_size, p.lr, p.seed, device)
            acc = accuracy(model, holdout, hold_labels, device)
            save_classifier(model, out, {"holdout_accuracy": acc, "dataset": meta["dataset"]})
            log(f"evaluator: {num_classes}-class feature net, holdout accuracy {acc:.4f}")
        # the first stage that needs the Inception weights: the only one that may download them
        extractor = make_extractor(p.extractor, out, p.inception_weights, p.feature_batch_size, device,
                                   download=p.inception_download, resize=p.resize)
        ref = write_reference(out, extractor, src, p.reference_max_images, p.seed)
    log(f"evaluator: reference features ({ref['extractor_id']}, {ref['feature_dim']}-d) of "
        f"{ref['n_train_used']} of {ref['n_train']} training and {ref['n_holdout_used']} of "
        f"{ref['n_holdout']} held-out images -> {out}")


if __name__ == "__main__":
    sys.exit(run(main))
