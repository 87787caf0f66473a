# Two commands do all the set-up: `make repro` and `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(abspath $(VENV))/bin
STAMP  := $(VENV)/.installed
# stages call `python -m dcgan.app.stages.*`: make sure that is the venv's python
export PATH := $(BIN):$(PATH)

LOCK   := requirements.lock
# pytest-xdist workers for `make test`: auto = one per CPU core (the slow end-to-end tests run
# beside the rest instead of after them); TEST_WORKERS=0 runs everything in this process
TEST_WORKERS ?= auto

.PHONY: install browser repro test test-fast lint deps lock gpu-wheels gpu-wheels-min help

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml $(LOCK)
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (Python 3.11 is required)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -c $(LOCK) -e '.[test]'
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install the package, every dependency at its version in requirements.lock

# headless Chromium for the test that opens review.html in a browser (tests/test_review_browser.py):
# the system package, installed with apt where it is missing (as root, or through sudo)
browser:  ## install Chromium (the Debian/Ubuntu package) where it is missing
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || { \
	  if command -v apt-get >/dev/null; then \
	    SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	    $$SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 || \
	      { $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends chromium; }; \
	  else echo "warning: no apt-get here: install Chromium for the browser test (it is skipped without)"; fi; }

repro: $(STAMP)  ## run the whole DVC pipeline (prepare -> ... -> evaluate)
	$(BIN)/dvc repro

test: $(STAMP) browser  ## the layer contracts (lint-imports), then the whole test suite, slow end-to-end tests included
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal

test-fast: $(STAMP)  ## the layer contracts, then the tests without the slow end-to-end ones
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal -m "not slow"

deps: $(STAMP)  ## rewrite dvc.yaml's src deps (each stage's imports), every stage's params list (the keys it reads) and docs/fan_out.md
	$(BIN)/python -m dcgan.app.stage_deps --write

lint: $(STAMP)  ## ruff
	$(BIN)/ruff check src tests flows benchmarks

lock: $(STAMP)  ## re-resolve requirements.lock from pyproject.toml (after editing dependencies)
	$(BIN)/python -m pip install -c $(LOCK) -e '.[lock]'
	$(BIN)/pip-compile --quiet --upgrade --extra test --extra celeba --strip-extras --allow-unsafe \
	  --no-emit-index-url --no-emit-find-links --output-file $(LOCK) pyproject.toml
	@echo "requirements.lock refreshed: review 'git diff $(LOCK)', then 'make install test'"

WHEEL_PLATFORMS := $(foreach p,manylinux_2_28_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux_2_5_x86_64 manylinux1_x86_64,--platform $(p))

gpu-wheels-min: $(STAMP)  ## only the wheels benchmarks/gpu_check.sh needs (pydantic, its helpers, typing-extensions) into .whl/
	rm -rf .whl && mkdir -p .whl
	$(BIN)/python -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
	  $(WHEEL_PLATFORMS) -d .whl -r benchmarks/gpu_check_wheels.txt
	@du -sh .whl

gpu-wheels: $(STAMP)  ## wheels of dvc, dvclive, prefect and gto for the GPU machine (benchmarks/gpu_pipeline.sh) into .whl/
	rm -rf .whl && mkdir -p .whl
	$(BIN)/python -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
	  $(WHEEL_PLATFORMS) -d .whl -r benchmarks/gpu_wheels.txt
	$(BIN)/python -m pip wheel --quiet --no-deps -w .whl -r benchmarks/gpu_wheels_sdist.txt
	@du -sh .whl
