# The two set-up commands of the README:
#   make demo   installs the core package and runs `hive demo` on the embedded toy corpus (offline)
#   make test   installs everything (system FFmpeg libraries, torch CPU, extras) and runs the tests
PYTHON ?= python
PIP ?= $(PYTHON) -m pip
APT_PACKAGES = ffmpeg libsndfile1

.PHONY: demo test setup-core setup-test system-packages bench

system-packages:
	@if ! command -v ffmpeg >/dev/null 2>&1 || ! ldconfig -p | grep -q libsndfile; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES); \
		else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES); fi; \
	fi

setup-core:
	$(PIP) install -q -e .

setup-test: system-packages
	# torch 2.13.0 is the CPU wheel on these machines; torchcodec 0.13.0 is the matching CPU build
	$(PIP) install -q torch==2.13.0 torchcodec==0.13.0
	$(PIP) install -q -e ".[dev,models,audio,card,eval]"

demo: setup-core
	hive demo

test: setup-test
	$(PYTHON) -m pytest -q

bench: setup-test
	$(PYTHON) benchmarks/run_all.py
