# dpdeblur: every target sets up its own virtual environment in .venv on first use.
# On a CPU-only machine the torch pins below come from the local wheel cache; override
# them (e.g. `make test TORCH_PINS=`) to keep whatever torch your environment already has.
PYTHON      ?= python3
VENV        ?= .venv
BIN         := $(VENV)/bin
TORCH_PINS  ?= torch==2.14.1 torchvision==0.29.1
STAMP       := $(VENV)/.installed
PYTEST_ARGS ?=
TEST_WORKERS ?= 2
# PyTorch's OpenMP threads spin while waiting; on a shared 2-core machine that stalls
# everything (a test step 20x slower). Passive waiting costs nothing measurable alone.
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: help install demo demo-pretrain test test-fast lint import-graph format bench bench-data bench-precision gpu-check reproduce-table clean

help:
	@echo "make demo        synthetic DP data, the pre-trained demo network fine-tuned and scored on two test splits -> outputs/demo/ (CPU, docs/demo.md)"
	@echo "make demo-pretrain  the demo network's pre-training (6,000 steps) -> experiments/weights/demo_dpdnet_small.pt + .json"
	@echo "make test        the whole test suite (CPU, hermetic)"
	@echo "make lint        ruff check + format check + the import contract (lint-imports)"
	@echo "make import-graph  the imports between the package's layers, as Mermaid (docs/design.md)"
	@echo "make bench       params, MACs, timings, full-res memory, data path, figures, CPU training variants -> experiments/results/ (10-18 min, 2 CPU cores)"
	@echo "make bench-data  data-loader samples/s: PNG decoding vs the uint16 .npy cache"
	@echo "make bench-precision  fp32 vs bf16 training accuracy -> experiments/results/precision_accuracy.json (~12 min on 2 free cores)"
	@echo "make gpu-check   CUDA tests, GPU numerics vs float64, training steps, trainer=gpu/ddp -> experiments/results/gpu_check.json (<= 8 min on one GPU)"
	@echo "make reproduce-table TABLE=dpanet-4 DATA=/path/to/dd_dp_dataset_png"
	@echo "                 a paper table's sweep, rendered into experiments/results/ (SCALE=smoke: CPU check)"
	@echo "make reproduce-table TABLE=dpanet-1 WEIGHTS=DIR DATA=...   the released checkpoints in DIR, scored (no training)"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(if $(strip $(TORCH_PINS)),$(BIN)/python -m pip install -q $(TORCH_PINS))
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/dpdeblur-demo --out outputs/demo

# The weights make demo fine-tunes, and a JSON record of how they were made (docs/demo.md).
demo-pretrain: $(STAMP)
	$(BIN)/dpdeblur-demo --pretrain --out outputs/demo-pretrain --weights experiments/weights/demo_dpdnet_small.pt

test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) -m "not slow" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/lint-imports

import-graph: $(STAMP)
	$(BIN)/python -m dpdeblur.cli.layers --format mermaid

format: $(STAMP)
	$(BIN)/ruff format src tests
	$(BIN)/ruff check --fix src tests

bench: $(STAMP)
	$(BIN)/dpdeblur-bench all --out experiments/results
	$(BIN)/dpdeblur-bench figures --out experiments/results
	$(BIN)/dpdeblur-bench cpu-train --out experiments/results

bench-data: $(STAMP)
	$(BIN)/dpdeblur-bench data --out experiments/results/bench_data.json

bench-precision: $(STAMP)
	$(BIN)/dpdeblur-bench precision-accuracy --out experiments/results/precision_accuracy.json

# On a machine without CUDA it checks the numerics on the CPU and records the rest as skipped.
gpu-check: $(STAMP)
	$(BIN)/dpdeblur-bench gpu-check --out experiments/results/gpu_check.json

# TABLE: dpanet-1 .. dpanet-4, k3dn-ablation; SCALE: full (DATA needed) or smoke (synthetic,
# CPU); SEEDS=0,1,2 adds seeds; OVERRIDES="hydra/launcher=slurm trainer=ddp ..." go to every job.
TABLE ?=
DATA ?=
SCALE ?= full
SEEDS ?=
OVERRIDES ?=
reproduce-table: $(STAMP)
	$(BIN)/dpdeblur-reproduce --table $(TABLE) --scale $(SCALE) --out experiments/results \
		$(if $(DATA),--data $(DATA)) $(if $(SEEDS),--seeds $(SEEDS)) $(if $(WEIGHTS),--weights $(WEIGHTS)) \
		$(if $(OVERRIDES),-- $(OVERRIDES))

clean:
	rm -rf outputs .pytest_cache .ruff_cache
