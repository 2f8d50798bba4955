"""A tracking server as teams run one: a real `mlflow server` on PostgreSQL with proxied artifacts, three
`autodistill search` workers on one Optuna study in PostgreSQL sharing one ``--cache-dir``, and `export`
from a machine that holds neither the workers' saved students nor the teacher.

`.ci/run` starts PostgreSQL and sets AUTODISTILL_TEST_PG; elsewhere the test is skipped unless it is set.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState

from tests.conftest import TINY_SPACE, free_port, http_server, postgres_databases, search_command

pytestmark = pytest.mark.slow
WORKERS = ("machine-a", "machine-b", "machine-c")
TOTAL = 3


@pytest.fixture(scope="module")
def served_study(
    tmp_path_factory: pytest.TempPathFactory, tiny_teacher: Path, sst2_slice: Path
) -> Iterator[dict[str, Any]]:
    """The server (kept running for the tests) and the three workers' finished search."""
    root = tmp_path_factory.mktemp("tracking-server")
    space = root / "tiny.yaml"
    space.write_text(TINY_SPACE)
    teacher = root / "teacher"  # a copy, removed before the export: the other machine does not have it
    shutil.copytree(tiny_teacher, teacher)
    artifacts, cache = root / "server-artifacts", root / "shared-cache"
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    with postgres_databases("optuna", "mlflow") as (storage, backend):
        server = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend]
        server += ["--artifacts-destination", str(artifacts), "--host", "127.0.0.1", "--port", str(port)]
        server += ["--workers", "1"]
        with http_server(server, f"{uri}/health", root / "mlflow-server.log"):
            flags = ["--storage", storage, "--tracking-uri", uri, "--study", "shared"]
            flags += ["--cache-dir", str(cache), "--trials", str(TOTAL)]
            procs = [
                subprocess.Popen(
                    search_command(space, teacher, sst2_slice, root / name, *flags),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                for name in WORKERS
            ]
            done = []
            for p in procs:
                stdout, stderr = p.communicate(timeout=900)
                done.append((p.returncode, stdout, stderr))
            yield {
                "root": root,
                "teacher": teacher,
                "artifacts": artifacts,
                "cache": cache,
                "storage": storage,
                "uri": uri,
                "done": done,
            }


def test_three_workers_track_through_the_server(served_study: dict[str, Any]) -> None:
    for code, stdout, stderr in served_study["done"]:
        assert code == 0, stdout[-2000:] + stderr[-3000:]
    stdout = "".join(out for _, out, _ in served_study["done"])
    # one shared cache: the teacher's targets and reference figures computed once across the three
    assert stdout.count("teacher: computing logits") == 1
    assert stdout.count("teacher: measuring") == 1
    assert len(list(served_study["cache"].glob("teacher-logits-*.pt"))) == 1

    study = optuna.load_study(study_name="shared", storage=served_study["storage"])
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    # each worker stops at the total; the two others may each be mid-trial then
    assert TOTAL <= len(complete) <= TOTAL + len(WORKERS) - 1
    assert all(t.state == TrialState.COMPLETE for t in study.trials)

    client = MlflowClient(served_study["uri"])
    experiment = client.get_experiment_by_name("shared")
    assert experiment.artifact_location.startswith("mlflow-artifacts:")  # proxied by the server
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get("autodistill.role") == "study"]
    trial_runs = [r for r in runs if r.data.tags.get("autodistill.role") == "trial"]
    assert len(parents) == 1
    assert sorted(r.info.run_id for r in trial_runs) == sorted(
        t.user_attrs["mlflow_run_id"] for t in study.trials
    )

    # the report, logged on the parent run through the server, lands in its --artifacts-destination
    parent = parents[0].info.run_id
    assert {a.path for a in client.list_artifacts(parent)} >= {"report.html", "pareto.csv"}
    stored: Path = served_study["artifacts"]
    assert len(list(stored.rglob("report.html"))) == 1 and len(list(stored.rglob("pareto.csv"))) == 1
    for name in WORKERS:  # nothing tracked on the workers' own disks
        out = served_study["root"] / name
        assert not (out / "mlartifacts").exists() and not (out / "mlflow.db").exists()

    # every front student is a loadable model directory in its trial's run
    front = study.best_trials
    assert front
    for trial in front:
        run_id = trial.user_attrs["mlflow_run_id"]
        assert client.get_run(run_id).data.tags["autodistill.student_artifact"] == "student"
        files = {Path(a.path).name for a in client.list_artifacts(run_id, "student")}
        assert {"model.safetensors", "config.json", "tokenizer.json"} <= files
    assert len(list(stored.rglob("student/model.safetensors"))) >= len(front)


def test_export_from_a_machine_without_the_students(served_study: dict[str, Any]) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    for code, stdout, stderr in served_study["done"]:
        assert code == 0, stdout[-2000:] + stderr[-3000:]
    root: Path = served_study["root"]
    # the other machine has none of the workers' directories, nor the teacher
    for name in WORKERS:
        shutil.rmtree(root / name / "students", ignore_errors=True)
    shutil.rmtree(served_study["teacher"])
    study = optuna.load_study(study_name="shared", storage=served_study["storage"])
    trial = study.best_trials[0]
    elsewhere = root / "elsewhere"
    elsewhere.mkdir()
    to = elsewhere / "exported"
    cmd = [sys.executable, "-m", "autodistill", "export", str(trial.number), "--to", str(to)]
    cmd += ["--storage", served_study["storage"], "--study", "shared", "--tracking-uri", served_study["uri"]]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=elsewhere)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    run_id = trial.user_attrs["mlflow_run_id"]
    assert f"student: downloaded from MLflow run {run_id}" in done.stdout
    assert sorted(p.name for p in elsewhere.iterdir()) == ["exported"]  # the download is cleaned up
    assert json.loads((to / "autodistill.json").read_text())["downloaded_from_run"] == run_id

    model = AutoModelForSequenceClassification.from_pretrained(to, use_safetensors=True).eval()
    assert model.config.id2label == {0: "negative", 1: "positive"}
    logged = MlflowClient(served_study["uri"]).download_artifacts(run_id, "student", str(root))
    reference = AutoModelForSequenceClassification.from_pretrained(logged, use_safetensors=True).eval()
    import torch

    tokenizer = AutoTokenizer.from_pretrained(to)
    batch = tokenizer(["a gorgeous , witty film", "dull"], return_tensors="pt", padding=True)
    with torch.no_grad():
        assert torch.equal(model(**batch).logits, reference(**batch).logits)
