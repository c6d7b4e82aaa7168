# The two set-up commands of the README:
#   make demo   installs the core package and runs `hive demo` on the embedded toy corpus (offline)
#   make test   installs everything (system FFmpeg libraries, torch CPU, extras) and runs the tests
# Both install the versions tested together, pinned in constraints.txt (pip install -c).
PYTHON ?= python
PIP ?= $(PYTHON) -m pip
CONSTRAINTS ?= constraints.txt
PIP_INSTALL = $(PIP) install -q -c $(CONSTRAINTS)
APT_PACKAGES = ffmpeg libsndfile1 chromium

.PHONY: demo test setup-core setup-test system-packages bench

system-packages:
	@if ! command -v ffmpeg >/dev/null 2>&1 || ! command -v chromium >/dev/null 2>&1 || ! ldconfig -p | grep -q libsndfile; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES); \
		else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES); fi; \
	fi

setup-core:
	# the core package plus matplotlib (card plots, the demo's inspect pages); no torch
	$(PIP_INSTALL) -e ".[card]"

setup-test: system-packages
	# torch first (constraints.txt: 2.13.0, the CPU wheel on these machines; torchcodec 0.13.0 matches it)
	$(PIP_INSTALL) torch torchcodec
	$(PIP_INSTALL) -e ".[dev,models,audio,card,eval]"

demo: setup-core
	hive demo

test: setup-test
	$(PYTHON) -m pytest -q

bench: setup-test
	$(PYTHON) benchmarks/run_all.py
