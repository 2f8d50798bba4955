"""What runs after each trial: the progress line, the front's students and MLflow tags, dead trials'
runs, and the stop once the study holds ``--trials`` finished trials. Optuna calls these per trial.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from autodistill.search.preparation import Job
from autodistill.search.test_scores import FrontTestScores
from autodistill.store.tracking import FRONT_TAG, Tracker
from autodistill.util.errors import first_line

FINISHED_STATES = ("COMPLETE", "PRUNED", "FAIL")


def front_snapshot(study: Any) -> tuple[list[Any], list[Any]]:
    """(complete and failed trials, then the front), read in this order and once for every use.

    With several workers, trials finish between two reads. Every trial of the first list had
    finished before the front was read, so one that is not on that front is dominated for good (a
    dominated trial never returns to the front): its student may be deleted and its tag set off.
    """
    from optuna.trial import TrialState

    finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL))
    return finished, study.best_trials


def keep_front_students(finished: list[Any], front: list[Any]) -> None:
    """Delete saved students that are off the front or whose trial failed after saving."""
    on_front = {t.number for t in front}
    for trial in finished:
        path = trial.user_attrs.get("student_dir")
        if path and trial.number not in on_front:
            remove_student(Path(path))


def remove_student(path: Path) -> None:
    """Delete a student's folder so that no other worker sees half of it.

    A worker whose snapshot is older than this one's may still read the folder (to score it on the test
    examples, or copy it to MLflow). Renamed aside first, the folder is gone in one step: a reader that
    has not started finds nothing and skips it, one that has opened its files reads on (POSIX keeps them).
    Another worker removing the same folder wins the rename, and this one has nothing left to do.
    """
    import os
    import shutil

    aside = path.with_name(f".{path.name}.removing-{os.getpid()}")
    try:
        path.rename(aside)
    except FileNotFoundError:
        return
    shutil.rmtree(aside, ignore_errors=True)


class FrontTags:
    """Keeps the ``autodistill.on_front`` tag of every trial's MLflow run in step with the front."""

    def __init__(self, tracker: Tracker):
        self.tracker = tracker
        self.known: dict[str, bool] = {}

    def __call__(self, finished: list[Any], front: list[Any]) -> None:
        numbers = {t.number for t in front}
        for trial in finished:
            run_id = trial.user_attrs.get("mlflow_run_id")
            on_front = trial.number in numbers
            if run_id and trial.state.name == "COMPLETE" and self.known.get(run_id) != on_front:
                self.tracker.set_tag(run_id, FRONT_TAG, "true" if on_front else "false")
                self.known[run_id] = on_front


class FrontStudentArtifacts:
    """Logs the student of a trial this worker just finished, with the teacher's tokenizer, as the
    ``student/`` artifacts of its MLflow run when it is on the front. A trial joins the front only when
    it finishes (later trials can only push it off), and only the worker that ran it is sure to hold
    its saved student, so each front student is logged once, by that worker."""

    def __init__(self, tracker: Tracker, tokenizer: Any):
        self.tracker, self.tokenizer = tracker, tokenizer

    def __call__(self, front: list[Any], trial: Any) -> None:
        import shutil
        import tempfile

        if trial is None or trial.state.name != "COMPLETE" or trial.number not in {t.number for t in front}:
            return
        path, run_id = trial.user_attrs.get("student_dir"), trial.user_attrs.get("mlflow_run_id")
        if not path or not run_id or not Path(path).is_dir():
            return
        with tempfile.TemporaryDirectory(prefix="autodistill-student-") as tmp:
            student = Path(tmp) / "student"
            try:
                shutil.copytree(path, student)
            except (OSError, shutil.Error):
                if Path(path).is_dir():
                    raise
                return  # removed meanwhile: another worker saw it leave the front
            self.tokenizer.save_pretrained(student)  # a model directory that loads without the teacher
            self.tracker.log_student(run_id, student)


class FrontUpkeep:
    """After each trial, from one snapshot of the study: delete students off the front, keep the
    MLflow ``on_front`` tags in step, log the finished trial's student when it joined the front, and
    score students that joined the front on the test examples."""

    def __init__(self, job: Job, tracker: Tracker):
        self.tags = FrontTags(tracker)
        # Through a tracking server, front students are logged for `export` on other machines; with a
        # local store, OUT/students already holds them and a second copy would double the disk.
        remote = tracker.tracking_uri.startswith(("http://", "https://"))
        self.students = FrontStudentArtifacts(tracker, job.tokenizer) if remote else None
        self.test_scores = FrontTestScores(job, tracker)

    def __call__(self, study: Any, trial: Any = None) -> None:
        """``trial``: the trial this worker has just finished (None when called after the search)."""
        finished, front = front_snapshot(study)
        keep_front_students(finished, front)
        self.tags(finished, front)
        if self.students:
            self.students(front, trial)
        self.test_scores(study, front)


