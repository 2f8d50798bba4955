"""The search controller: open the study and its MLflow runs, prepare the job once, run the trials,
then write and log the front."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autodistill.config.spacefile import LoadedSpace
from autodistill.search.callbacks import (
    FrontUpkeep,
    Guarded,
    StopAtTotal,
    close_dead_runs,
    finished_trials,
    progress_line,
)
from autodistill.search.objective import make_objective
from autodistill.search.preparation import Job, prepare_job
from autodistill.search.study import open_study, queue_first_trials
from autodistill.search.workers import SAMPLER_SEED_ATTR, fail_dead_workers_trials
from autodistill.store.locations import Locations, redact
from autodistill.store.studies import (
    CACHE_DIR_ATTR,
    TEACHER_REFERENCE_ATTR,
    record_teacher_reference,
    study_cache_dir,
)
from autodistill.store.tracking import Tracker
from autodistill.tasks import TaskInputs
from autodistill.util.errors import first_line


@dataclass
class SearchResult:
    study: Any
    front: Any  # pandas.DataFrame from pareto.front_frame
    reference: dict[str, Any]  # the teacher's figures, timed on the machine of the front's latencies
    csv_path: Path
    experiment_id: str  # the study's MLflow experiment


def run_search(
    loaded: LoadedSpace,
    inputs: TaskInputs,
    loc: Locations,
    trials: int,
    timeout: float | None,
    seed: int,
    log: Callable[[str], None],
) -> SearchResult:
    """Run (or resume) the study until it has ``trials`` finished trials in total, then report its front."""
    from optuna.trial import TrialState

    from autodistill.report import front_frame, front_reference, write_report

    space = loaded.config
    study = open_study(loc, space, seed, inputs.fingerprint)
    if (drawn := getattr(study.sampler, SAMPLER_SEED_ATTR)) != (seed + len(study.trials)) % 2**32:
        log(
            f"sampler seed {drawn}, from the operating system: workers share this study (each trial records it)"
        )
    if queued := queue_first_trials(study, space):
        log(f"search.first_trials: {queued} queued ahead of the sampler's proposals")
    cache_dir = study_cache_dir(study, loc.cache_dir if loc.cache_dir_chosen else None, loc.cache_dir)
    if cache_dir.resolve() != loc.cache_dir.resolve():
        log(f"teacher cache: {cache_dir}, where this study kept it (--cache-dir chooses another)")
    tracker = Tracker(loc.tracking_uri, loc.study_name, loc.artifact_root)
    parent = tracker.start_study({"teacher": str(space.teacher), "dataset": str(space.dataset.path)})
    _record_study(study, loaded, loc, parent, cache_dir)
    try:
        job = prepare_job(space, inputs, cache_dir, log)
        record_teacher_reference(study, job.reference, job.machine)
        _log_study_inputs(tracker, parent, loaded, loc, job, seed)
        upkeep = FrontUpkeep(job, tracker)
        _optimize(study, job, tracker, loc, trials, timeout, log, upkeep)
        try:  # also scores the front of a study resumed with nothing left to run
            upkeep(study)
        except Exception as exc:  # another worker's upkeep may have upset it; the study itself is whole
            log(f"warning: front upkeep failed ({first_line(exc)}); `autodistill report` runs it again")
        front = front_frame(study)
        reference = front_reference(study, front)
        csv_path, html_path = write_report(study, reference, loc.out)
        tracker.log_artifact(parent, csv_path)
        tracker.log_artifact(parent, html_path)
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        tracker.log_metrics(parent, {"trials_complete": len(complete), "front_size": len(front)})
    except KeyboardInterrupt:
        _end_parent(study, tracker, "KILLED")
        raise
    except BaseException:
        _end_parent(study, tracker, "FAILED")
        raise
    _end_parent(study, tracker, "FINISHED")
    if not complete:
        log(
            "no trial completed: every trial failed, was stopped early or broke a size/latency constraint "
            "before training; see the reasons above or in MLflow (tags fail_reason, prune_reason)"
        )
    elif front.empty:
        log("no trial met the constraints, so the front is empty; see search.constraints")
    return SearchResult(
        study=study,
        front=front,
        reference=reference,
        csv_path=csv_path,
        experiment_id=tracker.experiment_id,
    )


def settle_after_workers(study: Any, loc: Locations, interrupted: bool) -> SearchResult | None:
    """Once every worker of ``search --workers N`` has ended: fail and queue again the trials of any that
    died unnoticed, close their MLflow runs and the study's parent run, and write the report once, from
    the whole study (each worker wrote one as it ended, maybe before another's last trial). None when
    interrupted, or when no worker got as far as measuring the teacher."""
    from autodistill.report import front_frame, front_reference, write_report

    if (
        not loc.has_heartbeat
    ):  # every worker has ended: a trial still running here is a dead one's (a database's
        fail_dead_workers_trials(study)  # heartbeat judges its own, and other hosts may share its name)
    tracker = Tracker(loc.tracking_uri, loc.study_name, loc.artifact_root)
    close_dead_runs(study, tracker)
    parent = study.user_attrs.get("mlflow_parent_run_id")
    if parent and tracker.is_running(parent):
        tracker.end_run(parent, "KILLED" if interrupted else "FINISHED")
    if interrupted or TEACHER_REFERENCE_ATTR not in study.user_attrs:
        return None
    front = front_frame(study)
    reference = front_reference(study, front)
    csv_path, html_path = write_report(study, reference, loc.out)
    if parent:
        tracker.log_artifact(parent, csv_path)
        tracker.log_artifact(parent, html_path)
    return SearchResult(study, front, reference, csv_path, tracker.experiment_id)


def _end_parent(study: Any, tracker: Tracker, status: str) -> None:
    """End the study's parent run, unless another worker is still running trials of this study."""
    from optuna.trial import TrialState

    if not study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        tracker.end_study(status)


def _optimize(
    study: Any,
    job: Job,
    tracker: Tracker,
    loc: Locations,
    trials: int,
    timeout: float | None,
    log: Callable[[str], None],
    upkeep: FrontUpkeep,
) -> None:
    from optuna.storages import fail_stale_trials

    fail_stale_trials(study)  # a trial whose process died is failed now and its parameters queued again
    if not loc.has_heartbeat:  # the same, found by process id: a journal file has no heartbeat
        fail_dead_workers_trials(study)
    close_dead_runs(study, tracker)
    done = finished_trials(study)
    remaining = max(0, trials - done)
    if remaining == 0:
        log(
            f"study '{study.study_name}' already has {done} finished trials (--trials {trials}); nothing to run"
        )
        return
    log(f"study '{study.study_name}': {done} finished trials, running up to {remaining} more on {job.device}")

    def report_trial(study: Any, trial: Any) -> None:
        log(progress_line(trial, finished_trials(study), trials, job.task.metric))

    def keep_up(study: Any, trial: Any) -> None:
        upkeep(study, trial)
        if not loc.has_heartbeat:  # a worker beside this one died mid-trial: its trial is retried now,
            fail_dead_workers_trials(study)  # not counted as running until the study stops short
        close_dead_runs(study, tracker)  # another worker's dead trial may have been failed meanwhile

    study.optimize(
        make_objective(job, tracker, loc.out / "students"),
        n_trials=remaining,
        timeout=timeout,
        catch=(Exception,),
        callbacks=[
            Guarded(report_trial, "the progress line", log),
            Guarded(keep_up, "front upkeep", log),
            Guarded(StopAtTotal(trials), "the count of finished trials", log),
        ],
    )
    fail_stale_trials(study)  # a dead trial whose grace period ended while this run worked
    close_dead_runs(study, tracker)


def _record_study(
    study: Any, loaded: LoadedSpace, loc: Locations, parent_run_id: str, cache_dir: Path
) -> None:
    """What later commands (report, export, train) and resumes need to find this study's pieces again."""
    from autodistill.tasks import get_task

    task = get_task(loaded.config)
    study.set_user_attr("task", task.name)
    study.set_user_attr("quality_metric", {"name": task.metric, "direction": task.direction})
    study.set_user_attr("mlflow_parent_run_id", parent_run_id)
    study.set_user_attr("space", loaded.config.model_dump(mode="json", by_alias=True))
    study.set_user_attr("space_file", str(loaded.path))
    study.set_user_attr("out", str(loc.out.resolve()))
    study.set_user_attr(CACHE_DIR_ATTR, str(cache_dir.resolve()))
    # A URL with a password is not stored: later commands then ask for --tracking-uri.
    study.set_user_attr(
        "tracking_uri", loc.tracking_uri if redact(loc.tracking_uri) == loc.tracking_uri else None
    )


def _log_study_inputs(
    tracker: Tracker, parent: str, loaded: LoadedSpace, loc: Locations, job: Job, seed: int
) -> None:
    space = loaded.config
    tracker.log_params(
        parent,
        {
            "task": space.task,
            "teacher": space.teacher,
            "dataset": space.dataset.path,
            **{k: v for k, v in job.inputs.facts.items() if k.startswith("dataset.")},
            "objectives": ",".join(space.search.objectives),
            "sampler": space.search.sampler,
            "seed": seed,
            "optuna_storage": redact(loc.storage),
            "device": job.device,
        },
    )
    # Each worker logs the teacher as timed on its machine, and names that machine (the last one stands:
    # report.html and pareto.csv set each front beside the teacher timed on the front's machine).
    tracker.log_metrics(parent, {f"teacher_{k}": v for k, v in job.reference.items()})
    tracker.set_tag(parent, "autodistill.teacher_latency_machine", job.machine)
    tracker.log_text(parent, loaded.text, f"space/{loaded.path.name}")
    tracker.log_text(parent, space.model_dump_json(indent=2, by_alias=True), "space/resolved.json")
