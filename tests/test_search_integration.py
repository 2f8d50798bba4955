"""End to end: a real 3-trial search with a tiny BERT teacher on a slice of SST-2, then a resume.

Real Optuna SQLite storage, real MLflow SQLite backend, real training; only the models are tiny.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
import pandas as pd
import pytest
from mlflow import MlflowClient

from tests.conftest import search_command

pytestmark = pytest.mark.slow


def search(
    space: Path, teacher: Path, data: Path, out: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    cmd = search_command(space, teacher, data, out, *extra)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def nested_runs(client: MlflowClient, study: str) -> tuple[object, list]:
    experiment = client.get_experiment_by_name(study)
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get("autodistill.role") == "study"]
    assert len(parents) == 1
    parent = parents[0]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    return parent, sorted(children, key=lambda r: int(r.data.tags["optuna.trial_number"]))


def test_three_trials_then_resume(
    tiny_space: Path, tiny_teacher: Path, sst2_slice: Path, tmp_path: Path
) -> None:
    out = tmp_path / "study"
    first = search(tiny_space, tiny_teacher, sst2_slice, out, "--trials", "3", "--seed", "1")
    assert first.returncode == 0, first.stderr[-3000:]
    assert "Pareto front" in first.stdout and "teacher" in first.stdout
    assert sorted(p.name for p in out.iterdir()) == [
        "cache",
        "mlartifacts",
        "mlflow.db",
        "optuna.db",
        "pareto.csv",
        "report.html",
        "students",
    ]

    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'optuna.db'}")
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(study.trials) == 3 and len(complete) == 3

    # pareto.csv is exactly study.best_trials, with the same numbers
    front = pd.read_csv(out / "pareto.csv")
    best = {t.number: t for t in study.best_trials}
    assert set(front["trial"]) == set(best)
    for row in front.itertuples():
        assert list(best[row.trial].values) == pytest.approx([row.accuracy, row.latency_ms, row.size_mb])

    # MLflow: one parent run, three nested trial runs carrying the same numbers as Optuna
    client = MlflowClient(tracking_uri=f"sqlite:///{out / 'mlflow.db'}")
    parent, children = nested_runs(client, "tiny")
    assert parent.info.status == "FINISHED"
    assert {"teacher_accuracy", "teacher_latency_ms", "trials_complete", "front_size"} <= set(
        parent.data.metrics
    )
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {"pareto.csv", "space"}
    assert [int(r.data.tags["optuna.trial_number"]) for r in children] == [0, 1, 2]
    for run, trial in zip(children, complete, strict=True):
        assert trial.user_attrs["mlflow_run_id"] == run.info.run_id
        assert run.info.status == "FINISHED" and run.data.tags["optuna.trial_state"] == "COMPLETE"
        assert run.data.metrics["accuracy"] == pytest.approx(trial.values[0])
        assert run.data.metrics["latency_ms"] == pytest.approx(trial.values[1])
        assert {"depth", "width", "lambda", "temperature", "learning_rate", "train.steps"} <= set(
            run.data.params
        )
        curve = client.get_metric_history(run.info.run_id, "train_loss")
        assert [m.step for m in curve] == list(range(1, 9))

    # Same command again: nothing lost, nothing rerun. Then one more trial on top.
    again = search(tiny_space, tiny_teacher, sst2_slice, out, "--trials", "3", "--seed", "1")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "already has 3 finished trials" in again.stdout
    more = search(tiny_space, tiny_teacher, sst2_slice, out, "--trials", "4", "--seed", "1")
    assert more.returncode == 0, more.stderr[-3000:]
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'optuna.db'}")
    assert len(study.trials) == 4
    assert [t.values for t in study.trials[:3]] == [t.values for t in complete]
    assert study.trials[3].params != study.trials[0].params  # the resumed sampler does not replay trial 0
    assert len(nested_runs(client, "tiny")[1]) == 4


def test_validate_command(tiny_space: Path, tiny_teacher: Path, sst2_slice: Path, tmp_path: Path) -> None:
    cmd = [
        sys.executable,
        "-m",
        "autodistill",
        "validate",
        str(tiny_space),
        "--teacher",
        str(tiny_teacher),
        "--dataset",
        str(sst2_slice),
        "--out",
        str(tmp_path / "never"),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "OK" in done.stdout and "text 'sentence', label 'label'" in done.stdout
    assert not (tmp_path / "never").exists()