def progress_line(trial: Any, done: int, total: int, metric: str) -> str:
    s = trial.user_attrs.get("settings", {})
    head = f"[{done}/{total}] trial {trial.number}"
    shape = (
        f"depth={s.get('depth')} width={s.get('width')} ffn={s.get('ffn')} init={s.get('init', 'random')} "
        f"λ={s.get('lambda', 0):.2f} T={s.get('temperature', 0):.2f} lr={s.get('learning_rate', 0):.1e}"
        + (f" β={s['hidden_weight']:.2f}" if s.get("hidden_weight") else "")
        + (f" α={s['attention_weight']:.2f}" if s.get("attention_weight") else "")
    )
    if trial.state.name != "COMPLETE":
        reason = trial.user_attrs.get("fail_reason") or trial.user_attrs.get("prune_reason", "")
        return f"{head} {trial.state.name}: {shape}: {reason}"
    m = trial.user_attrs["metrics"]
    seconds = (trial.datetime_complete - trial.datetime_start).total_seconds()
    return (
        f"{head} {shape} → {metric} {m[metric]:.4f}  p50 {m['latency_ms']:.2f} ms  "
        f"{m['size_mb']:.1f} MB  ({seconds:.0f} s)"
    )


def finished_trials(study: Any) -> int:
    """Trials that count toward ``--trials``: complete, pruned or failed, except failures that are
    retried (a dead process's trial, or one cut by Ctrl-C): their retry counts instead."""
    from optuna.storages import RetryHeartbeatStaleTrialCallback
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    with warnings.catch_warnings():  # retried_trial_number is marked experimental, and has been since v2.8
        warnings.simplefilter("ignore")
        retried = {RetryHeartbeatStaleTrialCallback.retried_trial_number(t) for t in trials} - {None}
    retried |= {t.number for t in trials if t.user_attrs.get("interrupted")}
    states = {TrialState[s] for s in FINISHED_STATES}
    return sum(
        1 for t in trials if t.state in states and not (t.state == TrialState.FAIL and t.number in retried)
    )


class Guarded:
    """Runs an Optuna callback and reports what it raises instead of letting it end the worker.

    Optuna does not catch exceptions raised in callbacks: one would end this worker (and fail the study's
    parent run) for upkeep that another worker upset, e.g. a student folder removed or a store busy
    meanwhile. The upkeep is redone from a fresh snapshot after the next trial.
    """

    def __init__(self, callback: Callable[[Any, Any], None], what: str, log: Callable[[str], None]):
        self.callback, self.what, self.log = callback, what, log

    def __call__(self, study: Any, trial: Any) -> None:
        try:
            self.callback(study, trial)
        except Exception as exc:
            self.log(
                f"warning: after trial {trial.number}, {self.what} failed ({first_line(exc)}); "
                "retried after the next trial"
            )


class StopAtTotal:
    """Stops a worker once the study holds ``total`` finished trials (see finished_trials), counting those
    other workers are running as finished: without them, every worker that ends a trial just before the
    total starts one more, and N workers overshoot by up to N - 1 trials.

    Optuna's ``MaxTrialsCallback(n, states=...)`` counts trials by state alone: a trial failed because its
    worker died or was interrupted, and run again, would count twice, and a study with such retries
    would stop short of ``--trials``. So the count is ``finished_trials``, with this one difference."""

    def __init__(self, total: int):
        self.total = total

    def __call__(self, study: Any, _trial: Any) -> None:
        from optuna.trial import TrialState

        running = len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))
        if finished_trials(study) + running >= self.total:
            study.stop()


def close_dead_runs(study: Any, tracker: Tracker) -> None:
    """End the MLflow runs of trials whose process died (Optuna failed them as stale) as KILLED."""
    from optuna.trial import TrialState

    for trial in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)):
        run_id = trial.user_attrs.get("mlflow_run_id")
        if run_id and tracker.is_running(run_id):
            tracker.end_dead_trial(run_id, "the process running this trial died (no heartbeat); retried once")
