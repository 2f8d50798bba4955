"""One trial, end to end: build the student, initialise it, measure its cost, distil it, measure its
accuracy. No Optuna, no MLflow here.

Size and latency depend on the shape, not on the weights, so they are measured before training: an
early-stopping rule can then compare the accuracy at a checkpoint with cheaper trials' (see
``early_stopping``). A shape's latency is timed once per study: the caller may pass what an earlier
trial of the same shape measured (``shape_cost.LatencyMemo``), and every use, checkpoints included,
reports those figures.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from autodistill.config.schema import SpaceConfig
from autodistill.distill.loop import (
    AttentionMatch,
    DistillRecipe,
    HiddenMatch,
    StepCallback,
    distill,
    projections_on,
)
from autodistill.distill.student import (
    build_student,
    check_teacher_init,
    init_from_teacher,
    last_layer_projections,
    select_layers,
)
from autodistill.search.preparation import Job
from autodistill.search.sampling import TrialSettings
from autodistill.search.shape_cost import LatencyMemo, latency_out_of_bounds, shape_cost

# Called at each checkpoint with (step, quality so far, the cost metrics); raising stops the trial.
CheckpointCallback = Callable[[int, float, dict[str, float]], None]


class InfeasibleShape(Exception):
    """The student's shape breaks a constraint on size or latency: it could never be chosen, so it is not
    trained. Carries the cost figures measured."""

    def __init__(self, cost: dict[str, float], broken: list[str]):
        super().__init__(f"infeasible before training: {'; '.join(broken)}")
        self.cost = cost


@dataclass
class TrialOutcome:
    metrics: dict[str, float]  # the objective and reference metrics, MLflow and Optuna hold these
    losses: list[float]  # training loss per step
    loss_parts: dict[str, list[float]]  # per step: hard, soft and hidden parts of the loss
    timings: dict[str, float]  # seconds per phase
    student: Any


# What the objective calls to run one trial: ``run_trial``, or a stand-in (``benchmarks/scale.py`` times
# the objective's Optuna and MLflow plumbing with one that sleeps instead of training).
TrialRunner = Callable[
    [TrialSettings, Job, StepCallback | None, CheckpointCallback | None, Iterable[int], LatencyMemo | None],
    TrialOutcome,
]


def recipe_for(settings: TrialSettings, space: SpaceConfig) -> DistillRecipe:
    t = space.train
    return DistillRecipe(
        steps=t.steps,
        batch_size=t.batch_size,
        learning_rate=settings.learning_rate,
        lam=settings.lam,
        temperature=settings.temperature,
        warmup_ratio=t.warmup_ratio,
        weight_decay=t.weight_decay,
        seed=t.seed,
        hidden_weight=settings.hidden_weight,
        hidden_loss=space.distill.hidden_loss,
        attention_weight=settings.attention_weight,
        log_every=t.log_every,
    )


def run_trial(
    settings: TrialSettings,
    job: Job,
    on_step: StepCallback | None = None,
    on_checkpoint: CheckpointCallback | None = None,
    checkpoint_steps: Iterable[int] = (),
    latency_memo: LatencyMemo | None = None,
) -> TrialOutcome:
    """Build the student of ``settings`` (random or from the teacher's weights), measure its cost, distil
    it for the job's budget against the cached teacher outputs, and measure its quality (the task's metric).

    A shape that breaks a constraint on its size or latency raises ``InfeasibleShape`` before training.
    At each of ``checkpoint_steps`` the quality so far is measured and passed to ``on_checkpoint``,
    which may raise to stop the trial (early stopping). ``latency_memo`` supplies (and keeps) the
    shape's latency figures, so a shape timed before is not timed again.
    """
    space, task = job.space, job.task
    start = time.perf_counter()
    student = build_student(job.teacher_config, settings.arch, space.train.seed, task.auto_class())
    layers: list[int] = []  # the teacher layers this student starts from and/or is matched to
    if settings.init != "random" or settings.hidden_weight > 0:
        layers = select_layers(job.teacher_arch.depth, settings.arch.depth, space.student.layer_selection)
    if settings.init != "random":
        check_teacher_init(job.teacher_arch, settings.arch, settings.init)
        init_from_teacher(student, job.teacher.state_dict(), job.teacher_arch, settings.arch, layers)
    build_seconds = time.perf_counter() - start
    cost, timings = shape_cost(
        student,
        space.latency,
        latency_memo,
        task.measure_latency,
        latency_out_of_bounds(space.search),
        job.teacher if space.search.times_beside_teacher() else None,
    )
    broken = space.search.cost_violations(cost)
    if broken:
        raise InfeasibleShape(cost, broken)
    checkpoints = set(checkpoint_steps)
    checkpoint_seconds = 0.0

    def step_and_check(step: int, loss: float) -> None:
        nonlocal checkpoint_seconds
        if on_step:
            on_step(step, loss)
        if on_checkpoint and step in checkpoints:
            begin = time.perf_counter()
            quality = task.evaluate(student, job.data.validation, space.train.eval_batch_size, job.device)
            student.train()  # evaluate() switched to eval mode; training goes on with dropout
            checkpoint_seconds += time.perf_counter() - begin
            on_checkpoint(step, quality, cost)

    hidden = None
    if settings.hidden_weight > 0:
        assert job.teacher_states is not None  # prepared whenever the space can weigh the hidden loss
        hidden = HiddenMatch(job.teacher_states, layers, job.teacher_arch.width)
    attention = None
    if settings.attention_weight > 0:
        assert job.teacher_states is not None  # prepared whenever the space can weigh the relation loss
        attention = AttentionMatch(
            job.teacher_states,
            job.teacher_arch.depth - 2,  # the output of the layer before the last enters the last
            # copies on the training device: the teacher itself stays on the CPU (``prepare_job``)
            projections_on(last_layer_projections(job.teacher), job.device),
            space.distill.relation_heads,
        )
    result = distill(
        student,
        job.data.train,
        task.loss,
        recipe_for(settings, space),
        job.device,
        step_and_check,
        hidden,
        attention,
        checkpoints,  # the losses reach the host before a checkpoint: a non-finite one fails the trial first
        task.forward,
    )
    start = time.perf_counter()
    quality = task.evaluate(student, job.data.validation, space.train.eval_batch_size, job.device)
    metrics = {task.metric: quality, **cost}
    timings["eval"] = time.perf_counter() - start
    bad = [k for k, v in metrics.items() if not math.isfinite(v)]
    if bad:  # Optuna would fail such a trial after MLflow had it complete: fail it here, in both
        raise FloatingPointError(f"non-finite {', '.join(bad)} after training")
    return TrialOutcome(
        metrics=metrics,
        losses=result.losses,
        loss_parts=result.parts,
        timings={
            "build": build_seconds,
            "train": result.seconds - checkpoint_seconds,
            "checkpoints": checkpoint_seconds,
            **timings,
        },
        student=student,
    )
