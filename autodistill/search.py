"""The search controller: an Optuna study on persistent storage, a thin objective, MLflow runs.

The objective follows Optuna's own loop (ask → run → tell): it samples settings, runs one trial through
``trial.run_trial`` and stores the same numbers on the Optuna trial and its MLflow run. A trial that
raises is recorded as failed with its reason, and the study goes on.
"""

from __future__ import annotations

import os
import re
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autodistill.callbacks import (
    FrontTags,
    StopAtTotal,
    close_dead_runs,
    finished_trials,
    keep_front_students,
    progress_line,
)
from autodistill.config import METRIC_DIRECTIONS, SpaceConfig
from autodistill.job import Job
from autodistill.locations import Locations, redact
from autodistill.space import sample
from autodistill.spacefile import LoadedSpace
from autodistill.tracking import retry


class SearchError(Exception):
    """A study that cannot be opened as asked (e.g. resumed with other objectives)."""


def make_sampler(name: str, seed: int) -> Any:
    """The study's sampler. TPE by default: it handles several objectives and few trials well."""
    import optuna

    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=10)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=8)
    # group=True models conditional parameters jointly: width is not asked of teacher-layers students.
    with warnings.catch_warnings():  # group is marked experimental, and has been since v2.8
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, n_startup_trials=8)


def open_study(loc: Locations, space: SpaceConfig, seed: int) -> Any:
    """Create the study, or load it when it exists (resume); its objectives must not have changed."""
    import optuna
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    objectives = list(space.search.objectives)
    directions = [METRIC_DIRECTIONS[o] for o in objectives]
    if loc.storage.startswith("sqlite:///"):
        loc.out.mkdir(parents=True, exist_ok=True)

    def create() -> Any:
        storage: Any = loc.storage
        if re.match(r"^(sqlite|postgresql|mysql)", loc.storage):
            # The heartbeat lets any later run (or another worker) see that a trial's process died:
            # the trial is marked failed, and its parameters are queued once more.
            beat = space.search.heartbeat_seconds
            storage = RDBStorage(
                loc.storage,
                heartbeat_interval=beat,
                grace_period=2 * beat,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1),
            )
        return optuna.create_study(
            storage=storage,
            study_name=loc.study_name,
            directions=directions,
            load_if_exists=True,
            sampler=make_sampler(space.search.sampler, seed),
        )

    study = retry(create)  # workers starting together race to create the storage's tables
    stored = study.user_attrs.get("objectives")
    if stored is not None and stored != objectives:
        raise SearchError(
            f"--study {loc.study_name}: it was created with objectives {stored}, not {objectives}; "
            "use another --study name or --out directory"
        )
    # Trials on one front must be comparable: same teacher, data, student space, recipe, measurement.
    recipe = comparable_fingerprint(space)
    stored_recipe = study.user_attrs.get("recipe_fingerprint")
    if stored_recipe is not None and stored_recipe != recipe:
        raise SearchError(
            f"--study {loc.study_name}: it was run with another teacher, dataset, student space, training or "
            "latency settings; their trials would not be comparable: use another --study name or --out directory"
        )
    study.set_user_attr("objectives", objectives)
    study.set_user_attr("recipe_fingerprint", recipe)
    # A resumed study reseeds its sampler by its length, so it does not replay its first proposals.
    # Workers on a shared database also salt it by process, so workers that start together explore
    # different points; a sequential run on the default local storage repeats exactly.
    salt = 0 if loc.storage_is_local else os.getpid() * 7919
    if study.trials or salt:
        study.sampler = make_sampler(space.search.sampler, (seed + len(study.trials) + salt) % 2**32)
    return study


