"""``autodistill train TRIAL``: the chosen student's recipe again, at full length, then export and register.

Same architecture, init seed, λ, T and learning rate as the trial; more steps and all training
examples (the teacher's logits on them are cached like a search's). The run is logged in the study's
MLflow experiment under its parent run, and the exported model is registered in the Model Registry.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ALL_EXAMPLES = 10**12


@dataclass
class FullLengthResult:
    before: float  # the trial's accuracy after its short run
    after: float
    steps: int
    export: dict[str, Any]
    run_id: str
    model_name: str
    model_version: str


def full_length_space(study: Any, steps: int | None, epochs: float | None, train_examples: int) -> Any:
    from autodistill.config import SpaceConfig

    space = SpaceConfig.model_validate(study.user_attrs["space"])
    batch = space.train.batch_size
    total = steps or math.ceil((epochs or 1.0) * train_examples / batch)
    return space.model_copy(
        update={
            "train": space.train.model_copy(update={"steps": total}),
            "dataset": space.dataset.model_copy(update={"max_train_examples": ALL_EXAMPLES}),
        }
    )


def train_full_length(
    study: Any,
    trial: Any,
    steps: int | None,
    epochs: float | None,
    to: Path,
    model_name: str,
    tracking_uri: str,
    log: Callable[[str], None],
    on_step: Callable[[int, float], None] | None = None,
) -> FullLengthResult:
    from transformers import AutoTokenizer

    from autodistill.export import model_card, write_export
    from autodistill.job import inspect_inputs, prepare_job
    from autodistill.space import TrialSettings
    from autodistill.tracking import PARENT_TAG, ROLE_TAG, STUDY_TAG, TRIAL_TAG, Tracker
    from autodistill.trial import run_trial

    out = Path(study.user_attrs.get("out") or ".")
    space = full_length_space(study, steps, epochs, 1)
    inputs, problems = inspect_inputs(space)
    if inputs is None:
        raise ValueError("; ".join(problems))
    space = full_length_space(study, steps, epochs, len(inputs.data.train.texts))
    settings = TrialSettings.from_params(trial.user_attrs["settings"])
    # Only this student's depth is trained: the teacher's hidden states are needed for its layers alone.
    space = space.model_copy(
        update={
            "student": space.student.model_copy(update={"depth": settings.arch.depth}),
            "distill": space.distill.model_copy(update={"hidden_weight": settings.hidden_weight}),
        }
    )
    log(
        f"train: trial {trial.number} at full length: {space.train.steps} steps on {len(inputs.data.train.texts)} examples"
    )
    job = prepare_job(space, inputs, out / "cache", log)
    outcome = run_trial(settings, job, on_step)

    tracker = Tracker(tracking_uri, study.study_name, out / "mlartifacts")
    run = tracker.client.create_run(
        tracker.experiment_id,
        run_name=f"trial {trial.number} full length",
        tags={
            PARENT_TAG: study.user_attrs.get("mlflow_parent_run_id", ""),
            ROLE_TAG: "full-training",
            STUDY_TAG: study.study_name,
            TRIAL_TAG: str(trial.number),
        },
    )
    run_id = run.info.run_id
    try:  # the run never stays RUNNING: an export or registry error ends it as FAILED
        tracker.log_params(
            run_id,
            {
                **settings.as_params(),
                "train.steps": space.train.steps,
                "source_trial": trial.number,
                "train_examples": len(job.train),
            },
        )
        tracker.log_curve(run_id, "train_loss", outcome.losses)
        before = float(trial.user_attrs["metrics"]["accuracy"])
        tracker.log_metrics(run_id, {**outcome.metrics, "accuracy_before": before})

        facts = {
            "study": study.study_name,
            "trial": trial.number,
            "teacher": space.teacher,
            "dataset": space.dataset.path,
            "steps": space.train.steps,
            "mlflow_run_id": run_id,
        }
        card = model_card(
            f"autodistill student: study {study.study_name}, trial {trial.number}, full length",
            settings.as_params(),
            outcome.metrics,
            facts,
        )
        tokenizer = AutoTokenizer.from_pretrained(str(space.teacher))
        exported = write_export(
            outcome.student,
            tokenizer,
            to,
            card,
            {**facts, "metrics": outcome.metrics},
            onnx=False,
            sequence_length=space.latency.sequence_length,
        )

        # The Model Registry holds a version whose source is this run's copy of the exported directory.
        tracker.client.log_artifacts(run_id, str(to), "model")
        if tracker.client.search_registered_models(filter_string=f"name = '{model_name}'") == []:
            tracker.client.create_registered_model(
                model_name, description=f"students of study {study.study_name}"
            )
        version = tracker.client.create_model_version(
            model_name,
            source=f"{tracker.client.get_run(run_id).info.artifact_uri}/model",
            run_id=run_id,
            tags={"study": study.study_name, "trial": str(trial.number)},
        )
    except BaseException:
        tracker.client.set_terminated(run_id, status="FAILED")
        raise
    tracker.client.set_terminated(run_id, status="FINISHED")
    return FullLengthResult(
        before=before,
        after=outcome.metrics["accuracy"],
        steps=space.train.steps,
        export=exported,
        run_id=run_id,
        model_name=model_name,
        model_version=str(version.version),
    )
