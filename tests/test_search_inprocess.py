"""Search behaviour that needs the process itself: a failing trial, and a caller's MLflow run already active."""

from __future__ import annotations

from pathlib import Path

import mlflow
import optuna
import pytest
from mlflow import MlflowClient

import autodistill.search.objective
from autodistill.cli import main
from tests.conftest import search_args

pytestmark = pytest.mark.slow


def args(space: Path, teacher: Path, data: Path, out: Path, trials: int) -> list[str]:
    return search_args(space, teacher, data, out, "--trials", str(trials))


def test_a_failing_trial_is_recorded_and_the_study_goes_on(
    tiny_space: Path, tiny_teacher: Path, sst2_slice: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_run_trial = autodistill.search.objective.run_trial
    calls = []

    def second_call_explodes(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("student exploded on purpose")
        return real_run_trial(*a, **k)

    monkeypatch.setattr(autodistill.search.objective, "run_trial", second_call_explodes)
    out = tmp_path / "study"
    assert main(args(tiny_space, tiny_teacher, sst2_slice, out, 3)) == 0

    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'optuna.db'}")
    states = [t.state.name for t in study.trials]
    assert states == ["COMPLETE", "FAIL", "COMPLETE"]
    failed = study.trials[1]
    assert failed.user_attrs["fail_reason"] == "RuntimeError: student exploded on purpose"
    run = MlflowClient(f"sqlite:///{out / 'mlflow.db'}").get_run(failed.user_attrs["mlflow_run_id"])
    assert run.info.status == "FAILED"
    assert run.data.tags["optuna.trial_state"] == "FAIL" and "exploded" in run.data.tags["fail_reason"]


def test_nested_runs_while_a_caller_run_is_active(
    tiny_space: Path, tiny_teacher: Path, sst2_slice: Path, tmp_path: Path
) -> None:
    """Other projects' MLflow loggers fail here ("Run ... is already active"); ours nests under its own parent."""
    out = tmp_path / "study"
    tracking = f"sqlite:///{out / 'mlflow.db'}"
    out.mkdir()
    mlflow.set_tracking_uri(tracking)
    # Its own artifact location: MLflow's default, ./mlruns, would land in the working directory.
    mlflow.create_experiment("tiny", artifact_location=(tmp_path / "artifacts").as_uri())
    experiment = mlflow.set_experiment("tiny")
    try:
        with mlflow.start_run(run_name="caller's pipeline") as outer:
            code = main([*args(tiny_space, tiny_teacher, sst2_slice, out, 2), "--tracking-uri", tracking])
            assert code == 0
            assert mlflow.active_run().info.run_id == outer.info.run_id  # the caller's run is untouched
    finally:
        mlflow.set_tracking_uri(None)
    client = MlflowClient(tracking)
    runs = client.search_runs([experiment.experiment_id])
    by_id = {r.info.run_id: r for r in runs}
    (parent,) = [r for r in runs if r.data.tags.get("autodistill.role") == "study"]
    assert parent.data.tags["mlflow.parentRunId"] == outer.info.run_id  # the study nests under the caller
    trials = [r for r in runs if r.data.tags.get("autodistill.role") == "trial"]
    assert len(trials) == 2
    assert all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in trials)
    assert by_id[outer.info.run_id].info.status == "FINISHED"


def test_constraints_keep_infeasible_trials_off_the_front(
    tiny_space: Path, tiny_teacher: Path, sst2_slice: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "study"
    # a bound on accuracy is judged after training (one on size or latency before it: test_infeasible_shapes)
    impossible = "search.constraints={accuracy: {min: 1.01}}"
    code = main([*args(tiny_space, tiny_teacher, sst2_slice, out, 2), "--set", impossible])
    assert code == 1  # no feasible student: the front is empty
    assert "(empty" in capsys.readouterr().out
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'optuna.db'}")
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    assert study.best_trials == []
    assert (out / "pareto.csv").read_text().startswith("trial,")
