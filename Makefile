# make train: set up .venv and train the default model on Tiny Shakespeare, then print a sample.
# make test:  set up .venv and run the test suite.
#
# torch is installed first, on its own: TORCH_SPEC picks the version and TORCH_INDEX_URL the
# build (empty = PyPI's default: a CUDA build on Linux x86_64, or whatever a local index
# provides). For a CPU-only build: make TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# For a given CUDA version: make TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128

PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX_URL ?=
ARGS ?=
PYTEST_ARGS ?=
# The dev tools, sweep plugins, data sources, trackers, export and serving, so all their tests
# run; EXTRAS=dev for a lighter set-up.
EXTRAS ?= dev,optuna,joblib,slurm,hf,mlflow,wandb,export,serve
# Each `make sweep` gets a new folder; SWEEP_DIR=DIR names one (a folder that already holds a
# sweep's runs is refused: pick a new name, or delete the old folder to run it again).
SWEEP_STAMP := $(shell date +%Y-%m-%d_%H-%M-%S)
SWEEP_DIR ?= outputs/multirun/sweep-$(SWEEP_STAMP)

BIN := $(VENV)/bin
# One word for the shell, whatever the text holds (spaces, commas, quotes): SWEEP_DIR="my sweep".
shell_word = '$(subst ','\'',$(1))'
STAMP := $(VENV)/.chargpt-installed

.PHONY: install train test test-slow lint tensorboard sweep clean-outputs

install: $(STAMP)

# (__init__.py holds the version, which the install's metadata records: installed again when it changes.)
$(STAMP): pyproject.toml src/chargpt/__init__.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || \
		$(BIN)/pip install --quiet "$(TORCH_SPEC)" $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL))
	$(BIN)/pip install --quiet -e ".[$(EXTRAS)]"
	touch $(STAMP)

train: install
	$(BIN)/chargpt-train $(ARGS)

# One test worker per core (at most 4): TEST_WORKERS=0 runs them in this process, one at a time.
# A test module stays on one worker, so the runs its fixtures train are trained once.
TEST_WORKERS ?= auto
test: install
	$(BIN)/pytest -n $(TEST_WORKERS) --maxprocesses=4 --dist loadfile $(PYTEST_ARGS)

# Exit code 5 is pytest's "no tests collected": not a failure when no test is marked slow.
test-slow: install
	$(BIN)/pytest -m slow $(PYTEST_ARGS) || test $$? -eq 5

lint: install
	$(BIN)/ruff check src tests scripts

tensorboard: install
	$(BIN)/tensorboard --logdir outputs

# A small grid (2 learning rates x 2 models, one job after another), then its report table.
sweep: install
	$(BIN)/chargpt-train -m optimizer.lr=1e-3,3e-3 model=bigram,tiny trainer.max_steps=300 \
		trainer.val_check_interval=100 sample.max_new_tokens=0 $(call shell_word,hydra.sweep.dir=$(SWEEP_DIR)) $(ARGS)
	$(BIN)/chargpt-report $(call shell_word,$(SWEEP_DIR))

clean-outputs:
	rm -rf outputs
