#!/usr/bin/env bash
# Everything issue 24 owes to a GPU, in one run (about 10 minutes on an H200; run it with a
# timeout that leaves room for a rerun). From the repo root of a fresh checkout:
#   bash benchmarks/gpu_check.sh 2>&1 | tee gpu_check.log
# 1. install (make install: the pinned torch), 2. the tests marked cuda (captured vs eager in fp32
# with deterministic algorithms and in bf16, replays under set_sync_debug_mode("error")),
# 3. the speed rows (benchmarks/gpu.sh's graph rows: batch 64 and 256, kernel time, % of peak),
# 4. the default pipeline on the GPU (per-stage times) and once more with train.compile graph,
# 5. one run of the Prefect retraining deployment through a process worker on this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
export TQDM_DISABLE=1 DVC_NO_ANALYTICS=1 PREFECT_SERVER_ANALYTICS_ENABLED=false
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
make install >/dev/null
PY=.venv/bin/python
export PATH="$PWD/.venv/bin:$PATH"

echo "=== 2. tests marked cuda"
CUBLAS_WORKSPACE_CONFIG=:4096:8 "$PY" -m pytest -q -m cuda -s tests/test_graphed_cuda.py

echo "=== 3. speed: eager vs captured, batch 64 and 256 (example config, bf16)"
for batch in 64 256; do
  for mode in none graph; do
    "$PY" benchmarks/train_speed.py --device cuda --precision bf16 --channels-last on --compile "$mode" \
        --configs example --batch "$batch" --rounds 3 --steps 40 --warmup 10 --profile --peak-tflops 989
  done
done

echo "=== 4. the pipeline on the GPU"
git init -q 2>/dev/null || true
dvc repro --quiet validate
"$PY" benchmarks/repro_times.py
sha256sum models/gan/*.safetensors reports/metrics.json
cp reports/metrics.json /tmp/metrics_eager.json
dvc exp run --quiet -S train.compile=graph -n graph-gpu
dvc exp show --only-changed --md | head -20

echo "=== 5. one deployment run of the retraining flow through a process worker"
prefect server start --host 127.0.0.1 --port 4200 >/tmp/prefect-server.log 2>&1 &
SERVER=$!
export PREFECT_API_URL=http://127.0.0.1:4200/api
for _ in $(seq 60); do curl -sf "$PREFECT_API_URL/health" >/dev/null && break; sleep 1; done
prefect work-pool create dcgan-gpu --type process >/dev/null || true
prefect --no-prompt deploy -n weekly-retrain
prefect worker start --pool dcgan-gpu --run-once >/tmp/prefect-worker.log 2>&1 &
WORKER=$!
prefect deployment run dcgan-retrain/weekly-retrain -p 'overrides={"train.compile": "graph"}' -p name=gpu-check \
    --watch --watch-timeout 900
wait "$WORKER" || true
tail -20 /tmp/prefect-worker.log
kill "$SERVER" || true
