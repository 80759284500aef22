# cfnet developer workflow. `make train` and `make test` are all a new user needs:
# both depend on `install`, which builds .venv/ once and re-runs only when pyproject.toml or
# setup.py changes.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install train test test-slow test-gpu gpu-wheels gpu-check lint format bench figures clean

install: $(STAMP)

$(STAMP): pyproject.toml setup.py
	@echo "installing cfnet and its dependencies into $(VENV)/ (a few minutes the first time)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -qq --upgrade pip
	@$(BIN)/python -m pip install -qq -e '.[dev]'
	@touch $(STAMP)
	@echo "installed: $$($(BIN)/python -c 'import torch, lightning, timm; print("torch", torch.__version__, "| lightning", lightning.__version__, "| timm", timm.__version__)')"

train: install
	$(BIN)/python -m cfnet.train $(ARGS)

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-slow: install  # the tests marked `slow` (minutes of CPU training each); CI runs them after `test`
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

test-gpu: install  # the tests marked `gpu`, on one GPU (they skip with a reason without CUDA)
	$(BIN)/python -m pytest -m gpu tests $(PYTEST_ARGS)

# The GPU check (gpu tests + CUDA benchmarks, ~8 min on one GPU; docs/gpu.md). gpu-wheels downloads
# into .whl/ the packages a bare GPU image lacks (cp312, manylinux x86_64), for gpu_check.sh there.
gpu-wheels: install
	PYTHON=$(BIN)/python bash benchmarks/gpu_wheels.sh

gpu-check: install
	PYTHON=$(BIN)/python bash benchmarks/gpu_check.sh

lint: install
	$(BIN)/ruff check src tests benchmarks notebooks
	$(BIN)/ruff format --check src tests benchmarks notebooks

format: install
	$(BIN)/ruff format src tests benchmarks notebooks
	$(BIN)/ruff check --fix src tests benchmarks notebooks

bench: install  # CKPT=<best.ckpt> also times the evaluation protocols on that checkpoint
	$(BIN)/python benchmarks/acf_impls.py --sizes 256 512 768 1024
	$(BIN)/python benchmarks/model_speed.py --sizes 256 512 --batch 2 --reps 3
	$(BIN)/python benchmarks/eval_protocol.py $(if $(CKPT),--ckpt $(CKPT) --breakdown 60)
	$(BIN)/python benchmarks/loader_speed.py
	$(BIN)/python benchmarks/explorer_speed.py --threads 2
	@if $(BIN)/python -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; then \
		$(BIN)/python benchmarks/gpu_speed.py --compile none && \
		$(BIN)/python benchmarks/gpu_speed.py --compile only --sections raw latency lightning; \
	else echo "no CUDA device: the GPU benchmarks (benchmarks/gpu_speed.py) are skipped"; fi
	$(BIN)/python benchmarks/make_docs.py

# The README pictures (docs/img/*.png, docs/img/attention.json), drawn by the notebooks themselves.
# Without arguments the notebooks train their own models at the `make train` budget and run a
# smoke-budget sweep; to draw
# existing runs: CKPT=<CFNet best.ckpt> FCN_CKPT=<FCN best.ckpt> SWEEPS=<sweep dir>:<sweep dir>
# With CKPT, also docs/explore.md's: the class co-occurrence (cfnet.cooccurrence) and the explorer's
# screenshots (its browser test, on that checkpoint).
figures: install
	CFNET_NOTEBOOK_BUDGET=full CFNET_FIGURES_DIR=docs/img CFNET_CKPT=$(CKPT) CFNET_FCN_CKPT=$(FCN_CKPT) CFNET_SWEEP_DIRS=$(SWEEPS) \
		$(BIN)/python -m pytest notebooks -q -p no:cacheprovider
	$(if $(CKPT),$(BIN)/python -m cfnet.cooccurrence ckpt_path=$(CKPT) output=docs/img)
	$(if $(CKPT),CFNET_CKPT=$(CKPT) CFNET_FIGURES_DIR=docs/img $(BIN)/python -m pytest tests/test_explore.py -k click -q -p no:cacheprovider)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build src/*.egg-info
