"""``train --best N``'s candidates, each saved the moment its training ends: a command interrupted during
candidate 3 resumes there when run again, instead of training candidates 1 and 2 again.

A candidate is saved as a directory ``CANDIDATES/trial-N/`` (``OUT/candidates/`` by default): the student
(safetensors weights and config, loaded back with ``from_pretrained``) and ``candidate.json``, what
choosing among the candidates needs (validation before and after training, test after, the MLflow run,
the full-length space) and the key of everything that shaped the student. The two are built beside the
directory and renamed into place together, so a record never names a student that is not there.

A saved candidate is reused only when its key matches (same study, trial, recipe, space and training
length) and its MLflow run is in this tracking store; otherwise it is trained again and replaced.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autodistill.config.schema import SpaceConfig
from autodistill.search.sampling import TrialSettings
from autodistill.search.test_scores import test_metric
from autodistill.search.trial import TrialOutcome
from autodistill.util.files import swap_into_place, temporary_sibling
from autodistill.util.hashing import short_hash

RECORD = "candidate.json"


@dataclass
class Candidate:
    """One trial's student trained at full length, scored on validation and test, logged in MLflow
    (its run still open until the choice is made), not yet exported."""

    trial: Any
    space: SpaceConfig
    settings: TrialSettings
    outcome: TrialOutcome  # ``student`` is None for one reused from ``saved``: loaded when exported
    metric: str
    before: float  # validation, after the search's short run
    run_id: str
    validation_examples: int  # how many examples ``after`` was measured on
    saved: Path | None = None  # its directory under CANDIDATES, once saved

    @property
    def after(self) -> float:
        return self.outcome.metrics[self.metric]

    @property
    def test_after(self) -> float:
        return self.outcome.metrics[test_metric(self.metric)]

    def describe(self) -> str:
        return (
            f"validation {self.metric} {self.before:.4f} → {self.after:.4f}, test {self.test_after:.4f}, "
            f"MLflow run {self.run_id}"
        )


def candidate_key(study: Any, trial: Any, length: Any) -> str:
    """What shapes a full-length student: the study, the trial and its recipe, the space the study was
    searched with (teacher, data, training settings, seed) and ``length`` (a ``TrainingLength``).

    The space's ``search`` section is left out: a resumed search may change its sampler, and nothing in
    it shapes a full-length run (its constraints are dropped there, see ``full_length_space``)."""
    space = {k: v for k, v in study.user_attrs["space"].items() if k != "search"}
    return short_hash(
        study.study_name, trial.number, trial.user_attrs["settings"], space, dataclasses.asdict(length)
    )


def candidate_dir(root: Path, trial_number: int) -> Path:
    return root / f"trial-{trial_number}"


def save_candidate(root: Path, candidate: Candidate, key: str) -> Path:
    """Write the candidate's student and record to ``root/trial-N`` (replacing an older one) at once."""
    to = candidate_dir(root, candidate.trial.number)
    tmp = temporary_sibling(to)
    try:
        candidate.outcome.student.save_pretrained(tmp, safe_serialization=True)
        record = {
            "key": key,
            "trial": candidate.trial.number,
            "metric": candidate.metric,
            "validation_before": candidate.before,
            "validation_after": candidate.after,
            "test_after": candidate.test_after,
            "metrics": candidate.outcome.metrics,
            "mlflow_run_id": candidate.run_id,
            "validation_examples": candidate.validation_examples,
            "space": candidate.space.model_dump(mode="json", by_alias=True),
        }
        (tmp / RECORD).write_text(json.dumps(record, indent=2, sort_keys=True), encoding="utf-8")
    except BaseException:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        raise
    swap_into_place(tmp, to, RECORD, "a saved train --best candidate")
    candidate.saved = to
    return to


def saved_candidate(
    root: Path, trial: Any, key: str, has_run: Callable[[str], bool]
) -> tuple[Candidate | None, str]:
    """The candidate saved for ``trial`` when it can be reused, else None and why not ("" when none was
    saved). ``has_run(run_id)``: whether the tracking store holds that run."""
    directory = candidate_dir(root, trial.number)
    path = directory / RECORD
    if not path.is_file():
        return None, ""
    record = json.loads(path.read_text(encoding="utf-8"))
    if record.get("key") != key:
        return None, "it was trained with other settings: steps, epochs, examples or the study's space"
    if not (directory / "config.json").is_file() or not any(directory.glob("*.safetensors")):
        return None, "its student's files are missing"
    if not has_run(record["mlflow_run_id"]):
        return None, f"its MLflow run {record['mlflow_run_id']} is not in this tracking store"
    outcome = TrialOutcome(metrics=record["metrics"], losses=[], loss_parts={}, timings={}, student=None)
    candidate = Candidate(
        trial=trial,
        space=SpaceConfig.model_validate(record["space"]),
        settings=TrialSettings.from_params(trial.user_attrs["settings"]),
        outcome=outcome,
        metric=record["metric"],
        before=float(record["validation_before"]),
        run_id=record["mlflow_run_id"],
        validation_examples=int(record["validation_examples"]),
        saved=directory,
    )
    return candidate, ""


def candidate_student(candidate: Candidate, task: Any) -> Any:
    """The trained student: the one in memory, else the one saved (stored safetensors only, no pickle)."""
    if candidate.outcome.student is None:
        assert candidate.saved is not None  # a candidate without a student in memory was read from there
        candidate.outcome.student = task.auto_class().from_pretrained(candidate.saved, use_safetensors=True)
    return candidate.outcome.student
