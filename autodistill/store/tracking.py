"""MLflow tracking: one experiment per study, a parent run for the study, one nested run per trial.

Everything goes through ``MlflowClient`` with explicit run ids, never the fluent ``mlflow.start_run``
stack, so a run the caller already has active (a notebook, an outer pipeline) cannot be confused with
ours: other projects' loggers fail with "Run ... is already active" exactly there. When such a run
exists, the study's parent run is nested under it.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from autodistill.store.locations import bound_tracking_pool, redact
from autodistill.util.errors import first_line

if TYPE_CHECKING:
    from mlflow import MlflowClient

# MLflow's usage telemetry, started when mlflow is imported, sets and removes an environment variable from
# a background thread while other threads iterate over the environment (requests does, on each call to a
# tracking server): a KeyError that ended a worker of a 64-worker run. Off, unless the user chose.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

ROLE_TAG = "autodistill.role"
STUDY_TAG = "autodistill.study"
TRIAL_TAG = "optuna.trial_number"
STATE_TAG = "optuna.trial_state"
PARENT_TAG = "mlflow.parentRunId"
MAX_BATCH = 1000  # MLflow's limit of metrics per log_batch call
# How old the earliest study run must be before workers settle on it (see Tracker._settled_parent)
SETTLE_S = 2.0
FRONT_TAG = "autodistill.on_front"
# `train --best N`: "registered" on the run whose student was registered, "candidate" on the others
CHOICE_TAG = "autodistill.choice"
# A front student's model directory (weights, config, tokenizer) logged on its trial's run, so that
# `autodistill export` works on a machine that does not hold the worker's saved students.
STUDENT_ARTIFACT = "student"
STUDENT_TAG = "autodistill.student_artifact"
# MLflow 3's UI opens an experiment of this kind in its model-training view (runs, metrics, models)
# instead of inferring a kind from what the experiment holds.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}

T = TypeVar("T")


def quiet() -> None:
    """Lower MLflow's own loggers (configured when it is first imported) to errors only, and keep its client
    from printing two "View run" lines (and reading the run again to do so) each time a run ends on a
    tracking server: between a search's progress lines, once per trial."""
    import logging

    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    import mlflow  # noqa: F401  (configures its loggers on import; we lower them after)

    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.ERROR)


def retry(action: Callable[[], T], attempts: int = 4) -> T:
    """Run ``action``, retrying briefly: workers starting together race to create the store's tables."""
    for attempt in range(attempts):
        try:
            return action()
        except Exception:
            if attempt == attempts - 1:
                raise
            time.sleep(1.0 + attempt)
    raise AssertionError("unreachable")


def enable_concurrent_writers(tracking_uri: str) -> None:
    """Put a SQLite tracking store in write-ahead-log mode before several workers write to it: readers
    then never block the writer, and a writer waits for another (SQLite's busy timeout) instead of
    failing; the mode is kept in the file. Other stores take concurrent writers as they are."""
    import sqlite3

    if not tracking_uri.startswith("sqlite:///"):
        return
    path = Path(tracking_uri.removeprefix("sqlite:///"))
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.closing(sqlite3.connect(path)) as connection:
        connection.execute("PRAGMA journal_mode=WAL")


