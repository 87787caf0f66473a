#!/usr/bin/env bash
# What the captured step owes to a GPU, on the GPU machine as it is (its own python3 and torch,
# no network), in at most 8 minutes. Its image lacks only pydantic (and its helpers) of what this
# needs: run `make gpu-wheels-min` here (5 wheels, a few MB) and carry .whl; they are installed
# offline into /tmp/dcgan-site (benchmarks/gpu_check_wheels.txt). From the repo root there:
#   bash benchmarks/gpu_check.sh [OUT_DIR]          # default: $OUT, else ./gpu_check_out
#   bash benchmarks/gpu_check.sh --install-only     # only install and check the carried wheels
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
WHEELS=${DCGAN_WHEELS:-.whl}      # the carried wheels (make gpu-wheels-min)
SITE=${DCGAN_SITE:-/tmp/dcgan-site}  # where they are installed, first on PYTHONPATH

# what the project needs beyond the image (benchmarks/gpu_check_wheels.txt, pinned): the carried
# wheels, installed offline into a folder of their own, first on PYTHONPATH, whatever the image
# holds (its typing-extensions may be older than pydantic needs); then Python is checked to see
# each pin at its version in that folder. One line and exit 2 on any failure.
install_wheels() {
  local wheels=() pins=() pin found log seen
  for pin in $(grep -v '^#' benchmarks/gpu_check_wheels.txt); do
    found=$(ls "$WHEELS"/"${pin%%==*}"-"${pin##*==}"-*.whl 2>/dev/null | head -1)
    [ -n "$found" ] || { echo "gpu_check: $WHEELS/ holds no wheel of $pin (run \`make gpu-wheels-min\` and carry .whl): nothing was checked"; exit 2; }
    wheels+=("$found")
    pins+=("$pin")
  done
  rm -rf "$SITE"
  if ! log=$("$PY" -m pip install -q --no-index --no-deps --no-compile --target "$SITE" "${wheels[@]}" 2>&1); then
    echo "gpu_check: the carried wheels did not install: $(printf '%s' "$log" | grep -m1 -i error || printf '%s' "$log" | tail -1)"
    exit 2
  fi
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
  if ! seen=$("$PY" -c '
import importlib.metadata as md, os, sys
site, pins = os.path.realpath(sys.argv[1]), [a.split("==") for a in sys.argv[2:]]
def where(name):
    d = md.distribution(name)
    return d.version, os.path.realpath(d.locate_file(""))
wrong = [n + "==" + v + " (sees " + " in ".join(where(n)) + ")" for n, v in pins if where(n) != (v, site)]
print(", ".join(wrong) or "ok")' "$SITE" "${pins[@]}" 2>&1) || [ "$seen" != ok ]; then
    echo "gpu_check: $PY does not see the carried wheels first: $(printf '%s' "$seen" | tail -1)"
    exit 2
  fi
  echo "gpu_check: ${#pins[@]} carried wheels installed into $SITE: ${pins[*]}"
}

if [ "${1:-}" = "--install-only" ]; then  # the install step alone (no GPU needed): a dry run of the carry
  [ -d "$WHEELS" ] || { echo "gpu_check: no $WHEELS/ to install (run \`make gpu-wheels-min\`)"; exit 2; }
  install_wheels
  exit 0
fi
if ! "$PY" -c "import torch" >/dev/null 2>&1; then
  echo "gpu_check: no CUDA device here ($PY has no torch): nothing was checked"
  exit 2
fi
if ! seen=$("$PY" -c "import torch; print(torch.__version__); assert torch.cuda.is_available()" 2>/dev/null); then
  echo "gpu_check: no CUDA device here (torch ${seen:-?} sees none): nothing was checked"
  exit 2
fi
# Without .whl/, a Python that already reads params.yaml (a project venv on a CUDA box) goes on
# as it is.
if [ -d "$WHEELS" ]; then
  install_wheels
elif ! PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" "$PY" -c "import dcgan.app.params.typed" >/dev/null 2>&1; then
  echo "gpu_check: $PY cannot read params.yaml (no pydantic) and there is no $WHEELS/ (run \`make gpu-wheels-min\` and carry .whl): nothing was checked"
  exit 2
fi
export PYTHONPATH="$PWD/src:$PWD${PYTHONPATH:+:$PYTHONPATH}" TQDM_DISABLE=1 PYTHONUNBUFFERED=1 \
  DVC_NO_ANALYTICS=1 CUBLAS_WORKSPACE_CONFIG=:4096:8
# the Python side keeps its own 8-minute budget; this is the net under it
timeout 570 "$PY" benchmarks/gpu_check.py --out "${1:-${OUT:-gpu_check_out}}"
rc=$?
[ "$rc" -eq 124 ] && echo "gpu_check: killed after 9.5 minutes (over its 8-minute budget)"
exit "$rc"
