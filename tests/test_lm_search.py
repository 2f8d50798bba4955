"""Causal LMs end to end: a real search with tiny Llama (grouped-query attention) and GPT-2 teachers on
SST-2's sentences as plain text, then export, validate errors and resume; real Optuna and MLflow."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pytest
import torch
from mlflow import MlflowClient

from tests.conftest import SST2, bpe_tokenizer, search_command

LM_SPACE = """
task: causal-lm
dataset:
  holdout_fraction: 0.2
student:
  init: {type: categorical, choices: [random, weight-select, teacher-layers]}
  depth: {type: int, low: 1, high: 2}
  width: {type: categorical, choices: [16, 32]}
  head_size: 8
  ffn_ratio: 2
distill:
  lambda: {type: float, low: 0.0, high: 1.0}
  temperature: {type: float, low: 1.0, high: 4.0}
  learning_rate: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}
  top_k: 16
train:
  steps: 6
  batch_size: 4
  max_length: 32
latency:
  sequence_length: 16
  warmup: 2
  repeats: 10
  rounds: 2
search:
  early_stopping: {enabled: false}
"""


def sst2_text(path: Path, rows: int = 1500) -> Path:
    """SST-2's training sentences (real text), one JSON line each with a ``text`` column."""
    lines = SST2.joinpath("train.tsv").read_text(encoding="utf-8").splitlines()[1 : rows + 1]
    path.write_text("\n".join(json.dumps({"text": line.split("\t")[0]}) for line in lines))
    return path


def lm_teacher(root: Path, family: str, corpus: Path) -> Path:
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    texts = [json.loads(line)["text"] for line in corpus.read_text().splitlines()]
    tokenizer = bpe_tokenizer(texts, 400)
    torch.manual_seed(0)
    if family == "llama":
        config = LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=64,
            eos_token_id=tokenizer.eos_token_id,
        )
        model: Any = LlamaForCausalLM(config)
    else:
        config = GPT2Config(
            vocab_size=len(tokenizer),
            n_embd=32,
            n_layer=2,
            n_head=4,
            n_positions=64,
            eos_token_id=tokenizer.eos_token_id,
            bos_token_id=tokenizer.eos_token_id,
        )
        model = GPT2LMHeadModel(config)
    model.config.architectures = [type(model).__name__]
    out = root / f"{family}-teacher"
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def lm_world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("lm")
    corpus = sst2_text(root / "sentences.jsonl")
    space = root / "lm.yaml"
    space.write_text(LM_SPACE)
    return {
        "root": root,
        "corpus": corpus,
        "space": space,
        "llama": lm_teacher(root, "llama", corpus),
        "gpt2": lm_teacher(root, "gpt2", corpus),
    }


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "autodistill", *args], capture_output=True, text=True, timeout=600
    )


@pytest.mark.slow
@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_an_lm_search_gives_a_perplexity_front_with_test_scores_samples_and_exports(
    lm_world: dict[str, Path], family: str
) -> None:
    out = lm_world["root"] / f"study-{family}"
    cmd = search_command(lm_world["space"], lm_world[family], lm_world["corpus"], out, "--trials", "3")
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Pareto front (perplexity ↓" in done.stdout and "test perplexity" in done.stdout

    study = optuna.load_study(study_name="lm", storage=f"sqlite:///{out / 'optuna.db'}")
    assert study.directions[0] == optuna.study.StudyDirection.MINIMIZE
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 3
    for trial in complete:  # a finite perplexity, and decode latency with its prefill beside it
        metrics = trial.user_attrs["metrics"]
        assert 1.0 < metrics["perplexity"] < float("inf") and metrics["prefill_ms"] > 0
    front = pd.read_csv(out / "pareto.csv")
    assert {"perplexity", "test_perplexity", "latency_ms", "size_mb"} <= set(front.columns)
    assert front["test_perplexity"].notna().all()
    assert list(front["perplexity"]) == sorted(front["perplexity"])  # best (lowest) first

    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    best = study.best_trials[0]
    run_id = best.user_attrs["mlflow_run_id"]
    assert "test_perplexity" in client.get_run(run_id).data.metrics
    assert "sample.txt" in {a.path for a in client.list_artifacts(run_id)}
    assert "sample:" in (out / "report.html").read_text() or "The" in (out / "report.html").read_text()

    to = lm_world["root"] / f"export-{family}"
    exported = cli("export", str(best.number), "--out", str(out), "--to", str(to))
    assert exported.returncode == 0, exported.stderr[-2000:]
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(to).eval()
    tokenizer = AutoTokenizer.from_pretrained(to)
    ids = model.generate(**tokenizer("the film", return_tensors="pt"), max_new_tokens=5, do_sample=False)
    assert ids.shape[1] > 2
    assert "| test_perplexity |" in (to / "README.md").read_text()
    assert "pipeline_tag: text-generation" in (to / "README.md").read_text()


@pytest.mark.slow
def test_lm_inputs_are_checked_before_compute(lm_world: dict[str, Path], tiny_teacher: Path) -> None:
    never = lm_world["root"] / "never"

    def validate(teacher: Path, *extra: str) -> subprocess.CompletedProcess[str]:
        return cli(
            "validate", str(lm_world["space"]), "--teacher", str(teacher), "--dataset", str(lm_world["corpus"]),
            "--out", str(never), *extra,
        )  # fmt: skip

    llama = lm_world["llama"]
    refused = {
        "not a *ForCausalLM model": validate(tiny_teacher),  # a classifier for a causal-lm space
        "context of 64": validate(llama, "--set", "train.max_length=100"),
        "body": validate(llama, "--set", "dataset.text_column=body"),
        "perplexity": validate(llama, "--set", "search.objectives=[accuracy, size_mb]"),
    }
    for expected, done in refused.items():
        assert done.returncode == 2 and expected in done.stderr, (expected, done.stderr)
        assert "Traceback" not in done.stderr
    assert not never.exists()
    ok = validate(llama)
    assert ok.returncode == 0, ok.stderr
    assert "blocks of 32 tokens" in ok.stdout
