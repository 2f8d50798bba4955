"""The honest final score: each student is scored on the test examples once, when it joins the front.

Nothing in the search reads these scores: trials are stopped (early stopping) and selected (the front)
on validation examples only, so the test score of the front's best student does not carry the
optimism of having been picked among many near-ties.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autodistill.search.preparation import Job
from autodistill.store.studies import record_test_scores, test_scores
from autodistill.store.tracking import Tracker


def test_metric(metric: str) -> str:
    """The name of a quality metric measured on the test examples, e.g. test_accuracy."""
    return f"test_{metric}"


def score_on_test(job: Job, model: Any) -> dict[str, float]:
    task = job.task
    value = task.evaluate(model, job.data.test, job.space.train.eval_batch_size, job.device)
    return {test_metric(task.metric): value}


def load_student(job: Job, path: str) -> Any | None:
    """A saved student, or None when its folder went while this worker read it: another worker, whose
    snapshot of the study is newer, saw the trial leave the front (it is then never scored)."""
    try:
        # Our own safetensors files: never load pickle from a study's directory.
        return job.task.auto_class().from_pretrained(path, use_safetensors=True)
    except OSError:
        if Path(path).is_dir():
            raise  # a broken student, not a removed one
        return None


class FrontTestScores:
    """Scores on the test examples the saved students of front trials that have no test score yet,
    records the scores (and the task's samples, e.g. generated text) on the study and logs them on
    each trial's MLflow run."""

    def __init__(self, job: Job, tracker: Tracker):
        self.job, self.tracker = job, tracker

    def __call__(self, study: Any, front: list[Any]) -> None:
        scored = test_scores(study)
        for trial in front:
            path = trial.user_attrs.get("student_dir")
            if trial.number in scored or not path or not Path(path).is_dir():
                continue
            model = load_student(self.job, path)
            if model is None:
                continue
            scores = score_on_test(self.job, model)
            samples = self.job.task.samples(model, self.job.tokenizer)
            record_test_scores(study, trial.number, scores, samples)
            run_id = trial.user_attrs.get("mlflow_run_id")
            if run_id:
                self.tracker.log_metrics(run_id, scores)
                for name, text in samples.items():
                    self.tracker.log_text(run_id, text, name)
