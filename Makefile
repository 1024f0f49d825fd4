# CVITX video analysis. `make demo` runs the whole system locally; `make test` runs the tests.
SHELL := /bin/bash
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
REQ_HASH := $(shell cat requirements.txt requirements-test.txt pyproject.toml | sha256sum | cut -c1-12)
STAMP := $(VENV)/.installed-$(REQ_HASH)
OPENCV_HEADLESS := $(shell grep -E '^opencv-python-headless==' requirements.txt)

.PHONY: help venv deps test demo bench clean

help:
	@echo "make demo   - build the environment, start the local stack and run the demo end to end"
	@echo "make test   - build the environment and run the test suite (what CI runs)"
	@echo "make bench  - benchmarks (print JSON figures)"
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

# System packages beyond pip: PostgreSQL server binaries (initdb, pg_ctl) for the throwaway cluster.
deps:
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing PostgreSQL server binaries (apt-get install postgresql)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	else \
	  echo "PostgreSQL server binaries (initdb, pg_ctl) are missing."; \
	  echo "Install them: sudo apt-get install postgresql   (Debian/Ubuntu)"; \
	  echo "          or: brew install postgresql@15        (macOS)"; exit 1; \
	fi

test: venv deps
	$(BIN)/python -m pytest -q

demo: venv deps
	$(BIN)/python -m video_analysis stack up
	source .stack/env && $(BIN)/python -m video_analysis setup; rc=$$?; \
	  $(BIN)/python -m video_analysis stack down; exit $$rc

clean:
	-$(BIN)/python -m video_analysis stack down 2>/dev/null
	rm -rf $(VENV) .stack
