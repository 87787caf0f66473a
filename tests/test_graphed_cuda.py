"""train.compile graph on a CUDA device. Skipped without one; benchmarks/gpu_check.sh runs these
on the GPU machine and fails on any skip.

Each comparison holds the captured run to the eager one within what rounding alone does: the
eager run against itself with every weight moved by one ulp after step 1 (the one-ulp control of
tests/test_distributed.py), times 4. What runs: colour images with ``channels_last`` on (the
shipped default), lazy R1 (two kinds of step), EMA, an encoder, two discriminators, DiffAugment,
in-training FID between replays, and

- fp32 (deterministic algorithms) and bf16, with and without a growing batch;
- a resume of a captured run, and checkpoints moved from the CPU to CUDA and back (held to a
  whole run on the second device, within 4x the gap between whole runs on the two devices);
- the prefetch source, with a thread that pins memory and waits on events, timed to show it
  did so during a capture;
- no host sync in a replay (``set_sync_debug_mode("error")``), warm-up and capture on one stream;
- ``batch_size: auto``: a whole run at the chosen size within the memory it was given.

``DCGAN_CUDA_TESTS_DEVICE=cpu`` runs the checks that call no CUDA API on the CPU instead (a dry
run of this file's own logic: tests/test_gpu_check.py). With ``DCGAN_GPU_RECORD`` set to a path,
each check appends its numbers there as JSON lines (gpu_check.py puts them in its report).
"""

from __future__ import annotations

import json
import os
import threading
import time

import numpy as np
import pytest
import torch

from dcgan.app.recipe import gan_config, make_run
from dcgan.training.distributed import SINGLE
from dcgan.training.settings import Setup
from tests.conftest import CPU, fit, tparams
from tests.helpers import CHILD_TIMEOUT_S, channel_stats

DEVICE = torch.device(os.environ.get("DCGAN_CUDA_TESTS_DEVICE", "cuda"))
ON_CUDA = DEVICE.type == "cuda"
pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(ON_CUDA and not torch.cuda.is_available(), reason="needs a CUDA device")]
cuda_api = pytest.mark.skipif(not ON_CUDA, reason="calls a CUDA API (this is the dry run on the CPU)")

OVER = {"diffaug": ("color", "translation", "cutout"), "gp_lambda": 1.0, "r1_gamma": 0.1, "reg_every": 2,
        "discriminators": 2, "d_aggregate": "softmax", "encoder": True, "latent_cycle_weight": 0.5,
        "ema_decay": 0.99, "ema_rampup": 0.05, "d_lr": 4e-4, "normalize": "meanstd", "channels_last": True}
SCHEDULE = {**OVER, "batch_schedule": ((0, 16), (6, 32)), "lr_scaling": "sqrt"}


def child_env() -> dict[str, str]:
    """The environment of a child Python these tests start: this process's, with src/ and the repo
    put in front of PYTHONPATH, never in place of it (on the GPU machine PYTHONPATH also holds the
    folder where gpu_check.sh installed pydantic)."""
    from tests.conftest import REPO

    keep = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO), *([keep] if keep else [])])}



def run_in_child(code: str, timeout: float = CHILD_TIMEOUT_S):
    """``python -c code`` in a child process started as these tests start one (:func:`child_env`)."""
    import subprocess
    import sys

    from tests.conftest import REPO

    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=child_env(), capture_output=True, text=True,
                          timeout=timeout)


def test_a_child_process_imports_what_this_one_does():
    """The child processes of the capture test import the application (pydantic, on the GPU
    machine from gpu_check.sh's folder) as this process does; runs in the dry run too, where
    tests/test_gpu_check.py hides every package the GPU image lacks."""
    done = run_in_child("import dcgan.app.recipe, pydantic; print('ok', pydantic.__file__)")
    assert done.returncode == 0 and done.stdout.startswith("ok"), done.stderr[-2000:]
    import pydantic

    assert done.stdout.split()[1] == pydantic.__file__  # the same pydantic, from the same place


