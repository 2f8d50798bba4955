"""``autodistill train TRIAL``: the chosen student's recipe again, at full length, then export and register;
``autodistill train --best N``: the same for N front students, registering the best on validation.

Same architecture, init seed, λ, T and learning rate as the trial; more steps and all training
examples (the teacher's logits on them are cached like a search's, keyed by content, so candidates
after the first reuse them). Each run is logged in the study's MLflow experiment under its parent run,
and the exported model is registered in the Model Registry. ``--best N`` saves each candidate when its
training ends and reuses it when run again (see ``candidates``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autodistill.config.schema import Dist, SpaceConfig
from autodistill.deliver.candidates import (
    Candidate,
    candidate_dir,
    candidate_key,
    candidate_student,
    save_candidate,
    saved_candidate,
)
from autodistill.deliver.choosing import best_after_training
from autodistill.deliver.export import card_facts, study_space, study_task, write_export
from autodistill.search.inputs import inspect_inputs
from autodistill.search.preparation import prepare_job
from autodistill.search.sampling import TrialSettings
from autodistill.search.test_scores import score_on_test
from autodistill.search.trial import run_trial
from autodistill.store.studies import study_cache_dir, study_dir
from autodistill.store.tracking import CHOICE_TAG, Tracker
from autodistill.tasks.base import TaskInputs

ALL_EXAMPLES = 10**12


@dataclass(frozen=True)
class TrainingLength:
    """How long a full-length run trains: ``steps``, or ``epochs`` (default 1) over its training set (the
    labelled examples and, when the space has one, the transfer set); ``examples`` caps the labelled
    examples at a seeded subset of that many (the transfer set is built from those)."""

    steps: int | None = None
    epochs: float | None = None
    examples: int | None = None

    def labelled_examples(self, batch_size: int, total: int) -> int:
        """How many labelled examples the run reads: a run of N steps sees at most N × batch of them,
        so the teacher labels only those (its targets are the costly part for a large teacher)."""
        cap = min(self.steps * batch_size, total) if self.steps else total
        return min(cap, self.examples or total)

    def steps_for(self, batch_size: int, train_examples: int) -> int:
        return self.steps or math.ceil((self.epochs or 1.0) * train_examples / batch_size)


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


def full_length_space(study: Any, length: TrainingLength, train_examples: int) -> SpaceConfig:
    """The study's space for a full-length run on ``length``'s share of ``train_examples`` labelled
    examples (a seeded subset as in the search). Its steps count the labelled examples alone; a run with
    a transfer set sets them again once it knows the set's size (``with_steps_for``)."""
    space = study_space(study)
    batch = space.train.batch_size
    used = length.labelled_examples(batch, train_examples)
    return space.model_copy(
        update={
            # The trial was judged within search.constraints when the search measured it, and
            # train --best bounds its candidates on those figures. Measuring its latency again and
            # refusing it on this run's figure would let noise (5-30% here) undo a choice already made.
            "search": space.search.model_copy(update={"constraints": {}}),
            "train": space.train.model_copy(update={"steps": length.steps_for(batch, used)}),
            "dataset": space.dataset.model_copy(
                update={"max_train_examples": used if used < train_examples else ALL_EXAMPLES}
            ),
        }
    )


def with_steps_for(job: Any, length: TrainingLength) -> None:
    """Epochs count every example the run trains on, the transfer set's included."""
    space = job.space
    steps = length.steps_for(space.train.batch_size, len(job.data.train))
    job.space = space.model_copy(update={"train": space.train.model_copy(update={"steps": steps})})


@dataclass
class BestResult:
    candidates: list[Candidate]  # best validation before training first
    chosen: int  # index of the registered one: best validation after training
    direction: str
    export: dict[str, Any]
    model_name: str
    model_version: str


def study_tracker(study: Any, tracking_uri: str) -> Tracker:
    out = Path(study.user_attrs.get("out") or ".")
    tracker = Tracker(tracking_uri, study.study_name, (out / "mlartifacts").resolve().as_uri())
    tracker.parent_run_id = study.user_attrs.get("mlflow_parent_run_id", "")
    return tracker


def inputs_for(space: SpaceConfig, cache_dir: Path | None = None) -> TaskInputs:
    inputs, problems = inspect_inputs(space, cache_dir)
    if inputs is None:
        raise ValueError("; ".join(problems))
    return inputs