def comparable_fingerprint(space: SpaceConfig) -> str:
    """What makes two trials comparable: everything but the sampler/stopping choices and the seed."""
    import hashlib
    import json

    parts = space.model_dump(
        mode="json", exclude={"search": {"sampler", "heartbeat_seconds", "constraints", "early_stopping"}}
    )
    parts["train"].pop("seed", None)
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def make_objective(job: Job, tracker: Any, students_dir: Path) -> Callable[[Any], tuple[float, ...]]:
    """The function Optuna calls per trial: sample → run → record in Optuna and MLflow → objectives.

    Each completed trial's student is saved under ``students_dir``; ``keep_front_students`` later
    deletes those that fall off the front, so export never retrains and the disk holds only the front.
    """
    import optuna
    from tqdm.auto import tqdm

    from autodistill.early_stopping import EarlyStopping
    from autodistill.trial import run_trial

    space = job.space
    early = EarlyStopping(space)
    fixed = {f"train.{k}": v for k, v in space.train.model_dump().items()}
    fixed |= {f"latency.{k}": v for k, v in space.latency.model_dump().items()}
    fixed |= {
        "distill.hidden_loss": space.distill.hidden_loss,
        "student.layer_selection": space.student.layer_selection,
    }
    lat = space.latency
    # Which runtime and how many threads produced the latency objective: figures differ between them.
    latency_setup = {"backend": lat.backend, "threads": lat.threads, "sequence_length": lat.sequence_length}
    latency_setup_text = f"{lat.backend}, {lat.threads} thread(s), batch 1 × {lat.sequence_length} tokens"

    def objective(trial: Any) -> tuple[float, ...]:
        settings = sample(trial, space, job.teacher_arch)
        trial.set_user_attr("settings", settings.as_params())
        run_id = tracker.start_trial(trial.number, {**settings.as_params(), **fixed})
        trial.set_user_attr("mlflow_run_id", run_id)
        trial.set_user_attr("latency_measured_with", latency_setup)
        tracker.set_tag(run_id, "autodistill.latency", latency_setup_text)
        try:
            with tqdm(
                total=space.train.steps, desc=f"trial {trial.number}", leave=False, unit="step", disable=None
            ) as bar:

                def on_step(step: int, loss: float) -> None:
                    bar.update(1)
                    if step % 20 == 0:
                        bar.set_postfix(loss=f"{loss:.3f}")

                def on_checkpoint(step: int, accuracy: float, cost: dict[str, float]) -> None:
                    tracker.log_metrics(run_id, {"checkpoint_accuracy": accuracy}, step=step)
                    reason = early.decide(trial, step, accuracy, cost)
                    if reason:  # the partial metrics stay on the trial and its run
                        trial.set_user_attr("metrics", cost)
                        tracker.log_metrics(run_id, cost)
                        raise optuna.TrialPruned(reason)

                outcome = run_trial(settings, job, on_step, on_checkpoint, early.steps)
            start = time.perf_counter()
            student_dir = students_dir / f"trial-{trial.number}"
            outcome.student.save_pretrained(student_dir, safe_serialization=True)
            trial.set_user_attr("student_dir", str(student_dir.resolve()))
            for key, value in space.search.constraint_values(outcome.metrics).items():
                trial.set_constraint(key, value)
            trial.set_user_attr("metrics", outcome.metrics)
            trial.set_user_attr("timings", outcome.timings)
            tracker.log_curve(run_id, "train_loss", outcome.losses)
            tracker.log_metrics(
                run_id, outcome.metrics | {f"seconds_{k}": v for k, v in outcome.timings.items()}
            )
            tracker.end_trial(run_id, "COMPLETE")
            trial.set_user_attr("seconds_logging", time.perf_counter() - start)
        except optuna.TrialPruned as exc:  # stopped early: recorded as pruned, with the reason
            trial.set_user_attr("prune_reason", str(exc))
            tracker.end_trial(run_id, "PRUNED", str(exc))
            raise
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            release_accelerator_memory()  # after an out-of-memory error the next trial starts clean
            trial.set_user_attr("fail_reason", reason)
            tracker.end_trial(run_id, "FAIL", reason)
            raise
        except BaseException:  # Ctrl-C or SystemExit: close the run, queue the same parameters for resume
            trial.set_user_attr("interrupted", True)
            trial.study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
            tracker.end_trial(run_id, "FAIL", "interrupted")
            raise
        return tuple(outcome.metrics[o] for o in space.search.objectives)  # finite: checked in run_trial

    return objective


def release_accelerator_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


@dataclass
class SearchResult:
    study: Any
    front: Any  # pandas.DataFrame from pareto.front_frame
    reference: dict[str, float]
    csv_path: Path