def record(check: str, **numbers) -> None:
    path = os.environ.get("DCGAN_GPU_RECORD")
    if path:
        with open(path, "a") as fh:
            fh.write(json.dumps({"check": check, **numbers}) + "\n")


@pytest.fixture(scope="module")
def colour(data) -> np.ndarray:
    """The 160 digits as three different channels (N, 3, 16, 16): channels_last has something to do."""
    return np.concatenate([data, 255 - data, np.roll(data, 3, axis=-1)], axis=1)


class DeviceFid:
    """An in-training 'FID' that samples G on its device between replays (a number, not a
    distance: the check is that evaluation leaves the captured step intact)."""

    def __init__(self):
        self.values: list[float] = []

    def __call__(self, g) -> float:
        z = torch.randn(64, g.cfg.latent_dim, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            x = g(z.to(next(g.parameters()).device))
        self.values.append(float(x.float().abs().mean()))
        return self.values[-1]


def modules(r) -> list:
    return [m for m in (r.g, *r.ds, r.e, r.g_raw) if m is not None]


def max_diff(a, b) -> float:
    """The largest difference of any weight, EMA and BatchNorm statistics included, over two runs."""
    out = 0.0
    for ma, mb in zip(modules(a), modules(b), strict=True):
        sa, sb = ma.state_dict(), mb.state_dict()
        out = max([out, *((sa[k].float().cpu() - sb[k].float().cpu()).abs().max().item()
                          for k in sa if sa[k].is_floating_point())])
    return out


def run(data, tmp_path, mode: str, precision: str, over=None, *, nudge: bool = False, device=DEVICE,
        name: str = "", **kw):
    p = tparams(epochs=2, compile=mode, precision=precision, **(OVER if over is None else over))

    def nudged(step, nets):
        if nudge and step == 1:
            with torch.no_grad():
                for m in nets.values():
                    for t in (m.parameters() if m is not None else ()):
                        t.copy_(torch.nextafter(t, torch.full_like(t, float("inf"))))

    kw.setdefault("fid_fn", DeviceFid())
    return fit(p, gan_config(p, 16, 3, channel_stats(data)), data,
               tmp_path / (name or f"{mode}-{precision}-{nudge}-{device.type}"), device=device, on_step=nudged, **kw)


def control(data, tmp_path, precision: str, over=None, **kw) -> tuple[object, float]:
    """(the eager run, 4x the one-ulp control's difference)."""
    eager = run(data, tmp_path, "none", precision, over, **kw)
    nudged = run(data, tmp_path, "none", precision, over, nudge=True, **kw)
    return eager, 4 * max_diff(eager, nudged)


def deterministic(precision: str):
    if precision == "fp32" and ON_CUDA:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)


@pytest.mark.parametrize("schedule", [False, True], ids=["fixed-batch", "growing-batch"])
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_captured_equals_eager_within_rounding(colour, tmp_path, precision, schedule):
    over = SCHEDULE if schedule else OVER
    deterministic(precision)
    try:
        eager, bound = control(colour, tmp_path, precision, over)
        fid = DeviceFid()
        graph = run(colour, tmp_path, "graph", precision, over, fid_fn=fid)
    finally:
        torch.use_deterministic_algorithms(False)
    gap = max_diff(eager, graph)
    record("captured_vs_eager", precision=precision, schedule=schedule, gap=gap, bound=bound,
           steps=graph.step, fid_evaluations=len(fid.values))
    assert graph.step == eager.step and len(fid.values) == 2  # FID at both epoch ends, between replays
    assert gap <= bound, f"{precision}: captured vs eager {gap:.3g}, 4x one-ulp control {bound:.3g}"


def test_a_captured_run_resumes_within_rounding(colour, tmp_path):
    deterministic("fp32")
    try:
        _, bound = control(colour, tmp_path, "fp32")
        full = run(colour, tmp_path, "graph", "fp32", name="full")
        run(colour, tmp_path, "graph", "fp32", name="stopped", stop_after=7)
        resumed = run(colour, tmp_path, "graph", "fp32", name="stopped")
    finally:
        torch.use_deterministic_algorithms(False)
    gap = max_diff(full, resumed)
    record("resume", gap=gap, bound=bound, resumed_from=resumed.resumed_from_step)
    assert resumed.resumed_from_step == 6 and gap <= bound


