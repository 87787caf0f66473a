"""What the captured step (train.compile: graph) owes to a GPU, checked in one run of at most 8
minutes on the GPU machine as it is: its own python3 and torch, no network (pydantic, which its
image lacks, comes as carried wheels: gpu_check.sh installs them offline).

    bash benchmarks/gpu_check.sh            # the wrapper: PYTHONPATH=src, $OUT or ./gpu_check_out
    python3 benchmarks/gpu_check.py --out DIR [--minutes 8] [--skip-tests] [--skip-speed]

Steps (expected minutes on one H200; docs/performance.md lists them too):

1. the machine: torch, CUDA, the GPU (0.1);
2. the CUDA tests (tests/test_graphed_cuda.py: captured vs eager in fp32 and bf16 with
   channels_last, lazy R1, a growing batch and in-training FID; a resume; checkpoints moved
   between CPU and CUDA; the prefetch source; no host sync in a replay; batch_size auto within
   the memory it was given), each check's numbers recorded (3);
3. speed and memory at the example's config (64x64x3, ngf = ndf = 64, bf16, channels_last) at
   batch 64 and 256: the official loop, our eager step and our captured step, img/s (medians of
   the rounds), peak reserved memory once warm (after the first round), and the fraction of the
   bf16 peak reached (2).

Writes DIR/gpu_check.json after every step (``finished`` false and ``steps_left`` until the last:
a kill keeps what finished), the tests' junit XML and records beside it, and exits 1 when
any of these holds: a CUDA test failed or was skipped (or none ran); a recorded check is missing
or outside its one-ulp control; the captured step is not faster than eager at batch 64; the
captured step's peak memory is over 1.5x eager's; the run took longer than --minutes. Exits 2,
with one line, when there is no CUDA device.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RECORDED = ("captured_vs_eager", "resume", "moved_checkpoint", "prefetch", "capture_beside_a_busy_thread",
            "replay_sync", "auto_batch")
"""The checks tests/test_graphed_cuda.py records: each must be there."""
TESTS_SHARE = 0.55
"""The CUDA tests' pytest run is killed after this share of --minutes (264 s of 8 minutes); every
timeout inside it is shorter (tests/helpers.CHILD_TIMEOUT_S), and the shell's (570 s)
is longer than the whole budget, so the innermost one fires first."""
MEMORY_RATIO = 1.5
BF16_PEAK_TFLOPS = 989.0  # the H200's dense bf16 peak (datasheet)


def parse_junit(path: Path) -> dict[str, int]:
    """{tests, failures, errors, skipped} of a pytest junit XML (zeros when it is missing)."""
    if not path.is_file():
        return {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    return {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}


def read_records(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def verdicts(report: dict) -> list[str]:
    """Every reason the run fails (empty: it passes). ``report`` is what gpu_check.json holds."""
    out: list[str] = []
    tests = report.get("tests")
    if tests is not None:
        if tests["tests"] == 0:
            out.append("no CUDA test ran")
        for key in ("failures", "errors", "skipped"):
            if tests[key]:
                out.append(f"CUDA tests: {tests[key]} {key}")
        seen = {r["check"] for r in report.get("records", [])}
        out += [f"CUDA tests: no record of the check {c!r}" for c in RECORDED if c not in seen]
        for r in report.get("records", []):
            if "gap" in r and not r["gap"] <= r["bound"]:
                out.append(f"{r['check']} {json.dumps({k: v for k, v in r.items() if k != 'check'})}: "
                           f"{r.get('compared', 'graph vs eager')} {r['gap']:.3g} outside "
                           f"{r.get('control', 'the one-ulp control')} {r['bound']:.3g}")
    for row in report.get("speed", []):
        if row["batch"] == 64 and not row["graph_img_s"] > row["eager_img_s"]:
            out.append(f"batch 64: the captured step ({row['graph_img_s']:.0f} img/s) is not faster than "
                       f"eager ({row['eager_img_s']:.0f} img/s)")
        if row["graph_peak_bytes"] > MEMORY_RATIO * row["eager_peak_bytes"]:
            out.append(f"batch {row['batch']}: the captured step's peak memory is "
                       f"{row['graph_peak_bytes'] / row['eager_peak_bytes']:.2f}x eager's (over {MEMORY_RATIO}x)")
    if report.get("minutes_total", 0) > report.get("minutes_budget", float("inf")):
        out.append(f"took {report['minutes_total']:.1f} min, over the budget of {report['minutes_budget']:g}")
    return out


# --- the steps (CUDA only) ------------------------------------------------------------------------


def environment() -> dict:
    import torch

    props = torch.cuda.get_device_properties(0)
    return {"torch": torch.__version__, "cuda": torch.version.cuda, "gpu": props.name,
            "capability": f"{props.major}.{props.minor}", "memory_gib": round(props.total_memory / 2**30, 1),
            "python": sys.version.split()[0]}


def cuda_tests(out: Path, timeout_s: int) -> dict:
    """pytest -m cuda on tests/test_graphed_cuda.py, its numbers recorded under ``out``."""
    xml, records = out / "cuda_tests.xml", out / "cuda_records.jsonl"
    records.unlink(missing_ok=True)
    env = {**os.environ, "DCGAN_GPU_RECORD": str(records), "CUBLAS_WORKSPACE_CONFIG": ":4096:8",
           "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "pytest", "-q", "-rs", "-m", "cuda", "-p", "no:cacheprovider",
           f"--junitxml={xml}", "tests/test_graphed_cuda.py"]
    try:
        done = subprocess.run(cmd, cwd=REPO, env=env, timeout=timeout_s, capture_output=True, text=True)
        tail = (done.stdout + done.stderr)[-3000:]
    except subprocess.TimeoutExpired as exc:
        tail = f"timed out after {timeout_s} s\n" + (exc.stdout or b"")[-3000:].decode(errors="replace")
    print(tail, flush=True)
    return {"tests": parse_junit(xml), "records": read_records(records), "pytest_tail": tail[-1500:]}


def steady_peak(by_round: list[int]) -> int:
    """The peak reserved bytes of a loop once warm: the largest after the first round (whose
    peak also holds cuDNN's autotuning workspaces, which only the loop that runs first pays),
    or the only round's."""
    return max(by_round[1:] or by_round)


def speed_row(batch: int, rounds: int, steps: int, warmup: int) -> dict:
    """The official loop, our eager step and our captured step at ``batch`` (example config, bf16,
    channels_last), taking turns; img/s medians, peak reserved bytes once warm (:func:`steady_peak`,
    each round's kept too), fraction of the bf16 peak."""
    import numpy as np
    import torch

    sys.path.insert(0, str(REPO / "benchmarks"))
    import train_speed as ts

    from dcgan.app.params.whole import load_params

    device = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    p, (c, s), nz, ngf, ndf, _ = ts.configs(load_params(REPO / "params.yaml"))["example"]
    p = dataclasses.replace(p, batch_size=batch, batch_schedule=(), precision="bf16", channels_last=True)
    images = np.random.default_rng(0).integers(0, 256, (ts.images_for(batch, warmup, steps), c, s, s), dtype=np.uint8)
    runs = {mode: ts.planned(dataclasses.replace(p, compile=mode), images, device) for mode in ("none", "graph")}
    ref = ts.Reference(images, nz, ngf, ndf, batch, device)
    rates: dict[str, list[float]] = {"reference": [], "none": [], "graph": []}
    peaks: dict[str, list[int]] = {"none": [], "graph": []}
    for r in range(rounds):
        rates["reference"].append(ref.images_per_s(warmup, steps))
        for mode in ("none", "graph"):
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            rates[mode].append(ts.project_images_per_s(runs[mode], images, warmup, steps, seed=r, device=device))
            peaks[mode].append(torch.cuda.max_memory_reserved())
    med = {k: statistics.median(v) for k, v in rates.items()}
    steady = {mode: steady_peak(v) for mode, v in peaks.items()}
    flops = ts.step_flops(runs["none"], images, device)
    return {"batch": batch, "reference_img_s": med["reference"], "eager_img_s": med["none"],
            "graph_img_s": med["graph"], "graph_over_reference": med["graph"] / med["reference"],
            "graph_over_eager": med["graph"] / med["none"], "eager_peak_bytes": steady["none"],
            "graph_peak_bytes": steady["graph"], "gflop_per_image": flops / 1e9,
            "graph_fraction_of_bf16_peak": flops * med["graph"] / (BF16_PEAK_TFLOPS * 1e12),
            "rounds": rates, "peak_bytes_by_round": peaks}


def save(out: Path, report: dict, left: list[str]) -> None:
    """gpu_check.json as it stands, written atomically after every step: a run killed later keeps
    what finished. Until the last step, ``finished`` is false and ``steps_left`` names the rest."""
    report = {**report, "finished": not left, "steps_left": left}
    if left:
        report["ok"] = False
    tmp = out / "gpu_check.json.part"
    tmp.write_text(json.dumps(report, indent=1, default=str) + "\n")
    tmp.replace(out / "gpu_check.json")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or "gpu_check_out"),
                    help="folder for gpu_check.json, the junit XML and the records (default: $OUT or ./gpu_check_out)")
    ap.add_argument("--minutes", type=float, default=8.0, help="the budget: over it, the run fails")
    ap.add_argument("--skip-tests", action="store_true", help="leave out step 2 (the run then cannot pass)")
    ap.add_argument("--skip-speed", action="store_true", help="leave out step 3 (the run then cannot pass)")
    ap.add_argument("--rounds", type=int, default=3, help="speed: alternations of the three loops")
    ap.add_argument("--steps", type=int, default=40, help="speed: timed steps per block")
    ap.add_argument("--warmup", type=int, default=10, help="speed: untimed steps per block (capture is in them)")
    args = ap.parse_args(argv)
    if args.minutes <= 0 or args.rounds < 1 or args.steps < 1 or args.warmup < 3:
        ap.error("--minutes > 0, --rounds >= 1, --steps >= 1 and --warmup >= 3 (eager, warm-up, capture)")
    import torch

    if not torch.cuda.is_available():
        print(f"gpu_check: no CUDA device here (torch {torch.__version__} sees none): nothing was checked")
        return 2
    t0 = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict = {"environment": environment(), "minutes_budget": args.minutes, "minutes": {}}
    print(json.dumps(report["environment"]), flush=True)
    skipped = []
    left = ([] if args.skip_tests else ["cuda_tests"]) + ([] if args.skip_speed else ["speed_batch_64", "speed_batch_256"])
    save(args.out, report, left)
    if args.skip_tests:
        skipped.append("the CUDA tests (--skip-tests)")
    else:
        t = time.perf_counter()
        report.update(cuda_tests(args.out, timeout_s=int(args.minutes * 60 * TESTS_SHARE)))
        report["minutes"]["cuda_tests"] = (time.perf_counter() - t) / 60
        left.remove("cuda_tests")
        save(args.out, report, left)
    if args.skip_speed:
        skipped.append("the speed rows (--skip-speed)")
    else:
        report["speed"] = []
        for batch in (64, 256):
            t = time.perf_counter()
            report["speed"].append(speed_row(batch, args.rounds, args.steps, args.warmup))
            report["minutes"][f"speed_batch_{batch}"] = (time.perf_counter() - t) / 60
            print(json.dumps({k: v for k, v in report["speed"][-1].items() if k != "rounds"}), flush=True)
            left.remove(f"speed_batch_{batch}")
            if left:
                save(args.out, report, left)
    report["minutes_total"] = (time.perf_counter() - t0) / 60
    report["failures"] = verdicts(report) + [f"left out: {s}" for s in skipped]
    report["ok"] = not report["failures"]
    save(args.out, report, [])
    for line in report["failures"]:
        print(f"FAIL {line}")
    print(f"gpu_check: {'passed' if report['ok'] else 'FAILED'} in {report['minutes_total']:.1f} min "
          f"-> {args.out / 'gpu_check.json'}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
