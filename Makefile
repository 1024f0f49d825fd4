# CVITX video analysis. `make demo` runs the whole system locally; `make test` runs the tests.
SHELL := /bin/bash
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
REQ_HASH := $(shell cat requirements.txt requirements-test.txt pyproject.toml | sha256sum | cut -c1-12)
STAMP := $(VENV)/.installed-$(REQ_HASH)
OPENCV_HEADLESS := $(shell grep -E '^opencv-python-headless==' requirements.txt)

.PHONY: help venv deps deps-demo test demo bench soak clean

help:
	@echo "make demo   - build the environment, start the local stack and run the demo end to end"
	@echo "make test   - build the environment and run the test suite (what CI runs)"
	@echo "make bench  - benchmarks a-e, side by side (JSON); BENCH_ARGS=--quick for a short run"
	@echo "make soak   - 60 videos through 2+2 workers under SIGKILLs and a 90 s database outage (SOAK_ARGS=--videos N)"
	@echo "make deps   - check/install system packages (PostgreSQL server binaries)"
	@echo "make clean  - remove the virtualenv and local stack state"

$(STAMP): requirements.txt requirements-test.txt pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.txt -r requirements-test.txt
	@# ultralytics and rapidocr depend on the GUI build of OpenCV (needs libGL); keep only the headless one.
	$(BIN)/pip uninstall -q -y opencv-python >/dev/null 2>&1 || true
	$(BIN)/pip install -q --disable-pip-version-check --force-reinstall --no-deps "$(OPENCV_HEADLESS)"
	$(BIN)/pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	@rm -f $(VENV)/.installed-*
	@touch $@

venv: $(STAMP)

# System packages beyond pip: PostgreSQL server binaries (initdb, pg_ctl) for the throwaway
# cluster, and Chromium for the report's browser test. Installed with apt when run as root,
# otherwise checked, with the command to run.
PG_OK = ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1
CHROMIUM_OK = command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1
define need_packages
	@missing=""; $(PG_OK) || missing="$$missing postgresql"; $(if $(1),$(CHROMIUM_OK) || missing="$$missing chromium";) \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing system packages:$$missing (apt-get)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	else \
	  echo "missing system packages:$$missing"; \
	  echo "  PostgreSQL server binaries (initdb, pg_ctl): sudo apt-get install postgresql   (macOS: brew install postgresql@15)"; \
	  echo "  Chromium, for the HTML report test:          sudo apt-get install chromium     (macOS: brew install --cask chromium)"; \
	  exit 1; \
	fi
endef

deps:       # everything the tests need
	$(call need_packages,chromium)

deps-demo:  # what the demo needs
	$(call need_packages,)

# Two test processes (most tests wait on real worker processes, a database outage, a long poll),
# then the few that need the machine to themselves (marker "serial").
test: venv deps
	@# The CPU first, so that a CI log says what it ran on (OpenVINO's precision and speed depend on it).
	@$(BIN)/python -c "from video_analysis.bench.common import cpu_info, cpu_line; c = cpu_info(); \
	  from video_analysis.worker_utils.runtimes import cpu_capabilities; \
	  print('CPU:', cpu_line(c), '|', c.get('cpu_id'), '| OpenVINO offers', ' '.join(cpu_capabilities()) or '-')"
	$(BIN)/python -m pytest -q -n 2 --dist loadfile -m "not serial" --durations=15
	$(BIN)/python -m pytest -q -m serial --durations=5

demo: venv deps-demo
	$(BIN)/python -m video_analysis demo

# a-e of the performance issue, side by side in one run; JSON on stdout and in
# artifacts/bench/results.json (about 7-9 min on 2 cores; BENCH_ARGS=--quick for a smoke run).
bench: venv deps-demo
	$(BIN)/python -m video_analysis.bench $(BENCH_ARGS)

# The whole system under chaos (about 10-15 min on 2 cores): checks and figures as JSON, exit 1 on a failed check.
soak: venv deps-demo
	$(BIN)/python -m video_analysis.bench.soak $(SOAK_ARGS)

clean:
	-$(BIN)/python -m video_analysis stack down 2>/dev/null
	rm -rf $(VENV) .stack
