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

from autodistill.config.schema import SpaceConfig
from autodistill.deliver.export import card_facts, study_space, study_task, write_export
from autodistill.search.inputs import inspect_inputs
from autodistill.search.preparation import prepare_job
from autodistill.search.sampling import TrialSettings
from autodistill.search.test_scores import score_on_test, test_metric
from autodistill.search.trial import run_trial
from autodistill.store.studies import study_cache_dir
from autodistill.store.tracking import Tracker

ALL_EXAMPLES = 10**12


@dataclass
class FullLengthResult:
    metric: str  # the task's quality metric, e.g. accuracy
    before: float  # the trial's quality after its short run (validation examples)
    after: float  # the same after full-length training
    test_after: float  # the same on the test examples, which nothing was stopped or selected on
    steps: int
    export: dict[str, Any]
    run_id: str
    model_name: str
    model_version: str


def full_length_space(
    study: Any, steps: int | None, epochs: float | None, train_examples: int
) -> SpaceConfig:
    space = study_space(study)
    batch = space.train.batch_size
    total = steps or math.ceil((epochs or 1.0) * train_examples / batch)
    # A run of N steps sees at most N × batch examples: the teacher labels only those (its targets are
    # the costly part for a large teacher), a seeded subset as in the search.
    used = min(steps * batch, train_examples) if steps else ALL_EXAMPLES
    return space.model_copy(
        update={
            "train": space.train.model_copy(update={"steps": total}),
            "dataset": space.dataset.model_copy(update={"max_train_examples": used}),
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
    cache_dir: Path | None,
    log: Callable[[str], None],
    on_step: Callable[[int, float], None] | None = None,
) -> FullLengthResult:
    """``cache_dir``: ``--cache-dir``, else the study's own cache directory (shared by its workers)."""
    from transformers import AutoTokenizer

    out = Path(study.user_attrs.get("out") or ".")
    space = full_length_space(study, None, 1.0, 1)  # every example, to count them
    inputs, problems = inspect_inputs(space)
    if inputs is None:
        raise ValueError("; ".join(problems))
    train_examples = inputs.train_examples
    space = full_length_space(study, steps, epochs, train_examples)
    settings = TrialSettings.from_params(trial.user_attrs["settings"])
    # Only this student's depth is trained: the teacher's hidden states are needed for its layers alone.
    space = space.model_copy(
        update={
            "student": space.student.model_copy(update={"depth": settings.arch.depth}),
            "distill": space.distill.model_copy(update={"hidden_weight": settings.hidden_weight}),
        }
    )
    used = min(train_examples, space.dataset.max_train_examples or train_examples)
    log(
        f"train: trial {trial.number} at full length: {space.train.steps} steps on {used} of {train_examples} examples"
    )
    job = prepare_job(space, inputs, study_cache_dir(study, cache_dir, out / "cache"), log)
    outcome = run_trial(settings, job, on_step)
    outcome.metrics.update(score_on_test(job, outcome.student))  # the honest figure: nothing chose on it

    task = study_task(study)
    tracker = Tracker(tracking_uri, study.study_name, out / "mlartifacts")
    tracker.parent_run_id = study.user_attrs.get("mlflow_parent_run_id", "")
    run_id = tracker.start_full_training(trial.number)
    try:  # the run never stays RUNNING: an export or registry error ends it as FAILED
        tracker.log_params(
            run_id,
            {
                **settings.as_params(),
                "train.steps": space.train.steps,
                "source_trial": trial.number,
                "train_examples": len(job.data.train),
            },
        )
        tracker.log_curve(run_id, "train_loss", outcome.losses)
        for part, values in outcome.loss_parts.items():
            tracker.log_curve(run_id, f"train_loss_{part}", values)
        before = float(trial.user_attrs["metrics"][task.metric])
        tracker.log_metrics(run_id, {**outcome.metrics, f"{task.metric}_before": before})

        facts = card_facts(study, trial.number, space, run_id)
        card = task.model_card(
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
        version = tracker.register_model(
            run_id, to, model_name, {"study": study.study_name, "trial": str(trial.number)}
        )
    except BaseException:
        tracker.end_run(run_id, "FAILED")
        raise
    tracker.end_run(run_id, "FINISHED")
    return FullLengthResult(
        metric=task.metric,
        before=before,
        after=outcome.metrics[task.metric],
        test_after=outcome.metrics[test_metric(task.metric)],
        steps=space.train.steps,
        export=exported,
        run_id=run_id,
        model_name=model_name,
        model_version=version,
    )