def run_search(
    loaded: LoadedSpace,
    inputs: Any,
    loc: Locations,
    trials: int,
    timeout: float | None,
    seed: int,
    log: Callable[[str], None],
) -> SearchResult:
    """Run (or resume) the study until it has ``trials`` finished trials in total, then report its front."""
    from optuna.trial import TrialState

    from autodistill.job import prepare_job
    from autodistill.pareto import front_frame
    from autodistill.report import write_csv
    from autodistill.report_html import write_html_report
    from autodistill.tracking import Tracker

    space = loaded.config
    study = open_study(loc, space, seed)
    tracker = Tracker(loc.tracking_uri, loc.study_name, loc.artifact_root)
    parent = tracker.start_study({"teacher": str(space.teacher), "dataset": str(space.dataset.path)})
    _record_study(study, loaded, loc, parent)
    front_tags = FrontTags(tracker)
    try:
        job = prepare_job(space, inputs, loc.cache_dir, log)
        study.set_user_attr("teacher_reference", job.reference)
        _log_study_inputs(tracker, parent, loaded, loc, job, seed)
        _optimize(study, job, tracker, loc, trials, timeout, log, [front_tags])
        front_tags(study)
        front = front_frame(study)
        csv_path = write_csv(front, loc.out / "pareto.csv")
        tracker.log_artifact(parent, csv_path)
        html_path = write_html_report(study, job.reference, loc.out / "report.html")
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
        log("no trial completed: every trial failed; see the reasons above or in MLflow (tag fail_reason)")
    elif front.empty:
        log("no trial met the constraints, so the front is empty; see search.constraints")
    return SearchResult(study=study, front=front, reference=job.reference, csv_path=csv_path)


def _end_parent(study: Any, tracker: Any, status: str) -> None:
    """End the study's parent run, unless another worker is still running trials of this study."""
    from optuna.trial import TrialState

    if not study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        tracker.end_study(status)


def _optimize(
    study: Any,
    job: Job,
    tracker: Any,
    loc: Locations,
    trials: int,
    timeout: float | None,
    log: Callable[[str], None],
    callbacks: list[Any],
) -> None:
    from optuna.storages import fail_stale_trials

    fail_stale_trials(study)  # a trial whose process died is failed now and its parameters queued again
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
        log(progress_line(trial, finished_trials(study), trials))
        keep_front_students(study)
        close_dead_runs(study, tracker)  # another worker's dead trial may have been failed meanwhile

    study.optimize(
        make_objective(job, tracker, loc.out / "students"),
        n_trials=remaining,
        timeout=timeout,
        catch=(Exception,),
        callbacks=[report_trial, *callbacks, StopAtTotal(trials)],
    )
    fail_stale_trials(study)  # a dead trial whose grace period ended while this run worked
    close_dead_runs(study, tracker)


def _record_study(study: Any, loaded: LoadedSpace, loc: Locations, parent_run_id: str) -> None:
    """What later commands (report, export, train) need to find this study's pieces again."""
    study.set_user_attr("mlflow_parent_run_id", parent_run_id)
    study.set_user_attr("space", loaded.config.model_dump(mode="json", by_alias=True))
    study.set_user_attr("space_file", str(loaded.path))
    study.set_user_attr("out", str(loc.out.resolve()))
    # A URL with a password is not stored: later commands then ask for --tracking-uri.
    study.set_user_attr(
        "tracking_uri", loc.tracking_uri if redact(loc.tracking_uri) == loc.tracking_uri else None
    )


def _log_study_inputs(
    tracker: Any, parent: str, loaded: LoadedSpace, loc: Locations, job: Job, seed: int
) -> None:
    space = loaded.config
    tracker.log_params(
        parent,
        {
            "teacher": space.teacher,
            "dataset": space.dataset.path,
            "dataset.text_column": job.data.text_column,
            "dataset.label_column": job.data.label_column,
            "dataset.validation": job.data.validation_source,
            "dataset.train_examples": len(job.train),
            "dataset.validation_examples": len(job.validation),
            "objectives": ",".join(space.search.objectives),
            "sampler": space.search.sampler,
            "seed": seed,
            "optuna_storage": redact(loc.storage),
            "device": job.device,
        },
    )
    tracker.log_metrics(parent, {f"teacher_{k}": v for k, v in job.reference.items()})
    tracker.log_text(parent, loaded.text, f"space/{loaded.path.name}")
    tracker.log_text(parent, space.model_dump_json(indent=2, by_alias=True), "space/resolved.json")
