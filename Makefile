# latentkit: `make run` executes the notebooks, `make test` checks everything.
# The only prerequisite is Python 3.11+; the first target you run builds $(VENV) itself.
#
# Variables (override on the command line, e.g. `make run DEVICE=cpu`):
#   PYTHON      interpreter that creates the venv              (python3)
#   VENV        where the venv lives                           (.venv)
#   TORCH_SPEC  what pip installs for torch, before the rest   (torch==2.13.0)
#               passed to pip unquoted, so index options work:
#               TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126"
#               (quote comparisons inside it: TORCH_SPEC="'torch>=2.4'")
#   DEVICE      the notebooks' `device` parameter: auto | cpu | cuda | cuda:1 ...   (auto)
# TORCH_SPEC only matters when the venv is built: to switch an existing venv to another torch
# build, run `make clean-all` first.

PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
DEVICE ?= auto

BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NOTEBOOKS := $(sort $(wildcard notebooks/*.ipynb))
BENCHMARKS := $(sort $(wildcard benchmarks/bench_*.py))
NB_OUT := build/notebooks

SHELL := /bin/bash
.DEFAULT_GOAL := help

.PHONY: help install run store test test-fast lint format weights benchmarks clean clean-all

help: ## list the targets
	@echo "latentkit make targets (variables: PYTHON VENV TORCH_SPEC DEVICE, see Makefile):"
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*## "}; {printf "  %-12s %s\n", $$1, $$2}'

install: $(STAMP) ## build the venv: torch first, then latentkit and the dev tools

# The stamp is rebuilt when pyproject.toml changes. torch goes first so that the
# `torch>=2.4` in pyproject is already satisfied by $(TORCH_SPEC) and pip never
# swaps in another build (an unpinned `torch` on Linux pulls the multi-GB CUDA wheels).
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { \
		echo "latentkit needs Python 3.11 or newer; '$(PYTHON)' is $$($(PYTHON) --version 2>&1)." >&2; \
		echo "Pass another interpreter, e.g. make PYTHON=python3.12 ..." >&2; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install $(TORCH_SPEC)
	$(BIN)/python -m pip install -e ".[dev,slurm]"
	@touch $@

run: $(STAMP) ## execute every notebook in order (papermill) into build/notebooks/
	@mkdir -p $(NB_OUT) figures
	@if [ -z "$(NOTEBOOKS)" ]; then echo "no notebooks in notebooks/"; fi
	@for nb in $(NOTEBOOKS); do \
		echo "==> $$nb (device=$(DEVICE))"; \
		$(BIN)/papermill "$$nb" "$(NB_OUT)/$$(basename "$$nb")" \
			--kernel python3 --cwd notebooks -p device "$(DEVICE)" \
			|| { echo "FAILED: $$nb (partial output in $(NB_OUT)/$$(basename "$$nb"))" >&2; exit 1; }; \
	done

store: $(STAMP) ## re-execute notebooks in place with their defaults, to commit them (NB=notebooks/00_*.ipynb)
	$(BIN)/python -m latentkit.notebooks $(or $(NB),$(NOTEBOOKS))

# JupyterLab serves the repository root, so that the notebooks' links to docs/ open, and starts on the
# first notebook. LAB_ARGS passes more options, e.g. to serve a class from one machine (docs/teaching.md).
LAB_ARGS ?=
.PHONY: lab book

lab: $(STAMP) ## open the notebooks in JupyterLab (Ctrl-C stops it; LAB_ARGS="--ip=0.0.0.0 --no-browser")
	$(BIN)/jupyter lab --ServerApp.root_dir=. --LabApp.default_url=/lab/tree/$(firstword $(NOTEBOOKS)) \
		$(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

book: $(STAMP) ## the executed notebooks as a static website in build/book/, for readers without Python
	$(BIN)/python -m latentkit.book --out build/book

test: lint ## the whole suite CI runs: ruff, then pytest (unit tests, slow ones, every notebook); < 45 min
	$(BIN)/pytest

test-fast: $(STAMP) ## the edit-test loop: unit tests without the slow ones and without notebooks; < 5 min
	$(BIN)/pytest tests -m "not slow" -q

lint: $(STAMP) ## ruff check and ruff format --check, changing nothing
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP) ## ruff format, then ruff check --fix
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

weights: $(STAMP) ## retrain every model organism into data/ (slow)
	$(BIN)/python -m latentkit.recipes all

benchmarks: $(STAMP) ## run every benchmarks/bench_*.py
	@if [ -z "$(BENCHMARKS)" ]; then echo "no benchmarks/bench_*.py"; fi
	@for b in $(BENCHMARKS); do \
		echo "==> $$b"; \
		$(BIN)/python "$$b" || { echo "FAILED: $$b" >&2; exit 1; }; \
	done

clean: ## remove build outputs and caches (keeps the venv, data/ and figures/)
	rm -rf build dist .pytest_cache .ruff_cache *.egg-info
	find . -path ./$(VENV) -prune -o -path ./.git -prune -o \
		\( -name __pycache__ -o -name .ipynb_checkpoints \) -type d -print0 | xargs -0 -r rm -rf

clean-all: clean ## clean, and also remove the venv (training checkpoints stay in the cache, LATENTKIT_CACHE)
	rm -rf $(VENV)
