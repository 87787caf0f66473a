"""Data-parallel scaling of the training loop: images/s with N processes (DDP under torchrun)
against 1, at a fixed batch per process (weak scaling, as DDP is used).

    python benchmarks/scaling.py                          # CPU: 1 and 2 processes, one core each
    python benchmarks/scaling.py --threads 2 --nproc 1    # 1 process using both cores, for comparison
    python benchmarks/scaling.py --device cuda --nproc 1 2 4 8   # GPUs: one process per GPU

Each configuration runs the project's loop (``dcgan.training.loop.train`` with ``dist`` from
``init_from_env``, what the train stage runs under ``train.nproc``) under
``python -m torch.distributed.run --standalone`` for ``--warmup`` untimed and ``--steps`` timed
steps of the shipped params.yaml (global batch = ``--per-proc-batch`` x N), ``--rounds`` times,
alternating the configurations. Prints the median images/s, the speed-up over 1 process and the
scaling efficiency (speed-up / N).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def worker(args: argparse.Namespace) -> None:
    os.environ.setdefault("TQDM_DISABLE", "1")
    import numpy as np
    import torch

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from train_speed import seconds_per_step

    from dcgan.app.params.whole import load_params
    from dcgan.app.recipe import plan_run
    from dcgan.training import distributed

    world = distributed.env_world_size()
    params = load_params(args.params)
    p = dataclasses.replace(params.train, batch_size=args.per_proc_batch * world, batch_schedule=(),
                            nproc=world, checkpoint_every=10**9, eval_every=0)
    env, device = distributed.init_from_env(torch.device(args.device), world)
    size, channels = params.prepare.image_size, params.prepare.channels
    images = np.random.default_rng(0).integers(0, 256, (max(4096, 2 * p.batch_size), channels, size, size),
                                               dtype=np.uint8)
    # every auto decided as the train stage decides it (the recipe by the data's kind, not its channels)
    run = plan_run(p, images, size, channels, None, device, env)
    s = seconds_per_step(run, images, args.warmup, args.steps, device=device, dist=env)
    if env.is_main:
        Path(args.worker_out).write_text(json.dumps({"images_per_s": p.batch_size / s, "nproc": world,
                                                     "threads": torch.get_num_threads()}))
    distributed.shutdown()


def run_config(args: argparse.Namespace, nproc: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
               str(Path(__file__).resolve()), "--worker-out", str(out), "--device", args.device,
               "--params", args.params, "--per-proc-batch", str(args.per_proc_batch),
               "--steps", str(args.steps), "--warmup", str(args.warmup)]
        r = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"error: {nproc} processes failed:\n{r.stderr[-3000:]}")
        return json.loads(out.read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nproc", type=int, nargs="+", default=[1, 2], help="process counts to time")
    ap.add_argument("--device", default="cpu", help="cpu (gloo) or cuda (NCCL, one GPU per process)")
    ap.add_argument("--threads", type=int, default=1, help="OMP threads per process (CPU)")
    ap.add_argument("--per-proc-batch", type=int, default=64, help="batch per process; global = this x N")
    ap.add_argument("--steps", type=int, default=60, help="timed steps per run")
    ap.add_argument("--warmup", type=int, default=10, help="untimed steps before timing")
    ap.add_argument("--rounds", type=int, default=3, help="alternations of the configurations")
    ap.add_argument("--params", default=str(ROOT / "params.yaml"))
    ap.add_argument("--worker-out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker_out:
        return worker(args)
    rates: dict[int, list[float]] = {n: [] for n in args.nproc}
    print(f"device {args.device}, {args.threads} thread(s) per process, batch {args.per_proc_batch} per "
          f"process, {args.steps} timed steps after {args.warmup}", flush=True)
    for r in range(args.rounds):
        for n in args.nproc:
            rates[n].append(run_config(args, n)["images_per_s"])
            print(f"  round {r + 1}: {n} process(es) {rates[n][-1]:8.1f} img/s", flush=True)
    base_n = min(args.nproc)
    base = statistics.median(rates[base_n]) / base_n
    print(f"\n| processes | images/s (median of {args.rounds}) | speed-up over 1 | scaling efficiency |")
    print("|---|---|---|---|")
    for n in args.nproc:
        med = statistics.median(rates[n])
        print(f"| {n} | {med:.1f} | {med / base:.2f}x | {med / base / n:.0%} |")


if __name__ == "__main__":
    main()
