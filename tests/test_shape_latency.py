"""One latency per shape: the first trial of a shape times it, every later trial of that shape (resumed
runs and early-stopping checkpoints included) reports the same figures and says which trial measured them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
from mlflow import MlflowClient
from transformers import BertConfig

import autodistill.search.objective
from autodistill.cli import main
from autodistill.config.schema import LatencySpec
from autodistill.distill.student import StudentArch
from autodistill.search.shape_cost import ATTR_PREFIX, LATENCY_METRICS, shape_key
from tests.conftest import search_args

REUSED = "latency_reused_from"
ONE_SHAPE = [
    "--set",
    "student.depth=1",
    "--set",
    "student.width=32",
    "--set",
    "search.early_stopping.enabled=true",
]


def test_the_key_is_the_graph_and_the_timing_not_the_weights() -> None:
    arch = StudentArch(depth=3, width=64, heads=4, ffn=256)
    spec, bert = LatencySpec(), BertConfig(vocab_size=1000)
    key = shape_key(arch, spec, bert)
    assert key.startswith(ATTR_PREFIX)
    assert key == shape_key(
        StudentArch(depth=3, width=64, heads=4, ffn=256), LatencySpec(), BertConfig(vocab_size=1000)
    )
    assert key != shape_key(StudentArch(depth=3, width=64, heads=2, ffn=256), spec, bert)
    assert key != shape_key(arch, LatencySpec(threads=2), bert)
    assert key != shape_key(arch, LatencySpec(backend="onnxruntime"), bert)
    assert key != shape_key(arch, spec, BertConfig(vocab_size=2000))


def scripted_latency(figures: list[float]) -> Any:
    """A stand-in timer that reports ``figures`` in turn (pure unit test of the second opinion)."""
    from autodistill.measure.latency import Latency

    calls = iter(figures)

    def latency(model: Any, spec: LatencySpec) -> Latency:
        ms = next(calls)
        return Latency(ms, ms * 1.2, 1, spec.sequence_length, 10, 1.0, "torch", 1)

    return latency


@pytest.mark.parametrize(
    ("figures", "kept"),
    [
        ([5.0], 5.0),  # within the bound: timed once
        ([9.0, 5.5], 5.5),  # one slow figure over the bound: the second, faster one stands
        ([9.0, 10.0], 9.0),  # over it twice: the faster is kept, and the shape is still out
    ],
)
def test_a_latency_over_the_bound_is_timed_again_and_the_faster_kept(
    figures: list[float], kept: float
) -> None:
    from transformers import BertForSequenceClassification

    from autodistill.config.schema import SearchSpec
    from autodistill.search.shape_cost import latency_out_of_bounds, shape_cost

    model = BertForSequenceClassification(
        BertConfig(
            vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
        )
    )
    search = SearchSpec(constraints={"latency_ms": {"max": 6}, "size_mb": {"max": 1000}})
    cost, _ = shape_cost(model, LatencySpec(), None, scripted_latency(figures), latency_out_of_bounds(search))
    assert cost["latency_ms"] == kept and cost["latency_p95_ms"] == kept * 1.2
    # a study that bounds only size never times a shape twice
    assert latency_out_of_bounds(SearchSpec(constraints={"size_mb": {"max": 1}})) is None


@pytest.mark.slow
def test_a_shape_is_timed_once_and_reused_by_later_trials_and_a_resumed_run(
    tiny_space: Path, tiny_teacher: Path, sst2_slice: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The costs early stopping compares at each checkpoint, as run_trial hands them to the objective.
    checkpoint_latencies: list[float] = []
    real_run_trial = autodistill.search.objective.run_trial

    def run_trial_seeing_checkpoints(
        settings: Any, job: Any, on_step: Any, on_checkpoint: Any, *rest: Any
    ) -> Any:
        def seen(step: int, quality: float, cost: dict[str, float]) -> None:
            checkpoint_latencies.append(cost["latency_ms"])
            on_checkpoint(step, quality, cost)

        return real_run_trial(settings, job, on_step, seen, *rest)

    monkeypatch.setattr(autodistill.search.objective, "run_trial", run_trial_seeing_checkpoints)
    out = tmp_path / "study"
    for total in (3, 4):  # a first run, then the same command resumed for one more trial
        assert (
            main(search_args(tiny_space, tiny_teacher, sst2_slice, out, "--trials", str(total), *ONE_SHAPE))
            == 0
        )

    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'optuna.db'}")
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == 4 and all(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
    (stored_key,) = [k for k in study.user_attrs if k.startswith(ATTR_PREFIX)]
    stored = study.user_attrs[stored_key]
    assert stored["trial"] == 0 and stored["shape"]["depth"] == 1 and stored["shape"]["width"] == 32

    metrics = [t.user_attrs["metrics"] for t in trials]
    # prefill: causal LMs only; latency_fraction: when the space reads it
    assert set(stored["metrics"]) == set(LATENCY_METRICS) - {"prefill_ms", "latency_fraction"}
    for name in stored["metrics"]:
        assert {m[name] for m in metrics} == {stored["metrics"][name]}
    costs = set(metrics[0]) - {"accuracy"}  # a reused trial reports every cost a measured one does
    assert costs >= {"size_mb", "params"} and all(set(m) - {"accuracy"} == costs for m in metrics)
    assert checkpoint_latencies and set(checkpoint_latencies) == {stored["metrics"]["latency_ms"]}

    assert REUSED not in trials[0].user_attrs
    assert [t.user_attrs[REUSED] for t in trials[1:]] == [0, 0, 0]  # trial 3 ran after the resume
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    tags = [client.get_run(t.user_attrs["mlflow_run_id"]).data.tags for t in trials]
    assert f"autodistill.{REUSED}" not in tags[0]
    assert [t[f"autodistill.{REUSED}"] for t in tags[1:]] == ["0", "0", "0"]