def trial_space(
    study: Any,
    settings: TrialSettings,
    length: TrainingLength,
    depths: list[int] | None = None,
    cache_dir: Path | None = None,
) -> tuple[SpaceConfig, TaskInputs, int]:
    """The full-length space for one trial's student, the inputs it reads, and how many training
    examples there are in all. ``depths``: the depths of every student trained on the same examples
    (``train --best``), default this one's alone; ``cache_dir``: the study's, whose tokens are reused."""
    everything = inputs_for(
        full_length_space(study, TrainingLength(epochs=1.0), 1), cache_dir
    )  # count them all
    total = everything.train_examples
    space = full_length_space(study, length, total)
    # The teacher's hidden states are needed for the layers of the students trained here alone. Asking
    # for all their depths at once makes one cache that every candidate reads: one teacher pass, not one
    # per candidate (a pass over 20,000 examples costs the MiniLM teacher about 1.5 minutes on 2 cores).
    wanted = sorted(set(depths or []) | {settings.arch.depth})
    depth: int | Dist = wanted[0] if len(wanted) == 1 else Dist(type="categorical", choices=wanted)
    space = space.model_copy(
        update={
            "student": space.student.model_copy(update={"depth": depth}),
            "distill": space.distill.model_copy(
                update={
                    "hidden_weight": settings.hidden_weight,
                    "attention_weight": settings.attention_weight,
                }
            ),
        }
    )
    # Fewer steps than examples: read the seeded subset the run can see, so the teacher labels only those.
    capped = (space.dataset.max_train_examples or total) < total
    return space, inputs_for(space, cache_dir) if capped else everything, total


def train_candidate(
    study: Any,
    trial: Any,
    length: TrainingLength,
    tracker: Tracker,
    cache_dir: Path | None,
    log: Callable[[str], None],
    on_step: Callable[[int, float], None] | None = None,
    depths: list[int] | None = None,
) -> Candidate:
    """Train ``trial``'s recipe at full length, score it on test, and log it in a run left open.
    ``depths``: those of all the students trained alongside (see ``trial_space``)."""
    out = Path(study.user_attrs.get("out") or ".")
    settings = TrialSettings.from_params(trial.user_attrs["settings"])
    cache = study_cache_dir(study, cache_dir, out / "cache")
    space, inputs, total = trial_space(study, settings, length, depths, cache)
    job = prepare_job(space, inputs, cache, log, full_length=True)
    with_steps_for(job, length)
    space = job.space
    transfer = len(job.data.train) - inputs.train_examples
    log(
        f"train: trial {trial.number} at full length: {space.train.steps} steps on "
        f"{inputs.train_examples} of {total} labelled examples"
        + (f" and {transfer} of the transfer set" if transfer else "")
    )
    outcome = run_trial(settings, job, on_step)
    outcome.metrics.update(score_on_test(job, outcome.student))  # the honest figure: nothing chose on it
    metric = study_task(study).metric
    before = float(trial.user_attrs["metrics"][metric])
    run_id = tracker.start_full_training(trial.number)
    try:
        params = {"train.steps": space.train.steps, "source_trial": trial.number}
        tracker.log_params(run_id, {**settings.as_params(), **params, "train_examples": len(job.data.train)})
        tracker.log_curve(run_id, "train_loss", outcome.losses)
        for part, values in outcome.loss_parts.items():
            tracker.log_curve(run_id, f"train_loss_{part}", values)
        tracker.log_metrics(run_id, {**outcome.metrics, f"{metric}_before": before})
    except BaseException:
        tracker.end_run(run_id, "FAILED")
        raise
    return Candidate(trial, space, settings, outcome, metric, before, run_id, len(job.data.validation))


