"""train: DCGAN on data/augmented -> models/gan/ (+ resumable checkpoints, dvclive logs)."""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from dvclive import Live

from dcgan.app import paths
from dcgan.app.params.base import BaseParams
from dcgan.app.params.evaluator import EvaluatorParams
from dcgan.app.params.prepare import PrepareParams
from dcgan.app.params.train import TrainParams
from dcgan.app.params.typed import keyed
from dcgan.app.recipe import plan_run, recorded
from dcgan.app.stages._common import log, params_from, parser, run
from dcgan.core import files
from dcgan.core.devices import pick_device
from dcgan.core.errors import UserError
from dcgan.core.images import grid_image
from dcgan.data import arrays
from dcgan.metrics.late_fall import LATE_FALL
from dcgan.metrics.reference import load_reference
from dcgan.metrics.training_fid import make_fid_fn
from dcgan.networks.model_dir import ModelCard, save_models
from dcgan.training import checkpoint as ckpt
from dcgan.training import distributed
from dcgan.training.loop import train
from dcgan.training.resume import Fingerprint, resume_point


@dataclass(frozen=True)
class Reads:
    """The params sections this stage reads."""

    base: BaseParams
    prepare: PrepareParams
    evaluator: EvaluatorParams
    train: TrainParams


class LiveLogger:
    """The loop's MetricLogger on top of dvclive (metrics as TSV plots, images as PNG)."""

    def __init__(self, live: Live):
        self.live = live
        self.last: dict[str, float] = {}
        """The newest value of each metric this run logged (the last in-training FID among them)."""

    def metric(self, name: str, value: float, step: int) -> None:
        self.live.step = step
        self.live.log_metric(name, value)
        self.last[name] = value

    def image(self, name: str, grid: torch.Tensor, step: int) -> None:
        self.live.step = step
        self.live.log_image(name, grid_image(grid.float().cpu()))
        self.live.make_summary()


def truncate_logs(live_dir: Path, step: int) -> None:
    """Drop dvclive rows logged after ``step``: a resumed run logs those steps again."""
    for tsv in (live_dir / "plots" / "metrics").rglob("*.tsv"):
        lines = tsv.read_text().splitlines()
        if not lines:
            continue
        head, rows = lines[0], lines[1:]
        col = head.split("\t").index("step")
        kept = [r for r in rows if int(r.split("\t")[col]) <= step]
        tsv.write_text("\n".join([head, *kept]) + "\n")


CHECKPOINT_STORE = "DCGAN_CHECKPOINT_STORE"
"""Set by the retraining flow: a folder outside ``dvc exp run --temp``'s copy, which vanishes with
the run, where checkpoints live under the run's fingerprint, so a retrain killed mid-way resumes
on its next attempt."""


def checkpoint_folder(declared: str | Path, fp: Fingerprint) -> Path:
    """Where this run writes and looks for checkpoints: the stage's ``--checkpoints`` folder, or
    ``$DCGAN_CHECKPOINT_STORE/<fingerprint id>``: keyed by what the run trains (train params,
    seed, data digest, code), so only the very same run ever resumes from it."""
    store = os.environ.get(CHECKPOINT_STORE)
    return Path(store) / ckpt.fingerprint_id(fp) if store else Path(declared)


def hand_over(folder: Path, declared: str | Path) -> None:
    """A finished run's checkpoints from the store into the declared ``--checkpoints`` folder
    (the DVC output), then the store's folder removed: the run needs it no more."""
    declared = Path(declared)
    if folder == declared:
        return
    declared.mkdir(parents=True, exist_ok=True)
    ckpt.clear(declared)
    for path in reversed(ckpt.list_checkpoints(folder)):
        files.atomic_write(declared / path.name, lambda fh, src=path: fh.write(src.read_bytes()))
    shutil.rmtree(folder, ignore_errors=True)


def dataset_stats(prepared: str | Path, normalize: str) -> tuple[list[float], list[float]] | None:
    """The per-channel (mean, std) that ``train.normalize: meanstd`` standardises with: those of
    the prepared training images, from prepare's meta.json (None for ``range``)."""
    if normalize != "meanstd":
        return None
    path = Path(prepared) / "meta.json"
    try:
        meta = files.read_json(path)
        return [float(v) for v in meta["mean"]], [float(v) for v in meta["std"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"train.normalize: meanstd needs the per-channel mean and std in {path} "
                        f"(written by the prepare stage), which is missing or unreadable: {exc}") from None


KEYS = {"device": "base.device", "extractor": "evaluator.extractor", "inception_weights": "evaluator.inception_weights",
        "inception_download": "evaluator.inception_download"}
"""The params key of each setting a library error may name here (the others are train's)."""


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__)
    ap.add_argument("--data", default=paths.TRAIN_IMAGES, help="training images (uint8 NCHW .npy)")
    ap.add_argument("--out", default=paths.MODELS, help="folder for generator/discriminator/model.json")
    ap.add_argument("--checkpoints", default=paths.CHECKPOINTS, help="resumable checkpoints (persist)")
    ap.add_argument("--live", default=paths.LIVE, help="dvclive folder (metrics, plots, images)")
    ap.add_argument("--evaluator", default=paths.EVALUATOR,
                    help="evaluator's output (feature extractor + reference features) for in-training FID")
    ap.add_argument("--prepared", default=paths.PREPARED, help="prepare's output (to check the reference)")
    args = ap.parse_args(argv)
    params = params_from(args, Reads)
    p = params.train
    if p.nproc > 1 and "TORCHELASTIC_RUN_ID" not in os.environ:
        # the same stage command whatever the process count: relaunch this module under torchrun
        code = distributed.launch(p.nproc, "dcgan.app.stages.train", sys.argv[1:] if argv is None else argv)
        if code != 0:
            raise UserError(f"training under torchrun with {p.nproc} processes failed (exit code {code}); "
                            "the failing process's own error is above")
        return
    with keyed("train", **KEYS):  # a library error about a setting names its params key
        env, device = distributed.init_from_env(pick_device(params.base.device), p.nproc)
        try:
            _train(args, params, env, device)
        finally:
            distributed.shutdown()


