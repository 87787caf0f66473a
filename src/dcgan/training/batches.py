"""Where the training loop's real batches come from, for any size of training set.

- :class:`TensorSource`: the whole set as one uint8 tensor, on the accelerator when it fits
  there (CUDA: uploaded chunk by chunk, never a second full host copy), or an array already in
  memory (tests, benchmarks).
- :class:`FileSource`: batches gathered from the ``.npy`` file with positioned reads (CPU and
  MPS): memory holds one batch, the page cache the rest.
- :class:`PrefetchSource`: CUDA when the set does not fit the GPU: a background thread reads the
  epoch's next batches into a ring of pinned host buffers, and each batch goes to the GPU with
  an asynchronous copy; a buffer is refilled only after the copy out of it has finished.

Every source returns, for the same indices, the same bytes as ``images[idx]``: a run's batches
do not depend on where its data lives. :data:`BatchSource` is any of the three.

:class:`Batch` is what one step is handed: those reals (in the network space), the noise and the
step's random draws.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from dcgan.data.store import NpyReader
from dcgan.training.diffaug import diff_augment
from dcgan.training.draws import DrawBank

Log = Callable[[str], None]


def dataset_fits(nbytes: int, free_bytes: int, fraction: float = 0.25) -> bool:
    """Whether a dataset of ``nbytes`` goes on an accelerator with ``free_bytes`` free: at most
    ``fraction`` of it, so that the networks, activations and cuDNN workspaces keep the rest."""
    return nbytes <= fraction * free_bytes


class _ReadOnDemand:
    """What the loop asks of a source that needs no read-ahead: announcing an epoch and closing
    are no-ops."""

    def start_epoch(self, batches: Sequence[torch.Tensor]) -> None:
        pass

    def close(self) -> None:
        pass


class TensorSource(_ReadOnDemand):
    """The whole set as one tensor (on the device or on the host)."""

    def __init__(self, data: torch.Tensor):
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def take(self, idx: torch.Tensor) -> torch.Tensor:
        return self.data[idx.to(self.data.device)]


def _gather(images: np.ndarray | NpyReader, idx: torch.Tensor) -> np.ndarray:
    i = idx.cpu().numpy()
    return images.take(i) if isinstance(images, NpyReader) else images[i]


class FileSource(_ReadOnDemand):
    """Batches read from the file as they are needed (positioned reads of the batch's rows)."""

    def __init__(self, images: NpyReader):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def take(self, idx: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(_gather(self.images, idx))


class PrefetchSource:
    """The epoch's batches read ahead by a background thread into ``depth + 2`` reusable
    (pinned, on CUDA) host buffers; :meth:`take` returns each on ``device``.

    The loop announces the epoch's batches (:meth:`start_epoch`) and then takes them in that
    order. On CUDA the copy to the GPU is asynchronous; an event recorded after it guards the
    buffer until the copy is done. ``pin`` defaults to ``device`` being CUDA; on other devices
    (the tests' stand-in for a GPU) the batch is copied out of the buffer before it is reused.
    The thread keeps reading while the captured step (train.compile graph) is being captured:
    captures check only their own thread's CUDA calls (``graphed.CAPTURE_ERROR_MODE``).
    """

    def __init__(self, images: np.ndarray | NpyReader, device: torch.device, depth: int = 2,
                 pin: bool | None = None):
        self.images, self.device, self.depth = images, device, depth
        self.pin = device.type == "cuda" if pin is None else pin
        self.slots = depth + 2
        self._buffers: list[torch.Tensor | None] = [None] * self.slots
        self._events: list[torch.cuda.Event | None] = [None] * self.slots
        self._thread: threading.Thread | None = None
        self._queue: queue.Queue | None = None
        self._stop = threading.Event()
        self.batches_read = 0

    def __len__(self) -> int:
        return len(self.images)

    def _buffer(self, slot: int, rows: int) -> torch.Tensor:
        buf = self._buffers[slot]
        if buf is None or len(buf) < rows:
            buf = torch.empty((rows, *self.images.shape[1:]), dtype=torch.uint8)
            buf = buf.pin_memory() if self.pin else buf
            self._buffers[slot] = buf
        return buf[:rows]

    def _read_ahead(self, batches: list[torch.Tensor], q: queue.Queue) -> None:
        try:
            for i, idx in enumerate(batches):
                if self._stop.is_set():
                    return
                slot = i % self.slots
                ev = self._events[slot]
                if ev is not None:
                    ev.synchronize()  # the last copy out of this buffer has finished
                buf = self._buffer(slot, len(idx))
                buf.copy_(torch.from_numpy(_gather(self.images, idx)))
                while not self._stop.is_set():
                    try:
                        q.put((idx, buf, slot), timeout=0.1)
                        break
                    except queue.Full:
                        continue
        except BaseException as exc:  # noqa: BLE001 - handed to the training thread
            q.put(exc)

    def start_epoch(self, batches: Sequence[torch.Tensor]) -> None:
        self.close()
        self._stop.clear()
        self._queue = queue.Queue(maxsize=self.depth)
        self._thread = threading.Thread(target=self._read_ahead, args=(list(batches), self._queue),
                                        name="dcgan-prefetch", daemon=True)
        self._thread.start()

    def take(self, idx: torch.Tensor) -> torch.Tensor:
        if self._queue is None:
            raise RuntimeError("PrefetchSource.take before start_epoch")
        item = self._queue.get()
        if isinstance(item, BaseException):
            raise item
        got, buf, slot = item
        # the indices are compared where that costs no device sync (they live on the host)
        if len(got) != len(idx) or (idx.device.type == "cpu" and not torch.equal(got, idx)):
            raise RuntimeError("PrefetchSource: batches taken out of the announced order")
        self.batches_read += 1
        if self.device.type == "cuda":
            out = buf.to(self.device, non_blocking=True)
            ev = torch.cuda.Event()
            ev.record()
            self._events[slot] = ev
            return out
        return buf.clone()  # not an asynchronous copy: the buffer is refilled right away

    def close(self) -> None:
        if self._thread is not None:
            self._stop.set()
            while self._thread.is_alive():
                try:  # unblock a reader waiting on a full queue
                    self._queue.get_nowait()
                except queue.Empty:
                    pass
                self._thread.join(timeout=0.05)
            self._thread = None
        self._queue = None


def place_data(images: np.ndarray | NpyReader, device: torch.device, log: Log = print
               ) -> BatchSource:
    """The training images as a batch source: on the accelerator when they fit (CUDA: a quarter
    of the free memory), else read per batch (from the file; on CUDA into pinned buffers, ahead
    of time). An array already in memory stays a tensor off CUDA."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        nbytes = int(np.prod(images.shape, dtype=np.int64))
        if dataset_fits(nbytes, free):
            data = torch.empty(tuple(images.shape), dtype=torch.uint8, device=device)
            step = max(1, (64 << 20) // max(1, nbytes // max(1, len(images))))
            for a in range(0, len(images), step):  # chunk by chunk: no full host copy
                data[a:a + step].copy_(torch.from_numpy(np.asarray(images[a:a + step])))
            return TensorSource(data)
        log(f"training data ({nbytes / 2**30:.1f} GiB) is more than a quarter of the GPU's free "
            f"memory ({free / 2**30:.1f} GiB): read ahead per batch into pinned host buffers")
        return PrefetchSource(images, device)
    if isinstance(images, NpyReader):
        return FileSource(images)
    return TensorSource(torch.from_numpy(images).to(device))


BatchSource = TensorSource | FileSource | PrefetchSource
"""Where a run's real batches come from (:func:`place_data` picks one)."""


@dataclass
class Batch:
    """One step's inputs: this rank's real images in the network space ([-1, 1], or
    standardised) and noise, and the step's random draws (DiffAugment and WGAN-GP, one source
    per discriminator, each drawn from in a fixed order)."""

    step: int
    size: int
    """The global batch size (this rank holds size / world_size of it)."""
    real: torch.Tensor
    z: torch.Tensor
    draws: DrawBank
    policies: tuple[str, ...]

    def augment(self, x: torch.Tensor, k: int = 0) -> torch.Tensor:
        """DiffAugment with discriminator k's draws, or the identity when train.diffaug is empty."""
        return diff_augment(x, self.policies, self.draws("diffaug", k)) if self.policies else x
