"""Wall time of each pipeline stage: runs `dvc repro --single-item --force STAGE` in order.

Usage (from the repo root, venv active or via make's PATH):
    python benchmarks/repro_times.py            # all stages
    python benchmarks/repro_times.py train      # some stages

This rewrites the stages' outputs exactly as `dvc repro` would (same params, same code). Before
`train` it removes checkpoints/train, which would otherwise resume the finished run.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time

STAGES = ["validate", "prepare", "augment", "evaluator", "train", "sample", "evaluate", "report"]


def main(argv: list[str]) -> int:
    stages = argv or STAGES
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        print(f"error: unknown stage {unknown[0]!r} (stages: {', '.join(STAGES)})", file=sys.stderr)
        return 2
    rows = []
    total0 = time.perf_counter()
    for stage in stages:
        if stage == "train":  # a finished run's checkpoint would be resumed: time a run from scratch
            shutil.rmtree("checkpoints/train", ignore_errors=True)
        t0 = time.perf_counter()
        subprocess.run(["dvc", "repro", "--single-item", "--force", stage], check=True,
                       stdout=subprocess.DEVNULL)
        rows.append((stage, time.perf_counter() - t0))
        print(f"{stage:10s} {rows[-1][1]:7.1f} s", flush=True)
    print(f"{'total':10s} {time.perf_counter() - total0:7.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
