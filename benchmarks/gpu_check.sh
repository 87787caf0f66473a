#!/usr/bin/env bash
# What the captured step owes to a GPU, on the GPU machine as it is (its own python3 and torch,
# no network, nothing installed), in at most 8 minutes. From the repo root:
#   bash benchmarks/gpu_check.sh [OUT_DIR]          # default: $OUT, else ./gpu_check_out
# Steps (expected minutes on one H200): 1. the machine (0.1); 2. the CUDA tests with their numbers
# recorded (3); 3. speed and memory of the official loop, eager and captured at batch 64 and 256
# (2). Writes OUT_DIR/gpu_check.json; exits 1 on a failed or skipped CUDA test, graph vs eager
# outside the one-ulp control, a host sync in a replay, the captured step not faster than eager
# at batch 64, its memory over 1.5x eager's, or a run over 8 minutes; exits 2, in one line, when
# there is no CUDA device. benchmarks/gpu_check.py says more; benchmarks/gpu_pipeline.sh runs
# the DVC pipeline and the Prefect deployment there (it needs wheels carried in).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c "import torch" >/dev/null 2>&1; then
  echo "gpu_check: no CUDA device here ($PY has no torch): nothing was checked"
  exit 2
fi
export PYTHONPATH="$PWD/src:$PWD${PYTHONPATH:+:$PYTHONPATH}" TQDM_DISABLE=1 PYTHONUNBUFFERED=1 \
  DVC_NO_ANALYTICS=1 CUBLAS_WORKSPACE_CONFIG=:4096:8
# the Python side keeps its own 8-minute budget; this is the net under it
timeout 570 "$PY" benchmarks/gpu_check.py --out "${1:-${OUT:-gpu_check_out}}"
rc=$?
[ "$rc" -eq 124 ] && echo "gpu_check: killed after 9.5 minutes (over its 8-minute budget)"
exit "$rc"
