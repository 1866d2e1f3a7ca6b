# Set-up and the two README commands. A fresh clone needs only python3 (>= 3.10) and make.
#
#   make demo   install everything into .venv, then run the main job (se3unet demo)
#   make test   install everything into .venv, then run the test suite
#
# TORCH_SPEC is what pip installs first: by default the CPU build of torch 2.13.0 (a CPU
# wheel is what a bare `torch` would NOT pick on Linux). A GPU user sets it to their build,
# e.g. `make test TORCH_SPEC="torch==2.13.0 --index-url <your CUDA wheel index>"`.

PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
# The Surrey Face Model files (the demo's data and some tests'): read in place, never copied.
SE3UNET_SFM_DIR ?= ../shared/data/sfm
export SE3UNET_SFM_DIR
# The ICT Face Model (whole heads, 68 landmarks; `prepare --source ict|mixed`): read in place too.
SE3UNET_ICT_DIR ?= ../shared/data/ict
export SE3UNET_ICT_DIR
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test bench pretrained browser clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/se3unet demo

test: $(STAMP) browser
	$(BIN)/python -m pytest

# Debian's Chromium for the page tests (tests/test_pages.py), installed when missing and we are
# root; otherwise the tests say how to get it (and fail under CI=true).
browser:
	@command -v chromium >/dev/null || [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null || \
	  apt-get install -y -qq chromium >/dev/null 2>&1 || \
	  (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "could not install chromium"

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	$(BIN)/python benchmarks/engine.py

# The shipped model (docs/model-card.md): about 90 minutes on 2 CPU cores; run again to resume.
pretrained: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" bash experiments/train_pretrained.sh

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
