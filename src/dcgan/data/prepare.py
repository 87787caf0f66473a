"""The prepare stage's work on any size of dataset, in memory that does not grow with it.

Two passes over the disk, never the whole set in memory:

1. Decode and shape the images chunk by chunk (:func:`dcgan.data.shaping.fitted_chunks`), in
   ``workers`` processes whose results come back in order, and append them to a temporary file
   of rows. Unreadable files or records are skipped and counted.
2. Split the kept images (the seeded split of :func:`dcgan.data.arrays.split_indices`) and
   gather each split's rows, in ascending order, into its ``.npy`` (:class:`~dcgan.data.store.
   NpyWriter`), summing the training pixels as integers for the per-channel mean and std.

The outputs are byte-identical whatever the worker count and chunk size: each image is shaped
on its own (files) or in fixed chunks (arrays), results keep item order, and the statistics
are exact integer sums turned into floats once.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dcgan.core import files
from dcgan.core.errors import UserError
from dcgan.core.progress import progress
from dcgan.data import arrays
from dcgan.data.encoded import RawDataset
from dcgan.data.shaping import fitted_chunks
from dcgan.data.store import DISK_FULL, NpyReader, NpyWriter, disk_full, rows_per_chunk

SMALL_SET = 2000
"""Below this many images, ``auto`` decodes in this process: starting a worker (a fresh Python
that imports torch) costs about 2 s, more than a small set takes to decode."""


def resolve_workers(workers: int | str, n_images: int | None = None) -> int:
    """``prepare.workers``: ``auto`` = the CPUs this process may run on, or one (this process)
    for fewer than :data:`SMALL_SET` images. The output is the same for any count."""
    if workers == "auto":
        if n_images is not None and n_images < SMALL_SET:
            return 1
        return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    return max(1, int(workers))


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)  # one process per core: no thread pools fighting over them


@contextmanager
def worker_map(workers: int) -> Iterator[Callable | None]:
    """An ordered map over ``workers`` processes with at most two chunks per worker in flight
    (so results never pile up in memory), or None (work in this process) for one worker."""
    if workers <= 1:
        yield None
        return
    pool = mp.get_context("spawn").Pool(workers, initializer=_init_worker)

    def ordered(fn: Callable, chunks: Iterator[list]) -> Iterator[tuple]:
        pending: deque = deque()
        for chunk in chunks:
            pending.append((pool.apply_async(fn, (chunk,)), len(chunk)))
            if len(pending) >= 2 * workers:
                res, n = pending.popleft()
                yield (*res.get(), n)
        while pending:
            res, n = pending.popleft()
            yield (*res.get(), n)

    try:
        yield ordered
    finally:
        pool.terminate()
        pool.join()


@dataclass
class Prepared:
    n_train: int
    n_holdout: int
    mean: list[float]
    std: list[float]
    digests: dict[str, str]
    skipped: list[str]


def _write_rows(fh, images: np.ndarray, path: Path) -> None:
    try:
        fh.write(memoryview(np.ascontiguousarray(images)).cast("B"))
    except OSError as exc:
        if exc.errno in DISK_FULL:
            raise disk_full(exc, path) from None
        raise


def prepare_dataset(raw: RawDataset, channels: int, size: int, holdout_fraction: float, seed: int,
                    out: str | Path, workers: int = 1, desc: str = "prepare") -> Prepared:
    """Shape, split and write ``raw`` into ``out``: train.npy, holdout.npy and their labels."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    row_shape = (channels, size, size)
    rows_path = out / ".decoded.rows"
    kept: list[np.ndarray] = []
    total = len(raw.images)
    try:
        with open(rows_path, "wb") as fh, worker_map(workers) as pool_map, \
                progress(total=total, desc=desc, unit="img", dynamic_ncols=True, smoothing=0.05,
                         disable=total < 2000) as bar:
            for images, idx, consumed in fitted_chunks(raw, channels, size, pool_map):
                _write_rows(fh, images, rows_path)
                kept.append(idx)
                bar.update(consumed)
                if raw.skipped_files:
                    bar.set_postfix(skipped=len(raw.skipped_files), refresh=False)
        keep = np.concatenate(kept) if kept else np.empty(0, np.int64)
        if len(keep) == 0:
            raise UserError(f"none of the {total} images of {raw.source} could be read "
                            f"(e.g. {raw.skipped_files[0] if raw.skipped_files else '?'})")
        labels = np.asarray(raw.labels, np.int64)[keep]
        del keep, kept
        decoded = NpyReader(rows_path, shape=(len(labels), *row_shape), dtype=np.uint8, offset=0)
        train_idx, hold_idx = arrays.split_indices(len(decoded), holdout_fraction, seed)
        sums = arrays.ChannelSums(channels)
        digests = {}
        step = rows_per_chunk(decoded.row_bytes)
        for name, idx in (("train", train_idx), ("holdout", hold_idx)):
            with NpyWriter(out / f"{name}.npy", (len(idx), *row_shape)) as w:
                for a in range(0, len(idx), step):
                    chunk = decoded.take(idx[a:a + step])
                    w.write(chunk)
                    if name == "train":
                        sums.add(chunk)
            digests[f"{name}.npy"] = w.digest
            files.write_npy(out / f"{name}_labels.npy", labels[idx])
        decoded.close()
    finally:
        rows_path.unlink(missing_ok=True)
    mean, std = sums.stats()
    return Prepared(len(train_idx), len(hold_idx), mean, std, digests, list(raw.skipped_files))