class Tracker:
    """Writes a study to an MLflow tracking URI (a SQLite file by default)."""

    def __init__(self, tracking_uri: str, study_name: str, artifact_root: str | None = None):
        from mlflow import MlflowClient

        bound_tracking_pool(tracking_uri)  # before the store is opened: MLflow reads it then
        # The client opens the store (creating its tables) at once: inside retry, for racing workers.
        self.client: MlflowClient = retry(lambda: MlflowClient(tracking_uri=tracking_uri))
        self.tracking_uri = tracking_uri
        self.study_name = study_name
        self.experiment_id: str = retry(lambda: self._experiment(artifact_root))
        self.parent_run_id = ""

    def _experiment(self, artifact_root: str | None) -> str:
        from mlflow.exceptions import MlflowException

        experiment = self.client.get_experiment_by_name(self.study_name)
        if experiment is not None:
            self._mark_kind(experiment)
            return str(experiment.experiment_id)
        location = f"{artifact_root}/{self.study_name}" if artifact_root else None
        try:
            return str(
                self.client.create_experiment(
                    self.study_name, artifact_location=location, tags=EXPERIMENT_KIND
                )
            )
        except MlflowException:  # another worker created it a moment ago
            experiment = self.client.get_experiment_by_name(self.study_name)
            if experiment is None:
                raise
            return str(experiment.experiment_id)

    def _mark_kind(self, experiment: Any) -> None:
        """Tag an experiment created before the tag was (a resumed study) with its kind."""
        for key, value in EXPERIMENT_KIND.items():
            if key not in experiment.tags:
                self.client.set_experiment_tag(experiment.experiment_id, key, value)

    def _study_runs(self) -> list[Any]:
        return list(
            self.client.search_runs(
                [self.experiment_id],
                filter_string=f"tags.`{ROLE_TAG}` = 'study'",
                order_by=["attributes.start_time ASC"],
            )
        )

    def start_study(self, tags: dict[str, str]) -> str:
        """Open the study's parent run, or reopen it when the study is resumed.

        Workers that start together may each create one; they all settle on the earliest and delete
        their own, so the study has exactly one parent run.
        """
        import mlflow

        if not self._study_runs():
            all_tags = {ROLE_TAG: "study", STUDY_TAG: self.study_name, **tags}
            outer = mlflow.active_run()
            if outer is not None and outer.info.experiment_id == self.experiment_id:
                all_tags[PARENT_TAG] = outer.info.run_id
            mine = self.client.create_run(
                self.experiment_id, tags=all_tags, run_name=f"study {self.study_name}"
            )
            self.parent_run_id = self._settled_parent()
            if self.parent_run_id != mine.info.run_id:
                self.client.delete_run(mine.info.run_id)
            return self.parent_run_id
        self.parent_run_id = self._settled_parent()
        self.client.update_run(self.parent_run_id, status="RUNNING")
        return self.parent_run_id

    def _settled_parent(self) -> str:
        """The earliest study run, once no earlier one can still arrive.

        A run's start time is taken by the worker before its request reaches the store, so through a
        server a run can become visible after a later-stamped one. Once the earliest visible run is
        ``SETTLE_S`` old, every run stamped before it has landed (the delay covers the request and
        clock skew between machines): from then on, all workers read the same earliest run.
        """
        while True:
            earliest = self._study_runs()[0]
            age = time.time() - earliest.info.start_time / 1000
            if age >= SETTLE_S:
                return str(earliest.info.run_id)
            time.sleep(SETTLE_S - age)

    def log_params(self, run_id: str, params: dict[str, Any]) -> None:
        """Log the parameters the run does not hold yet (MLflow parameters cannot change).

        Two workers may log the shared parent run's parameters at once: a batch that collides is
        retried one parameter at a time, skipping those the other worker wrote.
        """
        from mlflow.entities import Param
        from mlflow.exceptions import MlflowException

        existing = self.client.get_run(run_id).data.params
        fresh = [Param(k, str(v)) for k, v in params.items() if k not in existing]
        for i in range(0, len(fresh), 100):
            try:
                self.client.log_batch(run_id, params=fresh[i : i + 100])
            except MlflowException:
                written = self.client.get_run(run_id).data.params
                for param in fresh[i : i + 100]:
                    if param.key not in written:
                        self.client.log_param(run_id, param.key, param.value)

    def log_metrics(self, run_id: str, metrics: dict[str, float], step: int = 0) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(run_id, metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()])

    def log_curve(self, run_id: str, key: str, values: list[float]) -> None:
        """A learning curve, one point per step (step numbers start at 1)."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        points = [Metric(key, float(v), now, step) for step, v in enumerate(values, start=1)]
        for i in range(0, len(points), MAX_BATCH):
            self.client.log_batch(run_id, metrics=points[i : i + MAX_BATCH])

    def start_trial(self, number: int, params: dict[str, Any]) -> str:
        run = self.client.create_run(
            self.experiment_id,
            run_name=f"trial {number}",
            tags={
                PARENT_TAG: self.parent_run_id,
                TRIAL_TAG: str(number),
                STATE_TAG: "RUNNING",
                STUDY_TAG: self.study_name,
                ROLE_TAG: "trial",
            },
        )
        self.log_params(run.info.run_id, params)
        return run.info.run_id

    def end_trial(self, run_id: str, state: str, reason: str | None = None) -> None:
        """Close a trial's run; ``state`` is the Optuna state (COMPLETE, FAIL, PRUNED)."""
        self.client.set_tag(run_id, STATE_TAG, state)
        if reason:
            self.client.set_tag(run_id, "prune_reason" if state == "PRUNED" else "fail_reason", reason[:5000])
        # A pruned trial ran as intended and was stopped by the rule: its run finished, not failed.
        self.client.set_terminated(run_id, status="FAILED" if state == "FAIL" else "FINISHED")

    def set_tag(self, run_id: str, key: str, value: str) -> None:
        """Set (or overwrite) a tag. MLflow's SQL store reads, then inserts: two workers setting the same
        new tag at once (the ``on_front`` tag of one run) collide on its key; the second try updates it."""
        from mlflow.exceptions import MlflowException

        try:
            self.client.set_tag(run_id, key, value)
        except MlflowException:
            self.client.set_tag(run_id, key, value)

    def log_artifact(self, run_id: str, path: Path) -> None:
        self.client.log_artifact(run_id, str(path))

    def log_student(self, run_id: str, directory: Path) -> None:
        """Log a student's model directory as the run's ``student/`` artifacts, then tag the run."""
        self.client.log_artifacts(run_id, str(directory), STUDENT_ARTIFACT)
        self.client.set_tag(run_id, STUDENT_TAG, STUDENT_ARTIFACT)

    def log_text(self, run_id: str, text: str, name: str) -> None:
        self.client.log_text(run_id, text, name)

    def end_study(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.parent_run_id, status=status)

    def has_run(self, run_id: str) -> bool:
        """Whether this store holds the run (not deleted): a run id saved elsewhere may name another store's."""
        from mlflow.exceptions import MlflowException

        try:
            return bool(self.client.get_run(run_id).info.lifecycle_stage == "active")
        except MlflowException:
            return False

    def is_running(self, run_id: str) -> bool:
        """Whether the run is running in this store: not when another worker logged it to its own store
        (workers that share a study but not a tracking URI)."""
        from mlflow.exceptions import MlflowException

        try:
            return bool(self.client.get_run(run_id).info.status == "RUNNING")
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return False
            raise

    def end_dead_trial(self, run_id: str, reason: str) -> None:
        """Close the run of a trial whose process died: tagged failed, ended KILLED."""
        self.set_tag(run_id, "fail_reason", reason)
        self.set_tag(run_id, STATE_TAG, "FAIL")
        self.client.set_terminated(run_id, status="KILLED")

    def start_full_training(self, trial_number: int) -> str:
        """A run for ``autodistill train TRIAL`` under the study's parent run."""
        run = self.client.create_run(
            self.experiment_id,
            run_name=f"trial {trial_number} full length",
            tags={
                PARENT_TAG: self.parent_run_id,
                ROLE_TAG: "full-training",
                STUDY_TAG: self.study_name,
                TRIAL_TAG: str(trial_number),
            },
        )
        return str(run.info.run_id)

    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        self.client.set_terminated(run_id, status=status)

    def register_model(self, run_id: str, directory: Path, name: str, tags: dict[str, str]) -> str:
        """Log ``directory`` as the run's ``model`` artifact and register it in the Model Registry as a
        new version of ``name`` (created when missing); returns the version."""
        from mlflow.exceptions import MlflowException

        self.client.log_artifacts(run_id, str(directory), "model")
        # Created, not checked then created: two workers registering at once would both see it missing.
        try:
            self.client.create_registered_model(name, description=f"students of study {self.study_name}")
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        version = self.client.create_model_version(
            name, source=f"{self.client.get_run(run_id).info.artifact_uri}/model", run_id=run_id, tags=tags
        )
        return str(version.version)


