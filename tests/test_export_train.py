"""Choosing a student: export round-trip (reload, ONNX), front tags in MLflow, full-length train + registry."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import torch
from mlflow import MlflowClient

from autodistill.config import SpaceConfig
from autodistill.search.inputs import inspect_inputs
from autodistill.tasks.classification.encoding import encode
from autodistill.tasks.classification.evaluation import accuracy

pytestmark = pytest.mark.slow


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "autodistill", *args], capture_output=True, text=True, timeout=600
    )


def load(out: Path) -> optuna.Study:
    return optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'optuna.db'}")


def test_only_front_students_are_kept_and_tagged(tiny_study: Path) -> None:
    study = load(tiny_study)
    front = {t.number for t in study.best_trials}
    kept = {int(p.name.removeprefix("trial-")) for p in (tiny_study / "students").iterdir()}
    assert kept == front
    client = MlflowClient(f"sqlite:///{tiny_study / 'mlflow.db'}")
    for trial in study.trials:
        run = client.get_run(trial.user_attrs["mlflow_run_id"])
        assert run.data.tags["autodistill.on_front"] == ("true" if trial.number in front else "false")
    parent = client.get_run(study.user_attrs["mlflow_parent_run_id"])
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {"report.html", "pareto.csv"}


def test_export_round_trip_and_onnx(tiny_study: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    study = load(tiny_study)
    trial = study.best_trials[0]
    to = tmp_path / "exported"
    done = cli("export", str(trial.number), "--out", str(tiny_study), "--to", str(to), "--onnx")
    assert done.returncode == 0, done.stderr[-3000:]
    assert {"model.safetensors", "config.json", "tokenizer.json", "README.md", "model.onnx"} <= {
        p.name for p in to.iterdir()
    }

    model = AutoModelForSequenceClassification.from_pretrained(to).eval()
    assert model.config.id2label == {0: "negative", 1: "positive"}
    saved = AutoModelForSequenceClassification.from_pretrained(trial.user_attrs["student_dir"]).eval()
    tokenizer = AutoTokenizer.from_pretrained(to)
    batch = tokenizer(["a gorgeous , witty film", "dull"], return_tensors="pt", padding=True)
    with torch.no_grad():
        assert torch.equal(model(**batch).logits, saved(**batch).logits)

    import onnxruntime

    session = onnxruntime.InferenceSession(str(to / "model.onnx"), providers=["CPUExecutionProvider"])
    onnx_logits = session.run(
        None, {"input_ids": batch["input_ids"].numpy(), "attention_mask": batch["attention_mask"].numpy()}
    )[0]
    with torch.no_grad():
        assert abs(onnx_logits - model(**batch).logits.numpy()).max() < 1e-4

    # re-evaluating the exported model through the product's own data code gives the reported accuracy
    space = SpaceConfig.model_validate(study.user_attrs["space"])
    inputs, problems = inspect_inputs(space)
    assert inputs is not None, problems
    validation = encode(inputs.examples.validation, tokenizer, space.train.max_length, cache_dir=None)
    assert accuracy(model, validation, 64, "cpu") == pytest.approx(
        trial.user_attrs["metrics"]["accuracy"], abs=1e-9
    )
    card = (to / "README.md").read_text()
    assert f"trial {trial.number}" in card and "lambda" in card and "accuracy" in card
    assert json.loads((to / "autodistill.json").read_text())["trial"] == trial.number


def test_export_refuses_a_student_that_was_not_kept(tiny_study: Path, tmp_path: Path) -> None:
    study = load(tiny_study)
    off_front = [t.number for t in study.trials if t.number not in {b.number for b in study.best_trials}]
    if not off_front:
        pytest.skip("every trial is on the front in this study")
    done = cli("export", str(off_front[0]), "--out", str(tiny_study), "--to", str(tmp_path / "x"))
    assert done.returncode == 2 and "not kept" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "x").exists()
    missing = cli("export", "99", "--out", str(tiny_study), "--to", str(tmp_path / "y"))
    assert missing.returncode == 2 and "TRIAL 99" in missing.stderr
    nowhere = cli("report", "--out", str(tmp_path / "none"))
    assert nowhere.returncode == 2 and "no optuna.db or optuna.journal there" in nowhere.stderr


def test_train_full_length_registers_a_model_version(tiny_study: Path, tmp_path: Path) -> None:
    study = load(tiny_study)
    trial = study.best_trials[0]
    to = tmp_path / "full"
    done = cli(
        "train",
        str(trial.number),
        "--out",
        str(tiny_study),
        "--steps",
        "20",
        "--to",
        str(to),
        "--model-name",
        "tiny-students",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (
        "after the search's short run" in done.stdout
        and "registered as 'tiny-students' version 1" in done.stdout
    )
    client = MlflowClient(f"sqlite:///{tiny_study / 'mlflow.db'}")
    (version,) = client.search_model_versions("name = 'tiny-students'")
    run = client.get_run(version.run_id)
    assert run.data.tags["autodistill.role"] == "full-training"
    assert run.data.tags["mlflow.parentRunId"] == study.user_attrs["mlflow_parent_run_id"]
    assert run.data.params["train.steps"] == "20" and run.data.params["width"] == str(
        trial.user_attrs["settings"]["width"]
    )
    assert {"accuracy", "accuracy_before"} <= set(run.data.metrics)
    # 20 steps see at most 20 × batch examples: the teacher labels only those, not the whole split.
    from autodistill.deliver.export import study_space

    batch = study_space(study).train.batch_size
    assert f"20 steps on {min(20 * batch, int(run.data.params['train_examples']))} of " in done.stdout
    assert int(run.data.params["train_examples"]) <= 20 * batch
    from transformers import AutoModelForSequenceClassification

    assert (
        AutoModelForSequenceClassification.from_pretrained(to).config.hidden_size
        == trial.user_attrs["settings"]["width"]
    )


def test_report_command_rewrites_the_report(tiny_study: Path, tmp_path: Path) -> None:
    done = cli("report", "--out", str(tiny_study), "--to", str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "report.html").stat().st_size > 1_000_000  # plotly.js is inlined: no network needed
    assert (tmp_path / "pareto.csv").read_text() == (tiny_study / "pareto.csv").read_text()
