#!/usr/bin/env bash
# DDP scaling on the GPUs of one machine: images/s with 1 GPU and with every visible GPU (one
# process each, NCCL), shipped params, 256 images per GPU. A few minutes.
#   bash benchmarks/gpu_scaling.sh          # after `make install`
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python
N=$(nvidia-smi -L | wc -l)
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
counts="1"
for n in 2 4 8; do [ "$n" -le "$N" ] && counts="$counts $n"; done
[ "$N" -gt 1 ] || echo "only one GPU visible: nothing to scale to"
"$PY" benchmarks/scaling.py --device cuda --nproc $counts --per-proc-batch 256 --steps 100 --warmup 20 --rounds 2