def download_student(tracking_uri: str, run_id: str, destination: Path) -> Path | None:
    """Download the student logged on a trial's run into ``destination`` (an existing directory); its
    path, or None when the run has no student artifact. Reads only: no experiment or run is created.

    Raises:
        RuntimeError: the tracking store cannot be read or the download fails (one line).
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        client = MlflowClient(tracking_uri=tracking_uri)
        artifact = client.get_run(run_id).data.tags.get(STUDENT_TAG)
        if not artifact:
            return None
        return Path(client.download_artifacts(run_id, artifact, str(destination)))
    except MlflowException as exc:
        raise RuntimeError(f"MLflow run {run_id}: {redact(first_line(exc))}") from None


def log_teacher_run(tracking_uri: str, card: dict[str, Any], losses: list[float], out: Path) -> str:
    """One run in the ``teachers`` experiment: the recipe, the loss curve, accuracy, and the card."""
    tracker = Tracker(tracking_uri, "teachers", (out.resolve().parent / "mlartifacts").as_uri())
    run = tracker.client.create_run(
        tracker.experiment_id,
        run_name=f"teacher {out.name}",
        tags={ROLE_TAG: "teacher", "teacher.path": str(out.resolve())},
    )
    run_id = run.info.run_id
    recipe = dict(card["recipe"])
    dataset = recipe.pop("dataset")
    tracker.log_params(
        run_id,
        {**recipe, **{f"dataset.{k}": v for k, v in dataset.items()}, "labels": ",".join(card["labels"])},
    )
    tracker.log_curve(run_id, "train_loss", losses)
    tracker.log_metrics(
        run_id,
        {
            "validation_accuracy": card["validation_accuracy"],
            "test_accuracy": card["test_accuracy"],
            "train_seconds": card["train_seconds"],
        },
    )
    tracker.log_text(run_id, json.dumps(card, indent=2), "teacher_card.json")
    tracker.client.set_terminated(run_id, status="FINISHED")
    return run_id
