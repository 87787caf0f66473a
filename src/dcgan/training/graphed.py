"""The whole training step on static buffers, captured once as a CUDA graph and replayed
(``train.compile: graph``).

One step of this loop launches a few hundred small kernels; on a GPU the launches, not the
arithmetic, set the pace. A CUDA graph records them once and replays them with one launch. What
a replay needs, and how this module provides it:

- **Static inputs.** The batch's uint8 images, the noise and the step's random draws are copied
  into buffers allocated once per kind of step; the step reads only those.
- **No host in the step.** Noise and DiffAugment/WGAN-GP draws still come from the seeded CPU
  generators (the same numbers as the eager loop, so exact resume holds and runs compare): they
  are drawn ahead (:func:`~dcgan.training.draws.rehearse`) into pinned memory and copied
  asynchronously; the step takes them from a :class:`~dcgan.training.draws.TapeDraws`.
- **One graph per kind of step**: per batch size and regularisation phase (lazy R1/WGAN-GP every
  ``reg_every`` steps changes the step's work). The first step of each kind runs eagerly (it
  records the draw schema, and Adam's state and cuDNN's algorithm choice are made there), the
  next is captured, every later one replayed.
- **Optimizers**: Adam with ``capturable=True`` and the learning rate held as a device tensor,
  so that a schedule changes it without re-capturing.
- **Memory**: the caching allocator keeps blocks per stream, so the first step (default
  stream), the warm-up (a side stream) and the graph (a private pool) would each hold a working
  set; the cache is emptied after the first step of each kind and after its warm-up, so that a
  captured run holds about what the eager run holds.

Where capture is not possible the same static step runs eagerly (:func:`capture_blocker` says
why): on the CPU (bit-identical to the plain loop: the tests' check), with fp16 (the loss scaler
reads its overflow flag on the host), under DDP (the all-reduces and BatchNorm buffer broadcasts
are collectives), with ADA (its geometric pass sizes its padding on the host, as the reference
does) and with torch.compile (its own graphs).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dcgan.training.draws import (
    Call,
    DrawBank,
    Recorder,
    Schema,
    TapeDraws,
    rehearse,
)
from dcgan.training.inputs import batch_of
from dcgan.training.nets import Nets
from dcgan.training.objective import GANObjective
from dcgan.training.settings import Setup

CAPTURE_ERROR_MODE = "thread_local"
"""What a capture refuses: the capturing thread's unsafe CUDA calls only (the default,
``global``, would also fail a capture on the prefetch thread's cudaHostAlloc or event waits)."""


def capture_blocker(device: torch.device, precision: str, processes: int, ada: str) -> str | None:
    """Why a step cannot be captured as a CUDA graph on ``device`` with this number format,
    process count and ADA pipeline (None: it can)."""
    if device.type != "cuda":
        return f"CUDA graphs need a CUDA device, not {device.type}"
    if precision == "fp16":
        return "fp16's loss scaler reads its overflow check on the host every step"
    if processes > 1:
        return "DDP's gradient all-reduce and BatchNorm buffer broadcasts are collectives"
    if ada != "none":
        return "ADA's geometric pass sizes its padding on the host from each step's draws"
    return None


@dataclass
class Kind:
    """One kind of step (a batch size and a regularisation phase): its draw schema, static
    buffers and, on CUDA, its graph and outputs."""

    schema: Schema
    raw: torch.Tensor  # uint8 (local batch, C, H, W)
    z: torch.Tensor
    floats: torch.Tensor
    ints: torch.Tensor
    graph: torch.cuda.CUDAGraph | None = None
    row: torch.Tensor | None = None
    eager_runs: int = 0


