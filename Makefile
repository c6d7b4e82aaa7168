# The two set-up commands of the README:
#   make demo   installs the core package and runs `hive demo` on the embedded toy corpus (offline)
#   make test   installs everything (system FFmpeg libraries, torch CPU, extras) and runs the tests
# Both install into a virtualenv: the active one when there is one ($VIRTUAL_ENV), else the
# project's ./.venv, made with the system's `python3 -m venv`. No `python` command is assumed (a
# stock Debian has only python3), and pip never writes into the system Python (PEP 668). System
# packages (python3-venv when the venv module is missing; FFmpeg, libsndfile, chromium for the
# tests) are installed with apt-get: directly as root, else through sudo.
# Both install the versions tested together, pinned in constraints.txt (pip install -c).
PYTHON3 ?= python3
VENV ?= $(if $(VIRTUAL_ENV),$(VIRTUAL_ENV),.venv)
PYTHON = $(VENV)/bin/python
PIP = $(PYTHON) -m pip
CONSTRAINTS ?= constraints.txt
PIP_INSTALL = $(PIP) install -q -c $(CONSTRAINTS)
# an extra index for torch/torchcodec, e.g. https://download.pytorch.org/whl/cpu for the CPU build
# (PyPI's Linux torch wheel is the CUDA one); empty: the configured indexes only
TORCH_INDEX ?=
APT_PACKAGES = ffmpeg libsndfile1 chromium
# `apt-get install` as root, else through sudo (append the packages)
APT_INSTALL = if [ "$$(id -u)" = 0 ]; then sudo=; else sudo=sudo; fi; \
	$$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq

.PHONY: demo test test-fast venv setup-core setup-test system-packages bench

# the virtualenv (nothing to do when $VIRTUAL_ENV is active); python3-venv when ensurepip is missing
$(VENV)/bin/python:
	@if command -v $(PYTHON3) >/dev/null 2>&1 && ! $(PYTHON3) -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then \
		echo "make: $$(command -v $(PYTHON3)) is Python $$($(PYTHON3) -c 'import platform; print(platform.python_version())');" \
		     "hive-uss needs Python 3.11 or newer (the versions pinned in $(CONSTRAINTS) need it):" \
		     "install one and run e.g. make PYTHON3=python3.11" >&2; \
		exit 2; \
	fi
	@if ! $(PYTHON3) -c 'import ensurepip, venv' >/dev/null 2>&1; then \
		pkg=$$($(PYTHON3) -c 'import sys; print("python%d.%d-venv" % sys.version_info[:2])' 2>/dev/null || echo python3-venv); \
		echo "make: $(PYTHON3) cannot make a virtualenv (no venv/ensurepip module): installing $$pkg"; \
		$(APT_INSTALL) $$pkg; \
	fi
	$(PYTHON3) -m venv $(VENV)

# a venv without pip (made by uv, or cut short) gets it from ensurepip
venv: $(VENV)/bin/python
	@$(PYTHON) -m pip --version >/dev/null 2>&1 || $(PYTHON) -m ensurepip --upgrade >/dev/null

system-packages:
	@if ! command -v ffmpeg >/dev/null 2>&1 || ! command -v chromium >/dev/null 2>&1 || \
		! PATH="$$PATH:/sbin:/usr/sbin" ldconfig -p | grep -q libsndfile; then \
		$(APT_INSTALL) $(APT_PACKAGES); \
	fi

setup-core: venv
	# the core package plus matplotlib (card plots, the demo's inspect pages); no torch
	$(PIP_INSTALL) -e ".[card]"

setup-test: system-packages venv
	# torch first (constraints.txt: 2.13.0, the CPU wheel on these machines; torchcodec 0.13.0 matches it)
	$(PIP_INSTALL) $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX)) torch torchcodec
	$(PIP_INSTALL) -e ".[dev,models,audio,card,eval]"

demo: setup-core
	$(VENV)/bin/hive demo

test: setup-test
	$(PYTHON) -m pytest -q

# the tests not marked slow (no subprocess, accelerate, Chromium, kill/resume or end-to-end test), in
# the environment `make test` installed: under a minute on 2 cores (docs/development.md)
test-fast:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "make test-fast: $(PYTHON) not found; run make test once to install everything" >&2; exit 2; }
	$(PYTHON) -m pytest -q -m "not slow"

bench: setup-test
	$(PYTHON) benchmarks/run_all.py