def deliver(
    study: Any, candidate: Candidate, tracker: Tracker, to: Path, model_name: str
) -> tuple[dict[str, Any], str]:
    """Export the candidate's student to ``to``, register it, and end its run; returns what was
    exported and the registered version. The run never stays RUNNING: an export or registry error
    ends it as FAILED."""
    from transformers import AutoTokenizer

    trial, space, run_id = candidate.trial, candidate.space, candidate.run_id
    try:
        facts = card_facts(study, trial.number, space, run_id)
        metrics = candidate.outcome.metrics
        card = study_task(study).model_card(
            f"autodistill student: study {study.study_name}, trial {trial.number}, full length",
            candidate.settings.as_params(),
            metrics,
            facts,
        )
        tokenizer = AutoTokenizer.from_pretrained(str(space.teacher))
        exported = write_export(
            candidate_student(candidate, study_task(study)),
            tokenizer,
            to,
            card,
            {**facts, "metrics": metrics},
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
    return exported, version


def train_full_length(
    study: Any,
    trial: Any,
    length: TrainingLength,
    to: Path,
    model_name: str,
    tracking_uri: str,
    cache_dir: Path | None,
    log: Callable[[str], None],
    on_step: Callable[[int, float], None] | None = None,
) -> FullLengthResult:
    """``cache_dir``: ``--cache-dir``, else the study's own cache directory (shared by its workers)."""
    tracker = study_tracker(study, tracking_uri)
    candidate = train_candidate(study, trial, length, tracker, cache_dir, log, on_step)
    exported, version = deliver(study, candidate, tracker, to, model_name)
    return FullLengthResult(
        metric=candidate.metric,
        before=candidate.before,
        after=candidate.after,
        test_after=candidate.test_after,
        steps=candidate.space.train.steps,
        export=exported,
        run_id=candidate.run_id,
        model_name=model_name,
        model_version=version,
    )


def candidates_dir(study: Any, out: str | None = None) -> Path:
    """Where ``train --best`` saves its candidates: ``candidates/`` in the study's directory."""
    return study_dir(study, out) / "candidates"


def keep_as_candidate(tracker: Tracker, candidate: Candidate) -> None:
    """A trained, logged candidate that is not registered: its run is kept, tagged, and finished."""
    tracker.set_tag(candidate.run_id, CHOICE_TAG, "candidate")
    tracker.end_run(candidate.run_id, "FINISHED")


def train_candidates(
    study: Any,
    trials: list[Any],
    length: TrainingLength,
    tracker: Tracker,
    cache_dir: Path | None,
    log: Callable[[str], None],
    on_step: Callable[[int, float], None] | None = None,
    saved_in: Path | None = None,
) -> list[Candidate]:
    """Each trial at full length, in order, each saved in ``saved_in`` as soon as it is trained; one
    saved there by an earlier run of the same command, with the same settings, is reused instead of
    trained again. When one fails or is interrupted, those already trained keep their runs (and their
    saved students), so the next run resumes at it."""
    done: list[Candidate] = []
    depths = [TrialSettings.from_params(trial.user_attrs["settings"]).arch.depth for trial in trials]
    try:
        for i, trial in enumerate(trials, 1):
            place = f"candidate {i} of {len(trials)}: trial {trial.number}"
            key = candidate_key(study, trial, length)
            candidate = reusable(saved_in, trial, key, tracker, place, log) if saved_in else None
            if candidate is None:
                log(f"{place}, training")
                candidate = train_candidate(study, trial, length, tracker, cache_dir, log, on_step, depths)
                if saved_in:
                    save_candidate(saved_in, candidate, key)
                    log(f"{place}, saved in {candidate.saved} (a rerun of this command reuses it)")
            done.append(candidate)
    except BaseException:
        for candidate in done:
            keep_as_candidate(tracker, candidate)
        raise
    return done


def reusable(
    saved_in: Path, trial: Any, key: str, tracker: Tracker, place: str, log: Callable[[str], None]
) -> Candidate | None:
    """The candidate an earlier run saved for ``trial``, when it can stand for training it again."""
    candidate, why_not = saved_candidate(saved_in, trial, key, tracker.has_run)
    if candidate is not None:
        log(f"{place}, already trained ({candidate.describe()}), reused")
    elif why_not:
        saved = candidate_dir(saved_in, trial.number)
        log(f"{place}: not reusing the one saved in {saved} ({why_not}); training it again")
    return candidate


def train_best(
    study: Any,
    trials: list[Any],
    length: TrainingLength,
    destination: Callable[[int], Path],
    model_name: str,
    tracking_uri: str,
    cache_dir: Path | None,
    log: Callable[[str], None],
    on_step: Callable[[int, float], None] | None = None,
    saved_in: Path | None = None,
) -> BestResult:
    """Train every trial of ``trials`` at full length and register only the best on validation after
    training; the others' runs are kept, tagged as candidates. ``destination(n)``: where trial n's
    student is exported. ``saved_in`` (default ``OUT/candidates``): where each candidate is saved when
    trained, and looked for first, so that an interrupted run resumes at the next candidate.

    The test score is reported for each candidate but never chosen on: picking the best of N on test
    would make the registered student's test figure optimistic."""
    tracker = study_tracker(study, tracking_uri)
    saved_in = saved_in or candidates_dir(study)
    candidates = train_candidates(study, trials, length, tracker, cache_dir, log, on_step, saved_in)
    direction = study_task(study).direction
    chosen = best_after_training([c.after for c in candidates], direction)
    for i, candidate in enumerate(candidates):
        if i != chosen:
            keep_as_candidate(tracker, candidate)
    best = candidates[chosen]
    tracker.set_tag(best.run_id, CHOICE_TAG, "registered")
    exported, version = deliver(study, best, tracker, destination(best.trial.number), model_name)
    return BestResult(candidates, chosen, direction, exported, model_name, version)