class StaticStep:
    """Runs :func:`~dcgan.training.loop.train_step` on static buffers (see the module's doc)."""

    def __init__(self, s: Setup, nets: Nets, objective: GANObjective, step_fn, warmup: int = 1):
        self.s, self.nets, self.objective, self.step_fn = s, nets, objective, step_fn
        self.blocker = capture_blocker(s.device, s.run.precision, s.dist.world_size, s.run.objective.ada)
        self.warmup = warmup
        self.kinds: dict[tuple[int, bool], Kind] = {}
        self.pool = None  # one memory pool for every graph: they never run at the same time
        # warm-up and capture on one side stream (as PyTorch's whole-network capture example does):
        # per-stream lazy initialisation then happens in the warm-up, never inside a capture
        self.stream = torch.cuda.Stream(s.device) if self.blocker is None else None
        if self.blocker is None:  # a replay reads the learning rate from device memory
            nets.opt.hold_lr_on(s.device)

    def __call__(self, raw: torch.Tensor, z: torch.Tensor, step: int, bs: int) -> torch.Tensor:
        """The step's logged row. ``raw``: this rank's uint8 images on the device; ``z``: its
        noise on the CPU (drawn from the step's generator, as the eager loop draws it)."""
        key = (bs, self.s.run.objective.regularises(step))
        kind = self.kinds.get(key)
        if kind is None:  # the first of its kind: eager, recording what it draws
            calls: list[Call] = []
            live = DrawBank.live(self.s.generators(step), self.s.device)
            bank = DrawBank(lambda k: Recorder(live(*k), k, calls))
            row = self.step_fn(self.nets, self.objective, batch_of(self.s, raw, z.to(self.s.device), bank, step, bs))
            self.kinds[key] = self._allocate(Schema(tuple(calls)), raw, z)
            self._release_cache()  # the warm-up's stream starts from free memory, not beside this step's cache
            return row
        self._fill(kind, raw, z, step)
        if self.blocker is not None:
            return self._static_step(kind, step, bs)
        if kind.eager_runs < self.warmup:  # on the stream that capture will use
            kind.eager_runs += 1
            self.stream.wait_stream(torch.cuda.current_stream(self.s.device))
            with torch.cuda.stream(self.stream):
                row = self._static_step(kind, step, bs)
            torch.cuda.current_stream(self.s.device).wait_stream(self.stream)
            return row
        if kind.graph is None:
            self._capture(kind, step, bs)
        kind.graph.replay()
        return kind.row

    # ------------------------------------------------------------------------------------------

    def _release_cache(self) -> None:
        """Hand the caching allocator's unused blocks back to the device, once after the first
        (eager) step of a kind and once after its warm-up. The allocator caches blocks per
        stream, and the first step, the warm-up (a side stream) and the graph (a private pool)
        each allocate a working set: without this the captured run would hold three where the
        eager run holds one. Costs one device sync per kind; numbers are unchanged."""
        if self.blocker is None:
            torch.cuda.empty_cache()

    def _allocate(self, schema: Schema, raw: torch.Tensor, z: torch.Tensor) -> Kind:
        n_f, n_i = schema.sizes()
        dev = self.s.device
        return Kind(schema, torch.empty_like(raw), torch.empty(z.shape, device=dev),
                    torch.empty(n_f, device=dev), torch.empty(n_i, dtype=torch.long, device=dev))

    def _fill(self, kind: Kind, raw: torch.Tensor, z: torch.Tensor, step: int) -> None:
        """Copy this step's inputs into the static buffers without waiting on the device: the
        host side is drawn into pinned memory from the caching host allocator, which hands a
        block out again only once the copy reading it has finished."""
        pin = self.s.device.type == "cuda"
        host_z = z.pin_memory() if pin else z
        host_f = torch.empty(kind.floats.shape, pin_memory=pin)
        host_i = torch.empty(kind.ints.shape, dtype=torch.long, pin_memory=pin)
        rehearse(kind.schema, self.s.generators(step), host_f, host_i)
        kind.raw.copy_(raw, non_blocking=True)
        kind.z.copy_(host_z, non_blocking=True)
        kind.floats.copy_(host_f, non_blocking=True)
        kind.ints.copy_(host_i, non_blocking=True)

    def _static_step(self, kind: Kind, step: int, bs: int) -> torch.Tensor:
        bank = DrawBank(lambda key: TapeDraws(kind.schema, key, kind.floats, kind.ints))
        return self.step_fn(self.nets, self.objective, batch_of(self.s, kind.raw, kind.z, bank, step, bs))

    def _capture(self, kind: Kind, step: int, bs: int) -> None:
        """Capture on the warm-up's stream. ``thread_local``: only this thread's CUDA calls are
        checked during capture, so the prefetch thread (:class:`~dcgan.training.batches.PrefetchSource`,
        CelebA/LSUN scale) may go on pinning buffers and waiting on its events meanwhile; it
        touches no stream that is being captured."""
        graph = torch.cuda.CUDAGraph()
        torch.cuda.synchronize(self.s.device)  # once per kind: the eager runs are done
        self._release_cache()  # the graph's pool is not allocated beside the warm-up's cached blocks
        with torch.cuda.graph(graph, pool=self.pool, stream=self.stream, capture_error_mode=CAPTURE_ERROR_MODE):
            kind.row = self._static_step(kind, step, bs)
        self.pool = graph.pool()
        kind.graph = graph


def resolve_compile(requested: str, device: torch.device, precision: str, processes: int,
                    ada: str = "none") -> tuple[str, str]:
    """Compile mode ``auto`` -> (mode, why): the captured step where it can run
    (:func:`capture_blocker`), else eager (``none``). An explicit ``graph`` with several
    processes resolves as ``auto`` does, and says so: it would build capturable Adam and never
    capture. Other values are kept (``graph`` on the CPU runs the static step uncaptured)."""
    if requested == "graph" and processes > 1:
        return "none", f"graph with {processes} processes: DDP's collectives are not captured, so the step runs eager"
    if requested != "auto":
        return requested, "as set"
    blocker = capture_blocker(device, precision, processes, ada)
    return ("none", blocker) if blocker else ("graph", "the whole step captured as a CUDA graph")