@pytest.fixture(scope="module")
def whole_runs(colour, tmp_path_factory) -> dict:
    """An uninterrupted captured fp32 run on each device (deterministic algorithms on CUDA): the
    references of the moved-checkpoint test, and their difference, what the devices' arithmetic
    alone does over a whole run."""
    root = tmp_path_factory.mktemp("whole")
    deterministic("fp32")
    try:
        return {kind: run(colour, root, "graph", "fp32", device=dev, name=kind)
                for kind, dev in (("cpu", CPU), ("cuda", DEVICE))}
    finally:
        torch.use_deterministic_algorithms(False)


@cuda_api
@pytest.mark.parametrize("first", ["cpu", "cuda"])
def test_a_checkpoint_moves_between_the_cpu_and_the_captured_step(colour, tmp_path, first, whole_runs):
    """A run stopped on one device resumes on the other with train.compile graph (Adam's state
    converted on load: capturable with a tensor lr on CUDA, plain on the CPU), and ends where an
    uninterrupted run on the second device ends, within 4x the difference between the two
    devices' uninterrupted runs: a resume that lost or garbled a state (Adam's moments, EMA,
    BatchNorm statistics, the step's draws) would land farther than the devices' rounding."""
    devices = {"cpu": CPU, "cuda": DEVICE}
    other = "cuda" if first == "cpu" else "cpu"
    deterministic("fp32")
    try:
        run(colour, tmp_path, "graph", "fp32", device=devices[first], name="moved", stop_after=7)
        resumed = run(colour, tmp_path, "graph", "fp32", device=devices[other], name="moved")
    finally:
        torch.use_deterministic_algorithms(False)
    gap = max_diff(resumed, whole_runs[other])
    bound = 4 * max_diff(whole_runs["cpu"], whole_runs["cuda"])
    record("moved_checkpoint", first=first, resumed_from=resumed.resumed_from_step, gap=gap, bound=bound,
           compared=f"moved from {first} vs whole on {other}", control="4x CPU vs CUDA whole runs")
    assert resumed.resumed_from_step == 6 and resumed.step == whole_runs[other].step
    assert gap <= bound, f"moved from {first}: {gap:.3g} from the whole {other} run, over {bound:.3g}"


def overlapping(calls: list[tuple[float, float]], spans: list[tuple[float, float]]) -> int:
    """How many of ``calls`` (start, end) overlap one of ``spans`` (start, end)."""
    return sum(any(a < e and s < b for s, e in spans) for a, b in calls)


class BusyPrefetch:
    """The loop's PrefetchSource (as for a set that does not fit the GPU), with one more thread
    that, all through the run, pins fresh host memory and waits on CUDA events: what the reader
    thread does at CelebA scale, made constant so that it surely overlaps every capture."""

    def __init__(self, images, device):
        from dcgan.training.batches import PrefetchSource

        self.inner = PrefetchSource(images, device)
        self.stop, self.calls = threading.Event(), 0
        self.spans: list[tuple[float, float]] = []  # (start, end) of each pin-and-wait
        self.thread = threading.Thread(target=self._busy, daemon=True)
        self.thread.start()

    def _busy(self) -> None:
        side = torch.cuda.Stream(DEVICE) if ON_CUDA else None
        while not self.stop.wait(0.001):  # about a thousand times a second; a capture takes longer
            start = time.perf_counter()
            if side is not None:
                torch.empty(1 << 16, dtype=torch.uint8).pin_memory()
                torch._C._host_emptyCache()  # the next pin is a fresh cudaHostAlloc
                ev = torch.cuda.Event()
                ev.record(side)
                ev.synchronize()
            self.spans.append((start, time.perf_counter()))
            self.calls += 1

    def __len__(self):
        return len(self.inner)

    def start_epoch(self, batches):
        self.inner.start_epoch(batches)

    def take(self, idx):
        return self.inner.take(idx)

    def close(self):
        self.inner.close()
        self.stop.set()
        self.thread.join()


