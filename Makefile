# The two commands of the README:
#   make reproduce   set up, then run the main job at the `mini` scale (the default); SEEDS=N for seeds 0..N-1,
#                    FIRST_SEED=K to start them at K (K..K+N-1), RESOLVE=1 for the two-stage measurement
#   make test        set up, then run the test suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
SCALE  ?= mini
# Empty: the scale's seeds (mini: 0-2). SEEDS=10 runs seeds 0-9 (mini: about 130 min on 2 cores; README, Workflow);
# SEEDS=10 FIRST_SEED=10 runs seeds 10-19 (the unseen-seed check, reports/mini/calibration.md §16).
SEEDS  ?=
FIRST_SEED ?=
# RESOLVE=1 (any non-empty value): a two-stage measurement (Stein): SEEDS=N0 is the first stage, then as many seeds
# as the claims need for config/config.yaml's target_half_width (README, "The claims at mini").
RESOLVE ?=
# PyPI's Linux torch wheel bundles CUDA (~3 GB of nvidia-* wheels); the CPU build comes from PyTorch's index.
# Empty (make TORCH_INDEX=) = only your pip configuration's indexes.
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu

.PHONY: setup reproduce test bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# The CPU build of torch first, so that the project's range installs nothing bigger.
	$(PY) -m pip install --quiet torch==2.13.0 $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX))
	$(PY) -m pip install --quiet -e ".[workflow,dev]"
	touch $@

setup: $(VENV)/.installed

reproduce: setup
	$(PY) -m dos reproduce --scale $(SCALE) $(if $(SEEDS),--seeds $(SEEDS)) $(if $(FIRST_SEED),--first-seed $(FIRST_SEED)) $(if $(RESOLVE),--resolve)

test: setup
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) .pytest_cache
