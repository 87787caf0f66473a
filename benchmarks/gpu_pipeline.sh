#!/usr/bin/env bash
# The DVC pipeline and one run of the Prefect retraining deployment on the GPU machine as it is.
# That machine has python3 3.12 with torch but no dvc, dvclive, prefect or gto, and no network:
# their wheels travel with the working tree. Here: `make gpu-wheels` (.whl/, about 47 MB; with
# the tree about 51 MB of the 64 MiB that may travel); there, with .whl carried:
#   bash benchmarks/gpu_pipeline.sh [OUT_DIR]         # default: $OUT, else ./gpu_check_out
# It is apart from gpu_check.sh because the two do not fit one 8-minute run. Steps (expected
# minutes on one H200):
#   1. the wheels into /tmp/site, offline (0.3)
#   2. a git repository of the working tree (the flow's experiments and commits need one) (0.1)
#   3. dvc repro with the shipped params (train.compile none: eager), every stage timed
#      (benchmarks/repro_times.py) (2)
#   4. train .. evaluate again with train.compile graph: the captured run's metrics beside it (1.5)
#   5. the weekly-retrain deployment through a process worker, one run (3)
# Writes OUT_DIR/gpu_pipeline.log and the two metrics files; exits non-zero at the first
# failing step, naming it; exits 2 in one line when there is no CUDA device or no wheels.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT_DIR=${1:-${OUT:-gpu_check_out}}
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" >/dev/null 2>&1; then
  echo "gpu_pipeline: no CUDA device here ($PY has no torch that sees one): nothing was run"
  exit 2
fi
if ! ls .whl/*.whl >/dev/null 2>&1; then
  echo "gpu_pipeline: no wheels in .whl/ (run \`make gpu-wheels\` here and carry .whl): nothing was run"
  exit 2
fi
mkdir -p "$OUT_DIR"
LOG="$OUT_DIR/gpu_pipeline.log"
step() { echo "=== $*" | tee -a "$LOG"; }
fail() { echo "gpu_pipeline: step '$1' failed (see $LOG)"; exit 1; }

step "1. wheels"
"$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  >>"$LOG" 2>&1 || fail wheels
mkdir -p /tmp/shim && ln -sf "$(command -v "$PY")" /tmp/shim/python  # the stages run `python -m ...`
export PYTHONPATH="/tmp/site:$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PATH="/tmp/shim:/tmp/site/bin:$PATH" \
  TQDM_DISABLE=1 PYTHONUNBUFFERED=1 DVC_NO_ANALYTICS=1 PREFECT_SERVER_ANALYTICS_ENABLED=false
dvc version >>"$LOG" 2>&1 || fail "dvc version"

step "2. git"
if [ ! -d .git ]; then
  git init -q && git add -A && git -c user.name=gpu -c user.email=gpu@localhost commit -qm "gpu check" \
    >>"$LOG" 2>&1 || fail git
fi
git config user.name >/dev/null || git config user.name gpu
git config user.email >/dev/null || git config user.email gpu@localhost

step "3. dvc repro (shipped params: train.compile none), per stage"
"$PY" benchmarks/repro_times.py 2>&1 | tee -a "$LOG" || fail "dvc repro"
cat dvclive/metrics.json >>"$LOG" 2>/dev/null
cp reports/metrics.json "$OUT_DIR/metrics_eager.json"

step "4. train .. evaluate with train.compile graph"
sed -i.bak 's/^  compile:.*/  compile: graph/' params.yaml && grep -n "^  compile:" params.yaml >>"$LOG"
"$PY" benchmarks/repro_times.py train sample evaluate 2>&1 | tee -a "$LOG" || fail "dvc repro (graph)"
cat dvclive/metrics.json >>"$LOG" 2>/dev/null
cp reports/metrics.json "$OUT_DIR/metrics_graph.json"
mv params.yaml.bak params.yaml

step "5. one run of the weekly-retrain deployment through a process worker"
export PREFECT_HOME=/tmp/prefect PREFECT_API_URL=http://127.0.0.1:4200/api
setsid prefect server start --host 127.0.0.1 --port 4200 >>"$OUT_DIR/prefect-server.log" 2>&1 &
for _ in $(seq 90); do "$PY" -c "import urllib.request as u; u.urlopen('$PREFECT_API_URL/health')" 2>/dev/null && break; sleep 1; done
prefect work-pool create dcgan-gpu --type process >>"$LOG" 2>&1
prefect --no-prompt deploy -n weekly-retrain >>"$LOG" 2>&1 || fail "prefect deploy"
prefect worker start --pool dcgan-gpu --run-once >>"$OUT_DIR/prefect-worker.log" 2>&1 &
WORKER=$!
prefect deployment run dcgan-retrain/weekly-retrain -p name=gpu-check --watch --watch-timeout 300 \
  2>&1 | tee -a "$LOG" || fail "the deployment run"
wait "$WORKER"
echo "gpu_pipeline: passed -> $OUT_DIR" | tee -a "$LOG"