def test_the_prefetch_source_feeds_the_captured_step(colour, tmp_path, monkeypatch):
    from dcgan.training import loop

    sources: list[BusyPrefetch] = []

    def prefetched(images, device, log=print):
        sources.append(BusyPrefetch(images, device))
        return sources[-1]

    from dcgan.training import graphed

    captures: list[tuple[float, float]] = []
    capture = graphed.StaticStep._capture

    def timed(self, *args):
        start = time.perf_counter()
        capture(self, *args)
        captures.append((start, time.perf_counter()))

    monkeypatch.setattr(loop, "place_data", prefetched)
    monkeypatch.setattr(graphed.StaticStep, "_capture", timed)
    deterministic("fp32")
    try:
        eager, bound = control(colour, tmp_path, "fp32")
        graph = run(colour, tmp_path, "graph", "fp32")
    finally:
        torch.use_deterministic_algorithms(False)
    gap = max_diff(eager, graph)
    busy = sources[-1]
    overlaps = overlapping(busy.spans, captures)
    record("prefetch", gap=gap, bound=bound, busy_calls=busy.calls, batches_read=busy.inner.batches_read,
           captures=len(captures), busy_calls_during_captures=overlaps)
    assert busy.inner.batches_read == graph.step and gap <= bound
    if ON_CUDA:  # every kind captured (lazy R1: two), and the busy thread pinned and waited during one
        assert len(captures) >= 2 and overlaps > 0, (captures, len(busy.spans))
    else:  # the dry run: the static step runs uncaptured on the CPU
        assert captures == []


def capture_beside_a_busy_thread(mode: str) -> dict:
    """Twenty captures of a small graph while a BusyPrefetch thread pins memory and waits on
    events: ``{"error": None or the first line of the error, "overlaps": how many of the
    thread's pin-and-waits ran during a capture}``."""
    busy = BusyPrefetch(np.zeros((64, 3, 4, 4), np.uint8), DEVICE)
    x = torch.ones(1 << 20, device=DEVICE)
    stream = torch.cuda.Stream(DEVICE)
    captures: list[tuple[float, float]] = []
    error = None
    try:
        for _ in range(20):  # several captures: the busy thread surely overlaps one
            g = torch.cuda.CUDAGraph()
            start = time.perf_counter()
            with torch.cuda.graph(g, stream=stream, capture_error_mode=mode):
                y = x
                for _ in range(500):  # ~15 ms of capture: past the GIL's 5 ms switch interval
                    y = (y * 2).sin_().cumsum(0)
            captures.append((start, time.perf_counter()))
            g.replay()
        torch.cuda.synchronize()
        error = None if bool(y.isfinite().all()) else "non-finite"
    except RuntimeError as exc:
        error = str(exc).splitlines()[0]
    finally:
        busy.close()
    return {"error": error, "overlaps": overlapping(busy.spans, captures)}


@cuda_api
def test_a_capture_ignores_another_threads_event_waits():
    """The capture mode the step uses lets another thread pin memory and wait on events meanwhile.
    Each mode runs in a process of its own (a failed capture may leave the allocator routing to
    its pool). Whether the default mode (``global``) fails is recorded, not asserted."""
    from dcgan.training import graphed

    def in_a_process(mode: str) -> dict:
        code = ("import json; from tests.test_graphed_cuda import capture_beside_a_busy_thread as c; "
                f"print(json.dumps(c({mode!r})))")
        done = run_in_child(code)
        if done.returncode:
            return {"error": f"exit {done.returncode}: {(done.stderr.strip().splitlines() or [''])[-1]}",
                    "overlaps": None}
        return json.loads(done.stdout.strip().splitlines()[-1])

    ours = in_a_process(graphed.CAPTURE_ERROR_MODE)
    record("capture_beside_a_busy_thread", mode=graphed.CAPTURE_ERROR_MODE, error=ours["error"],
           overlaps=ours["overlaps"], global_mode_error=in_a_process("global")["error"])
    assert ours["error"] is None, ours
    assert ours["overlaps"], f"the busy thread never pinned or waited during a capture: {ours}"


