#!/usr/bin/env bash
# Training speed on one GPU next to the plain PyTorch DCGAN example's loop (under 5 minutes).
#   bash benchmarks/gpu.sh            # after `make install` (or with the project's venv active)
# Prints images/s of both loops and the ratio, for fp32, bf16 and fp16 autocast, with and
# without channels_last, then bf16 with torch.compile (NCHW), then the captured step
# (train.compile: graph) at batch 64 and 256 with kernel time and fraction of peak, at the
# example's config (64x64x3, ngf=ndf=64) and the project's default params.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
for precision in fp32 bf16 fp16; do
  for cl in off on; do
    echo "=== precision=$precision channels_last=$cl"
    "$PY" benchmarks/train_speed.py --device cuda --precision "$precision" --channels-last "$cl" \
        --configs example default_plain --rounds 3 --steps 40 --warmup 10
  done
done
for mode in default reduce-overhead; do  # torch.compile (inductor fails with channels_last on CUDA: NCHW)
  echo "=== precision=bf16 channels_last=off compile=$mode"
  "$PY" benchmarks/train_speed.py --device cuda --precision bf16 --channels-last off --compile "$mode" \
      --configs example --rounds 2 --steps 40 --warmup 15
done
# the whole step captured as one CUDA graph, at the example's batch and at 256 (both loops at that
# batch), with the step's GPU kernel time and the fraction of the H200's dense bf16 peak
for batch in 64 256; do
  for cl in off on; do
    echo "=== precision=bf16 channels_last=$cl compile=graph batch=$batch"
    "$PY" benchmarks/train_speed.py --device cuda --precision bf16 --channels-last "$cl" --compile graph \
        --configs example --batch "$batch" --rounds 3 --steps 40 --warmup 10 --profile --peak-tflops 989
  done
  echo "=== precision=bf16 channels_last=on compile=none batch=$batch (eager, profiled)"
  "$PY" benchmarks/train_speed.py --device cuda --precision bf16 --channels-last on --compile none \
      --configs example --batch "$batch" --rounds 2 --steps 40 --warmup 10 --profile --peak-tflops 989
done
