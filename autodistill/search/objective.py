"""The function Optuna calls per trial, a thin objective in Optuna's own loop (ask → run → tell): it
samples settings, runs one trial through ``trial.run_trial`` and stores the same numbers on the Optuna
trial and its MLflow run. A trial that raises is recorded as failed with its reason; the study goes on.
A shape's latency is timed once per study (``shape_cost``): a later trial of the same shape reuses it and
says so, as the trial attribute ``latency_reused_from`` and its run's tag of the same name.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from autodistill.measure.machine import machine_name
from autodistill.search.early_stopping import EarlyStopping
from autodistill.search.preparation import Job
from autodistill.search.sampling import TrialSettings, sample
from autodistill.search.shape_cost import StudyLatencyMemo, shape_key
from autodistill.search.trial import InfeasibleShape, TrialRunner, run_trial
from autodistill.search.workers import this_worker
from autodistill.store.tracking import Tracker


def make_objective(
    job: Job, tracker: Tracker, students_dir: Path, run: TrialRunner | None = None
) -> Callable[[Any], tuple[float, ...]]:
    """The function Optuna calls per trial: sample → run → record in Optuna and MLflow → objectives.

    Each completed trial's student is saved under ``students_dir``; ``keep_front_students`` later
    deletes those that fall off the front, so export never retrains and the disk holds only the front.
    ``run`` runs the trial itself (default ``run_trial``, looked up when the trial runs; a benchmark
    passes a stand-in that does not train).
    """
    import optuna
    from tqdm.auto import tqdm

    space = job.space
    early = EarlyStopping(space, job.task.metric, job.task.direction)
    fixed = {f"train.{k}": v for k, v in space.train.model_dump().items()}
    fixed |= {f"latency.{k}": v for k, v in space.latency.model_dump().items()}
    fixed |= {
        "distill.hidden_loss": space.distill.hidden_loss,
        "student.layer_selection": space.student.layer_selection,
    }
    lat = space.latency
    machine = machine_name(lat.device)
    # Which runtime, how many threads and which machine produced the latency objective: figures differ
    # between them.
    latency_setup = {
        "machine": machine,
        "backend": lat.backend,
        "threads": lat.threads,
        "sequence_length": lat.sequence_length,
        "device": lat.device,
        "batch_size": lat.batch_size,
    }
    latency_setup_text = (
        f"{lat.backend} on {lat.device}, {lat.threads} thread(s), batch {lat.batch_size} × "
        f"{lat.sequence_length} tokens, on {machine}"
    )

    def latency_memo(trial: Any, run_id: str, settings: TrialSettings) -> StudyLatencyMemo:
        def reused_from(number: int) -> None:
            trial.set_user_attr("latency_reused_from", number)
            tracker.set_tag(run_id, "autodistill.latency_reused_from", str(number))

        key = shape_key(settings.arch, lat, job.teacher_config, machine)
        return StudyLatencyMemo(trial, key, settings.arch, reused_from)

    def objective(trial: Any) -> tuple[float, ...]:
        run_id = None
        try:
            settings = sample(trial, space, job.teacher_arch)
            trial.set_user_attr("settings", settings.as_params())
            trial.set_user_attr(
                "worker", this_worker(trial.study)
            )  # which process ran it: see search/workers.py
            run_id = tracker.start_trial(trial.number, {**settings.as_params(), **fixed})
            trial.set_user_attr("mlflow_run_id", run_id)
            trial.set_user_attr("latency_measured_with", latency_setup)
            tracker.set_tag(run_id, "autodistill.latency", latency_setup_text)
            tracker.set_tag(run_id, "autodistill.latency_machine", machine)
        except Exception as exc:  # e.g. a tracking server too busy to answer: the trial says why it failed
            reason = f"{type(exc).__name__}: {exc} (as the trial started)"
            with contextlib.suppress(Exception):  # the store that failed may fail these too
                trial.set_user_attr("fail_reason", reason)
                if run_id:
                    tracker.end_trial(run_id, "FAIL", reason)
            raise
        except BaseException:  # Ctrl-C while the trial starts (it is already running in the study)
            queue_again_after_interruption(trial, tracker, run_id)
            raise
        try:
            with tqdm(
                total=space.train.steps, desc=f"trial {trial.number}", leave=False, unit="step", disable=None
            ) as bar:

                def on_step(step: int, loss: float) -> None:
                    bar.update(1)
                    if step % 20 == 0:
                        bar.set_postfix(loss=f"{loss:.3f}")

                def on_checkpoint(step: int, quality: float, cost: dict[str, float]) -> None:
                    tracker.log_metrics(run_id, {f"checkpoint_{job.task.metric}": quality}, step=step)
                    reason = early.decide(trial, step, quality, cost)
                    if reason:  # the partial metrics stay on the trial and its run
                        trial.set_user_attr("metrics", cost)
                        tracker.log_metrics(run_id, cost)
                        raise optuna.TrialPruned(reason)

                memo = latency_memo(trial, run_id, settings)
                try:
                    outcome = (run or run_trial)(settings, job, on_step, on_checkpoint, early.steps, memo)
                except InfeasibleShape as exc:  # no training spent on a student that cannot be chosen
                    for key, value in space.search.constraint_values(exc.cost).items():
                        trial.set_constraint(key, value)
                    trial.set_user_attr("metrics", exc.cost)
                    tracker.log_metrics(run_id, exc.cost)
                    raise optuna.TrialPruned(str(exc)) from None
            start = time.perf_counter()
            student_dir = students_dir / f"trial-{trial.number}"
            outcome.student.save_pretrained(student_dir, safe_serialization=True)
            trial.set_user_attr("student_dir", str(student_dir.resolve()))
            for key, value in space.search.constraint_values(outcome.metrics).items():
                trial.set_constraint(key, value)
            trial.set_user_attr("metrics", outcome.metrics)
            trial.set_user_attr("timings", outcome.timings)
            tracker.log_curve(run_id, "train_loss", outcome.losses)
            for part, values in outcome.loss_parts.items():
                tracker.log_curve(run_id, f"train_loss_{part}", values)
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
            trial.set_user_attr("fail_reason", reason)
            tracker.end_trial(run_id, "FAIL", reason)
            raise
        except BaseException:  # Ctrl-C or SystemExit: close the run, queue the same parameters for resume
            queue_again_after_interruption(trial, tracker, run_id)
            raise
        return tuple(outcome.metrics[o] for o in space.search.objectives)  # finite: checked in run_trial

    def objective_then_release(trial: Any) -> tuple[float, ...]:
        try:
            return objective(trial)  # its student and batches are freed when it returns
        finally:
            release_accelerator_memory()  # after every trial, complete, pruned or failed

    return objective_then_release


def queue_again_after_interruption(trial: Any, tracker: Tracker, run_id: str | None) -> None:
    """A trial cut by Ctrl-C: marked, its parameters queued for the resumed study, its run closed."""
    trial.set_user_attr("interrupted", True)
    trial.study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
    if run_id is not None:
        tracker.end_trial(run_id, "FAIL", "interrupted")


def release_accelerator_memory() -> None:
    """Hand the GPU memory that torch's allocator keeps cached back to the driver, so that the next trial
    (after an out-of-memory error too) and the other workers sharing this GPU start clean. Nothing in a
    process that never used CUDA: the collection alone takes ~0.2 s."""
    import gc

    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        gc.collect()  # tensors held only by reference cycles (a model's hooks, a traceback) are freed first
        torch.cuda.empty_cache()
