#!/usr/bin/env bash
# Training speed on one GPU next to the plain PyTorch DCGAN example's loop (under 5 minutes).
#   bash benchmarks/gpu.sh            # after `make install` (or with the project's venv active)
# Prints images/s of both loops and the ratio, for fp32, bf16 and fp16 autocast, with and
# without channels_last (then bf16 with torch.compile and CUDA graphs), at the example's config (64x64x3, ngf=ndf=64, batch 64) and the
# project's default params.
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
for mode in default reduce-overhead; do  # torch.compile; reduce-overhead adds CUDA graphs
  echo "=== precision=bf16 channels_last=on compile=$mode"
  "$PY" benchmarks/train_speed.py --device cuda --precision bf16 --channels-last on --compile "$mode" \
      --configs example --rounds 2 --steps 40 --warmup 15
done
