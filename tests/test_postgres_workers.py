"""Many workers, one study: the same `autodistill search` command run twice at once against PostgreSQL.

`.ci/run` installs and starts a real PostgreSQL server on loopback and sets AUTODISTILL_TEST_PG to a
URL of a role allowed to create databases; elsewhere the test is skipped unless that is set.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState

from tests.conftest import postgres_databases

pytestmark = pytest.mark.slow


@pytest.fixture
def databases() -> Iterator[tuple[str, str]]:
    with postgres_databases("optuna", "mlflow") as (optuna_db, mlflow_db):
        yield optuna_db, mlflow_db


def test_two_workers_share_one_study(
    databases: tuple[str, str], tiny_space: Path, tiny_teacher: Path, sst2_slice: Path, tmp_path: Path
) -> None:
    storage, tracking = databases
    total = 6

    def worker(name: str) -> subprocess.Popen[str]:
        # Each worker has its own --out, as on its own machine: its own caches and saved students.
        cmd = [
            sys.executable,
            "-m",
            "autodistill",
            "search",
            str(tiny_space),
            "--teacher",
            str(tiny_teacher),
            "--dataset",
            str(sst2_slice),
            "--storage",
            storage,
            "--tracking-uri",
            tracking,
            "--study",
            "shared",
            "--out",
            str(tmp_path / name),
            "--trials",
            str(total),
            "--set",
            "train.steps=60",
            "--artifact-root",  # a disk both machines see: the artifacts of both in one place
            str(tmp_path / "shared-artifacts"),
        ]
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    workers = [worker("machine-a"), worker("machine-b")]
    outputs = [w.communicate(timeout=900) for w in workers]
    for w, (stdout, stderr) in zip(workers, outputs, strict=True):
        assert w.returncode == 0, stdout[-1500:] + stderr[:2500] + "\n...\n" + stderr[-2500:]
        assert "password" not in stdout and "autodistill:" not in stderr

    study = optuna.load_study(study_name="shared", storage=storage)
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert total <= len(complete) <= total + 1  # each worker stops at the total; one may be mid-trial then
    assert all(t.state == TrialState.COMPLETE for t in study.trials)  # none lost, none left running
    run_ids = [t.user_attrs["mlflow_run_id"] for t in study.trials]
    assert len(set(run_ids)) == len(run_ids)  # one MLflow run per trial

    client = MlflowClient(tracking)
    experiment = client.get_experiment_by_name("shared")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get("autodistill.role") == "study"]
    trial_runs = [r for r in runs if r.data.tags.get("autodistill.role") == "trial"]
    assert len(parents) == 1
    assert sorted(r.info.run_id for r in trial_runs) == sorted(run_ids)
    assert sorted(int(r.data.tags["optuna.trial_number"]) for r in trial_runs) == [
        t.number for t in study.trials
    ]
    assert all(r.data.tags["mlflow.parentRunId"] == parents[0].info.run_id for r in trial_runs)
    # both workers really worked on the study
    for name in ("machine-a", "machine-b"):
        assert (tmp_path / name / "cache").is_dir()
        assert not (tmp_path / name / "mlartifacts").exists()  # none on one machine's own disk
    shared = tmp_path / "shared-artifacts" / "shared"
    assert experiment.artifact_location == shared.as_uri()
    logged = client.list_artifacts(parents[0].info.run_id)
    assert {"pareto.csv", "report.html"} <= {a.path for a in logged}
    assert list(shared.glob("*/artifacts/pareto.csv"))  # found where every machine can read it
