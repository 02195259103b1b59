# The two set-up commands of the README: `make demo` and `make test`. Both create .venv and
# install everything they need from the project's own files.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: demo test lint typecheck unit bench bench-gcp bench-azure clean emulators faketime

# Azurite, the Azure Storage emulator the tests and the demo start, is a Node package pinned in
# package.json / package-lock.json and installed into node_modules/ (`npm ci`). No Node, no
# tests: make fails and says how to get it, rather than skipping Azure Blob silently.
NODE_STAMP := node_modules/.installed-stamp
NODE_HINT := Azurite (the Azure Blob emulator the tests start) needs Node.js 20+ and npm: \
  install them from https://nodejs.org/en/download, or with your package manager \
  (Debian/Ubuntu: apt-get install nodejs npm; macOS: brew install node), then run make again.

$(NODE_STAMP): package.json package-lock.json
	@command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || \
	  { echo "make: node/npm not found. $(NODE_HINT)" >&2; exit 1; }
	npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

# libfaketime moves Azurite's clock, so tests can write blobs with a Last-Modified in the past.
# Installed with apt-get when make runs as root on Debian/Ubuntu; otherwise make says how.
FAKETIME_HINT := libfaketime is needed to backdate blobs in Azurite: \
  run sudo apt-get install faketime (Debian/Ubuntu), then make again.

faketime:
	@if [ -n "$$JANITOR_LIBFAKETIME" ] || ls /usr/lib/*/faketime/libfaketime.so.1 \
	    /usr/lib/faketime/libfaketime.so.1 2>/dev/null | grep -q .; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "apt-get install faketime"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq faketime >/dev/null 2>&1 || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq faketime; }; \
	else echo "make: $(FAKETIME_HINT)" >&2; exit 1; fi

emulators: $(NODE_STAMP) faketime

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[all,dev]'
	touch $(STAMP)

demo: $(STAMP) emulators
	$(BIN)/janitor demo

# Lint, type-check, then the whole suite. The emulators (moto server, the local GCP, Azure and
# Slack servers, the Cloud Storage emulator, Azurite) are started by the suite's own fixtures on
# 127.0.0.1; outside the venv they need node_modules/ (Azurite) and libfaketime.
test: $(STAMP) emulators
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	@# pytest exits 5 when it collected nothing: a suite that runs no test fails here.
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS); status=$$?; \
	  if [ $$status -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; \
	  exit $$status

unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

# The benchmark runs Cloud Custodian beside janitor. c7n pins its own boto3, so both live in a
# venv of their own, kept apart from .venv. BENCH_ARGS: e.g. --quick, --endpoints 2000.
BENCH_VENV := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed-stamp
BENCH_ARGS ?=

$(BENCH_STAMP): pyproject.toml
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install --quiet -e '.[aws,demo]' c7n
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python bench/api_calls.py $(BENCH_ARGS)

# The GCP benchmark compares janitor with no other tool, so it needs no c7n and runs from .venv
# (the `all` extra holds gcp, and demo's cryptography for the generated service-account key).
# BENCH_GCP_ARGS: e.g. --vms 2000, --regions us-central1,europe-west4.
BENCH_GCP_ARGS ?=

bench-gcp: $(STAMP)
	$(BIN)/python bench/gcp.py $(BENCH_GCP_ARGS)

# The Azure benchmark, likewise from .venv (the `all` extra holds azure, and demo's cryptography
# for the local server's test CA). BENCH_AZURE_ARGS: e.g. --vms 2000, --agent 900.
BENCH_AZURE_ARGS ?=

bench-azure: $(STAMP)
	$(BIN)/python bench/azure.py $(BENCH_AZURE_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache node_modules
