"""``latency_fraction``: a student's latency over the teacher's, the two timed in turns, so the machine's
speed (which drifts by 5-30% on shared cores) cancels out of a bound like "at most ¼ of the teacher"."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest
from mlflow import MlflowClient
from pydantic import ValidationError
from transformers import BertConfig, BertForSequenceClassification

from autodistill.config.schema import LatencySpec, SearchSpec
from autodistill.measure.latency import Latency, measure_beside
from tests.conftest import TINY_SPACE, search_command


def drifting_machine(costs: dict[str, float], speeds: list[float], order: list[str]) -> Any:
    """A stand-in timer (pure unit test): each call times one round, on a machine whose slowness
    changes from round pair to round pair as ``speeds`` says; records which model it timed."""
    calls = iter(speed for speed in speeds for _ in range(2))

    def measure(model: str, spec: LatencySpec) -> Latency:
        order.append(model)
        ms = costs[model] * next(calls)
        assert spec.rounds == 1
        return Latency(ms, ms * 1.2, 1, spec.sequence_length, spec.repeats, 1.0, "torch", 1)

    return measure


def test_the_fraction_is_taken_round_by_round_so_the_machines_speed_cancels() -> None:
    order: list[str] = []
    speeds = [1.0, 1.4, 0.9, 1.3, 1.0]  # the machine slows down and speeds up between rounds
    measure = drifting_machine({"student": 5.0, "teacher": 25.0}, speeds, order)
    spec = LatencySpec(repeats=75, rounds=5)
    latency, fraction = measure_beside("student", "teacher", spec, measure)
    assert fraction == pytest.approx(0.2)  # what the models cost, whatever the speed
    assert latency.p50_ms == pytest.approx(5.0 * 1.0)  # the student's own median over its rounds
    assert (latency.repeats, latency.rounds) == (75, 5)
    # in turns, alternating which goes first, so neither always runs on a warmed-up machine
    assert order == ["student", "teacher", "teacher", "student"] * 2 + ["student", "teacher"]


def test_the_fraction_is_measured_only_when_the_space_reads_it() -> None:
    assert not SearchSpec().times_beside_teacher()  # it costs a teacher timing per shape
    assert SearchSpec(constraints={"latency_fraction": {"max": 0.25}}).times_beside_teacher()
    assert SearchSpec(objectives=["accuracy", "latency_fraction"]).times_beside_teacher()
    # a percentage by mistake would admit every shape; 0 would prune them all after timing each
    for wrong in (25, 0):
        with pytest.raises(ValidationError, match="is a fraction of the teacher's latency"):
            SearchSpec(constraints={"latency_fraction": {"max": wrong}})


def test_a_shape_over_the_fraction_bound_is_timed_again_and_kept_once_within() -> None:
    from autodistill.search.shape_cost import latency_out_of_bounds, shape_cost

    search = SearchSpec(constraints={"latency_fraction": {"max": 0.25}})
    spec = LatencySpec(repeats=10, rounds=2)
    # first timing (two rounds): the student ran during a burst (0.3 of the teacher); the second: 0.2
    calls = iter([1.5, 1.5, 1.0, 1.0])

    student = BertForSequenceClassification(
        BertConfig(
            vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
        )
    )

    def measure(model: Any, spec: LatencySpec) -> Latency:
        ms = 5.0 * next(calls) if model is student else 25.0
        return Latency(ms, ms * 1.2, 1, spec.sequence_length, spec.repeats, 1.0, "torch", 1)

    cost, _ = shape_cost(student, spec, None, measure, latency_out_of_bounds(search), "teacher")
    assert cost["latency_fraction"] == pytest.approx(0.2) and cost["latency_ms"] == pytest.approx(5.0)
    assert not search.cost_violations(cost)


@pytest.mark.slow
def test_a_search_bounded_by_a_fraction_of_the_teacher_and_train_best_on_it(
    tiny_teacher: Path, sst2_slice: Path, tmp_path: Path
) -> None:
    space = tmp_path / "space.yaml"
    # A bound every 1-layer student of the 2-layer tiny teacher meets (pruning on it is the fast test
    # above): what is checked is that the fraction is measured, used and reported, as an objective too.
    bound = "  objectives: [accuracy, latency_fraction]\n  constraints: {latency_fraction: {max: 1}}\n"
    space.write_text(TINY_SPACE.replace("search:\n", "search:\n" + bound))
    out = tmp_path / "study"
    done = subprocess.run(
        search_command(
            space, tiny_teacher, sst2_slice, out, "--trials", "3", "--seed", "0", "--set", "student.depth=1"
        ),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    study = optuna.load_study(study_name="space", storage=f"sqlite:///{out / 'optuna.db'}")
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert complete
    for trial in complete:
        metrics = trial.user_attrs["metrics"]
        assert 0 < metrics["latency_fraction"] <= 1
        assert trial.constraints == {"latency_fraction_max": pytest.approx(metrics["latency_fraction"] - 1)}
    assert study.user_attrs["teacher_reference"]["latency_fraction"] == 1.0
    shapes = [v for k, v in study.user_attrs.items() if k.startswith("shape_latency:")]
    assert shapes and all("latency_fraction" in s["metrics"] for s in shapes)  # reused like latency_ms
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    run = client.get_run(complete[0].user_attrs["mlflow_run_id"])
    assert run.data.metrics["latency_fraction"] == complete[0].user_attrs["metrics"]["latency_fraction"]
    front = (out / "pareto.csv").read_text().splitlines()
    assert "latency_fraction" in front[0].split(",") and len(front) > 1
    assert "× teacher" in done.stdout and (out / "report.html").exists()

    # train --best bounds each trial's own fraction, not a ms figure from the teacher's one timing
    fastest = min(t.user_attrs["metrics"]["latency_fraction"] for t in complete)
    train = [sys.executable, "-m", "autodistill", "train", "--best", "1", "--out", str(out), "--steps", "2"]
    refused = subprocess.run(
        [*train, "--max-latency-fraction", f"{fastest / 2:.6g}"], capture_output=True, text=True, timeout=600
    )
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "(timed beside the teacher): no student is that fast" in refused.stderr
    assert f"takes {fastest:.3g} of the teacher's latency" in refused.stderr
    trained = subprocess.run(
        [*train, "--max-latency-fraction", "1", "--model-name", "tiny-fraction"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "registered trial" in trained.stdout
