# The Muaalem mesh. `make demo` runs a real assessment through the whole mesh; `make test` runs
# the tests. Both set up everything they need on a fresh machine.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.setup-stamp
# torch is installed first, pinned, so that nothing resolves an unpinned torch (and its CUDA
# wheels); on a GPU host set TORCH_INDEX to the CUDA wheel index of the same version.
TORCH_VERSION ?= 2.13.0
TORCH_INDEX ?=
# The peer environment's setup script (bench/peer/setup_env.sh) reads it too.
export TORCH_INDEX
PYTEST_ARGS ?=
DEBIAN_PACKAGES := redis-server espeak-ng prometheus chromium chromium-driver tmux

.PHONY: setup system-deps protos serve demo demo-model demo-calibrate demo-eval test test-fast soak bench lint images reliability monitoring clean help

help:
	@echo "make demo   - set up, start the five services, assess a synthetic recitation with named mistakes, stop"
	@echo "make demo-model - train the demo checkpoint on the synthetic reciter (CPU, ~1-2 h; committed already)"
	@echo "make demo-calibrate - fit the tajweed thresholds on surahs 80-89, written beside the demo checkpoint"
	@echo "make demo-eval  - the demo checkpoint's figures on surahs 90-114 (PER, recall, false alarms, uncertain)"
	@echo "make test   - set up (incl. redis-server, espeak-ng, prometheus, chromium) and run the test suite"
	@echo "make soak   - the soak tests make test leaves out: 9-minute live streams, the whole-mushaf index, peer conformance, load"
	@echo "make serve  - run the mesh on loopback until Ctrl-C (asr backend auto: the graph exported once into the cache)"
	@echo "make bench  - benchmarks; writes docs/benchmarks.md"
	@echo "make lint   - ruff, mypy, buf lint, generated-code freshness"
	@echo "make monitoring - regenerate the alerts, rules and dashboard in deploy/k8s/monitoring"
	@echo "make protos - regenerate services/common/pb from protos/"
	@echo "make images - build the container images (needs a Docker engine)"
	@echo "make reliability - fault, load and bad-input runs; writes docs/reliability.md"

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "torch==$(TORCH_VERSION)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PY) -m pip install -q -e ".[all,dev]"
	@touch $(STAMP)

# Debian packages the tests use for real: redis-server (the cache), espeak-ng (synthetic
# recitations for the energy checks) and prometheus (promtool and a real Prometheus for the
# rules and alerts). Installed only when missing.
system-deps:
	@missing=""; for p in $(DEBIAN_PACKAGES); do \
		dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

protos: setup
	$(PY) -m services.common.protogen
	cd protos && $(abspath $(VENV))/bin/buf lint

serve: setup
	$(PY) -m services.launcher

demo: setup system-deps
	$(PY) -m services.demo

# The demo checkpoint: renders the training split with the synthetic reciter (cached in
# .cache/demo-train), trains for DEMO_MODEL_MINUTES on DEMO_MODEL_THREADS threads and writes
# services/asr/demo_model (weights, recipe.json).
DEMO_MODEL_MINUTES ?= 80
DEMO_MODEL_THREADS ?= 2
demo-model: setup system-deps
	$(PY) -m services.demo.training --out services/asr/demo_model --data .cache/demo-train/data.pt \
		--budget-min $(DEMO_MODEL_MINUTES) --threads $(DEMO_MODEL_THREADS) --seed 0

# The thresholds of the verdicts, fitted on the calibration split (surahs 80-89: neither trained
# nor evaluated on) and written as calibration.json beside the checkpoint, which serves them.
demo-calibrate: setup system-deps
	$(PY) -m bench.calibrate --checkpoint services/asr/demo_model

demo-eval: setup system-deps
	$(PY) -m bench.demo_model_eval --checkpoint services/asr/demo_model --out services/asr/demo_model/figures.json

# The soak tests (minutes of streamed audio, the whole mushaf, the peer environment, load) are make soak's, so the suite
# stays well under 15 minutes on 2 cores.
test: setup system-deps
	$(PY) -m pytest -q -m "not soak" $(PYTEST_ARGS)

soak: setup system-deps
	$(PY) -m pytest -q -m soak $(PYTEST_ARGS)

test-fast: setup system-deps
	$(PY) -m pytest -q -m "not slow and not soak" $(PYTEST_ARGS)

bench: setup system-deps
	$(PY) -m bench.run

lint: setup
	$(VENV)/bin/ruff check services tests bench deploy
	$(VENV)/bin/mypy services bench
	cd protos && $(abspath $(VENV))/bin/buf lint
	$(PY) -m services.common.protogen --check
	$(PY) -m deploy.k8s.monitoring.generate --check

# Rewrites deploy/k8s/monitoring (rules, PrometheusRule, promtool tests, Grafana dashboard).
monitoring: setup
	$(PY) -m deploy.k8s.monitoring.generate

images:
	deploy/docker/build.sh

reliability: setup system-deps
	$(PY) -m pytest -q tests/reliability --reliability-report docs/reliability.md $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .venv-peer .pytest_cache .mypy_cache .ruff_cache
