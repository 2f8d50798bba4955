# Two commands on a fresh machine:  `make demo` (set up + run a real search offline)  and  `make test`.
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
SHARED  ?= ../shared
DEMO_OUT ?= runs/sst2-demo
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1

.PHONY: install test lint demo bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# CPU torch first: a plain `torch` requirement on a fresh venv can pull a multi-GB CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

test: install
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check autodistill tests benchmarks
	$(VENV)/bin/ruff format --check autodistill tests benchmarks
	$(VENV)/bin/mypy

# A real 12-trial search: the fine-tuned MiniLM SST-2 teacher, real SST-2 data, 150 steps per trial.
demo: install
	$(VENV)/bin/autodistill search search_spaces/bert.yaml \
		--teacher $(SHARED)/models/minilm-sst2-teacher --dataset $(SHARED)/data/sst2 \
		--trials 12 --set train.steps=150 --out $(DEMO_OUT)

bench: install
	$(PY) benchmarks/trial_cost.py

clean:
	rm -rf $(VENV) runs autodistill-runs .pytest_cache .mypy_cache .ruff_cache
