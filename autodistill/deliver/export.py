"""Export a student as a Hugging Face model directory (and optionally ONNX) that loads anywhere.

The directory holds safetensors weights, the config with ``id2label``, the teacher's tokenizer, a
model card (README.md) with the trial's settings and measured metrics, and ``model.onnx`` on request,
checked against torch. It is written beside its destination and renamed into place when complete.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from autodistill.config.schema import SpaceConfig
from autodistill.measure.onnx import export_onnx
from autodistill.store.studies import StudyError, test_scores
from autodistill.store.tracking import download_student
from autodistill.tasks import Task, get_task
from autodistill.util.files import swap_into_place, temporary_sibling

ONNX_TOLERANCE = 1e-4


def write_export(
    model: Any, tokenizer: Any, to: Path, card: str, facts: dict[str, Any], onnx: bool, sequence_length: int
) -> dict[str, Any]:
    """Write the model directory atomically; returns what was written (and the ONNX gap)."""
    tmp = temporary_sibling(to)
    model.to("cpu").save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    (tmp / "README.md").write_text(card, encoding="utf-8")
    result: dict[str, Any] = {"path": str(to.resolve())}
    if onnx:
        gap = export_onnx(model, tmp / "model.onnx", sequence_length)
        if gap > ONNX_TOLERANCE:
            shutil.rmtree(tmp, ignore_errors=True)
            raise RuntimeError(
                f"ONNX logits differ from torch by {gap:.2e} (> {ONNX_TOLERANCE}); nothing written"
            )
        result["onnx_max_abs_diff"] = gap
    (tmp / "autodistill.json").write_text(json.dumps({**facts, **result}, indent=2, default=str))
    swap_into_place(tmp, to, "autodistill.json", "an autodistill export")
    return result


def card_facts(study: Any, trial_number: int, space: SpaceConfig, run_id: str | None) -> dict[str, Any]:
    """Where a student came from, for its model card and ``autodistill.json``."""
    return {
        "study": study.study_name,
        "trial": trial_number,
        "teacher": space.teacher,
        "dataset": space.dataset.path,
        "steps": space.train.steps,
        "mlflow_run_id": run_id,
    }


def study_space(study: Any) -> SpaceConfig:
    """The space a study was searched with, as the search recorded it."""
    return SpaceConfig.model_validate(study.user_attrs["space"])


def study_task(study: Any) -> Task:
    return get_task(study_space(study))


def export_trial(
    study: Any, trial: Any, to: Path, onnx: bool, tracking_uri: Callable[[], str] | None = None
) -> dict[str, Any]:
    """Export the student a search kept for ``trial`` (front students are saved at trial time).

    When this machine does not hold the saved student (the search ran elsewhere), it is downloaded from
    the trial's MLflow run (``tracking_uri()`` names the store) into a directory beside ``to``.
    """
    import tempfile

    student_dir = trial.user_attrs.get("student_dir")
    if student_dir and Path(student_dir).is_dir():
        return _export_from(study, trial, Path(student_dir), None, to, onnx)
    run_id = trial.user_attrs.get("mlflow_run_id")
    not_kept = (
        f"TRIAL {trial.number}: its student was not kept (only students on the front are saved); "
        f"pick a front trial from pareto.csv, or retrain it with `autodistill train {trial.number}`"
    )
    if tracking_uri is None or not run_id:
        raise StudyError(not_kept)
    uri = tracking_uri()
    to.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=to.parent, prefix=f".{to.name}.student.") as tmp:
        downloaded = download_student(uri, run_id, Path(tmp))
        if downloaded is None:
            raise StudyError(f"{not_kept}; its MLflow run {run_id} holds no student either")
        return _export_from(study, trial, downloaded, run_id, to, onnx)


def _export_from(
    study: Any, trial: Any, student_dir: Path, downloaded_from: str | None, to: Path, onnx: bool
) -> dict[str, Any]:
    from transformers import AutoTokenizer

    space = study_space(study)
    task = study_task(study)
    if onnx and not task.exports_onnx:
        raise StudyError(f"--onnx: {task.name} students export as safetensors only; drop --onnx")
    # Stored students are our own safetensors files: never load pickle from a study's directory.
    model = task.auto_class().from_pretrained(student_dir, use_safetensors=True)
    # A student logged in MLflow carries the teacher's tokenizer; a saved one uses the teacher's own.
    has_tokenizer = (student_dir / "tokenizer_config.json").is_file()
    tokenizer = AutoTokenizer.from_pretrained(str(student_dir if has_tokenizer else space.teacher))
    settings = trial.user_attrs.get("settings", {})
    # validation figures, and the test score it got when it joined the front
    metrics = {**trial.user_attrs.get("metrics", {}), **test_scores(study).get(trial.number, {})}
    facts = card_facts(study, trial.number, space, trial.user_attrs.get("mlflow_run_id"))
    card = task.model_card(
        f"autodistill student: study {study.study_name}, trial {trial.number}", settings, metrics, facts
    )
    written = {**facts, "settings": settings, "metrics": metrics}
    if downloaded_from:
        written["downloaded_from_run"] = downloaded_from
    result = write_export(model, tokenizer, to, card, written, onnx, space.latency.sequence_length)
    if downloaded_from:
        result["downloaded_from_run"] = downloaded_from
    return result