def in_training_fid(params: Reads, args, env: distributed.DistEnv, device: torch.device):
    """(FID function or None, the extractor's id or None): rank 0 evaluates; the other ranks
    need only the extractor's id (it is in the fingerprint: best-by-FID depends on it)."""
    p, ev = params.train, params.evaluator
    if not p.eval_every:
        return None, None
    if env.is_main:
        return make_fid_fn(args.evaluator, args.prepared, extractor=ev.extractor,
                           inception_weights=ev.inception_weights, batch_size=ev.feature_batch_size,
                           samples=p.eval_samples, seed=params.base.seed, device=device)
    return None, load_reference(args.evaluator, args.prepared, ev.extractor, features=False)[2]["extractor_id"]


def log_run(live: Live, logger: LiveLogger, result, auto_batch: int | None) -> None:
    """The run's summary numbers into dvclive's metrics.json."""
    live.step = result.step
    live.log_metric("train/wall_s", round(result.wall_s, 2), plot=False)
    live.log_metric("train/steps", result.step, plot=False)
    if auto_batch is not None:
        live.log_metric("train/batch_size_auto", auto_batch, plot=False)
    if result.resumed_from_step is None:  # throughput of this process only; a resumed run has no clean number
        live.log_metric("train/images_per_s", round(result.images_seen / max(result.wall_s, 1e-9), 1), plot=False)
    if result.best_fid is None:
        return
    live.log_metric("train/best_fid", round(result.best_fid, 4), plot=False)
    live.log_metric("train/best_step", result.best_step, plot=False)
    if "train/fid" in logger.last:  # the run's last evaluation: how far the end fell from the best
        last = logger.last["train/fid"]
        live.log_metric("train/last_fid", round(last, 4), plot=False)
        live.log_metric("train/last_over_best", round(last / max(result.best_fid, 1e-12), 3), plot=False)
        if last >= LATE_FALL * result.best_fid:
            log(f"train: quality fell late: best FID {result.best_fid:.4g} at step {result.best_step}, "
                f"{last / result.best_fid:.2g}x that at the end (the best generator is kept)")


def _train(args, params: Reads, env: distributed.DistEnv, device: torch.device) -> None:
    seed, prep = params.base.seed, params.prepare
    images = arrays.open_images(args.data, channels=prep.channels, size=prep.image_size)  # read per batch
    stats = dataset_stats(args.prepared, params.train.normalize)
    # every auto decided here, once: what the run (its checkpoints' fingerprint too) and model.json record
    run = plan_run(params.train, images, prep.image_size, prep.channels, stats, device, env, seed)
    fid_fn, extractor_id = in_training_fid(params, args, env, device)
    fp = ckpt.fingerprint(recorded(params.train, run), seed, files.recorded_digest(args.data, log),
                          fid_extractor=extractor_id)
    folder = checkpoint_folder(args.checkpoints, fp)
    start = resume_point(folder, fp, env, device, log)
    run_args = dict(run=run, seed=seed, images=images, device=device,
                    ckpt_dir=folder, fingerprint=fp, log=log, dist=env, start=start)
    if not env.is_main:
        # the other ranks train in lockstep; rank 0 alone logs, checkpoints and saves the models
        train(**run_args)
        env.barrier()
        return
    live_dir = Path(args.live)
    if start is not None:
        truncate_logs(live_dir, int(start["step"]))
    for line in run.decisions:
        log(line)
    log(f"train: {len(images)} images, {run.arch}, device {device}"
        + (f", {env.world_size} processes (DDP, {torch.distributed.get_backend()})" if env.enabled else ""))
    with Live(str(live_dir), resume=start is not None, save_dvc_exp=False, dvcyaml=None, report=None) as live:
        logger = LiveLogger(live)
        result = train(**run_args, logger=logger, fid_fn=fid_fn)
        log_run(live, logger, result, run.batch_size if run.batch_auto else None)
    # nothing run-dependent (times, hosts) in the card: identical runs give identical files
    card = ModelCard(run.arch, len(result.ds), result.step, result.epoch, run.precision, result.best_fid,
                     result.best_step, run.compile, run.ema_decay or None)
    save_models(args.out, card, result.g, result.ds, g_best=result.g_best, e=result.e)
    hand_over(folder, args.checkpoints)
    log(f"train: {result.step} steps in {result.wall_s:.1f}s -> {args.out}")
    env.barrier()


if __name__ == "__main__":
    sys.exit(run(main))