@cuda_api
def test_replays_never_sync_with_the_host_and_capture_on_the_warm_up_stream(colour, monkeypatch):
    from dcgan.training import graphed
    from dcgan.training.graphed import StaticStep
    from dcgan.training.loop import epoch_order, make_objective, train_step
    from dcgan.training.nets import build_nets

    seen: list[dict] = []
    real_graph = torch.cuda.graph

    def spied(graph, **kw):
        seen.append(kw)
        return real_graph(graph, **kw)

    monkeypatch.setattr(graphed.torch.cuda, "graph", spied)
    emptied: list[int] = []
    empty_cache = torch.cuda.empty_cache
    monkeypatch.setattr(graphed.torch.cuda, "empty_cache", lambda: (emptied.append(1), empty_cache())[1])
    p = tparams(epochs=1, compile="graph", precision="bf16", **OVER)
    s = Setup(make_run(p, gan_config(p, 16, 3, channel_stats(colour)), batch_size=p.batch_size,
                       precision=p.precision), 0, DEVICE, SINGLE)
    nets = build_nets(s)
    static = StaticStep(s, nets, make_objective(s, nets), train_step)
    images = torch.from_numpy(np.asarray(colour)).to(DEVICE)
    order = epoch_order(0, 0, len(colour)).to(DEVICE)
    bs = p.batch_size

    def step(k):
        return static(images[order[k * bs % 128:k * bs % 128 + bs]], s.noise(k, bs), k, bs)

    for k in range(8):  # two kinds of step (reg_every 2): each eager once, warmed up, captured
        step(k)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for k in range(8, 16):
            row = step(k)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    record("replay_sync", replays=8, captures=len(seen))
    assert torch.isfinite(row).all()
    assert all(k.graph is not None for k in static.kinds.values()) and len(seen) == len(static.kinds) == 2
    assert all(kw["stream"] is static.stream and kw["capture_error_mode"] == "thread_local" for kw in seen)
    assert len(emptied) == 2 * len(static.kinds)  # after each kind's first step and after its warm-up


@cuda_api
def test_auto_batch_size_trains_within_the_memory_it_was_given(colour, tmp_path):
    """The memory given is six times what a batch of 64 measured, so the search has room to
    grow and stops well below its cap; a whole run at the chosen size (captured step, in-training
    FID, checkpoints) must then stay within it. Its peak over the budget is the margin measured."""
    from dcgan.training.autobatch import MARGIN, auto_batch_size, cuda_peak

    p = tparams(epochs=1, compile="graph", precision="bf16", **{**OVER, "g_width": 32, "d_width": 32})
    cfg = gan_config(p, 16, 3, channel_stats(colour))

    def setup_at(bs: int) -> Setup:
        return Setup(make_run(p, cfg, batch_size=bs, precision=p.precision), 0, DEVICE, SINGLE)

    given = 6 * cuda_peak(setup_at)(64)
    lines: list[str] = []
    bs = auto_batch_size(setup_at, DEVICE, 0, log=lines.append, free_bytes=given)
    images = np.resize(colour, (8 * bs, *colour.shape[1:]))  # eight steps: each kind captured and replayed
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(DEVICE)
    fit(p, cfg, images, tmp_path, batch_size=bs, device=DEVICE, fid_fn=DeviceFid())
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_reserved(DEVICE)
    record("auto_batch", batch=bs, given=given, budget=int(MARGIN * given), run_peak=peak,
           run_peak_over_budget=peak / (MARGIN * given), log=lines[-1])
    assert 64 < bs < 4096, lines
    assert peak <= given, f"batch {bs}: the run took {peak / 2**20:.0f} MiB of the {given / 2**20:.0f} MiB given"
