"""One distillation run, top to bottom. No Optuna, no MLflow: objects in, a result record out.

The teacher is not run here: the task's training set carries its targets (computed once) with each
batch, and the task's loss step turns the student's outputs and the batch into loss parts. The
teacher's hidden states come in too when the recipe weighs the hidden-state loss (``HiddenMatch``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from autodistill.distill.loss import LossParts, hidden_state_loss

MODEL_INPUTS = ("input_ids", "attention_mask")  # what of a batch the student reads; the rest is targets


class TrainingSet(Protocol):
    """Examples with the teacher's targets, drawn in batches by index (a task provides one)."""

    def __len__(self) -> int: ...

    def batch(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        """``input_ids`` and ``attention_mask`` [batch, tokens], plus the targets the loss step reads."""
        ...


# (student outputs, batch on the device, λ, T) → the loss and its parts: the task's distillation loss.
LossStep = Callable[[Any, dict[str, torch.Tensor], float, float], LossParts]


@dataclass(frozen=True)
class DistillRecipe:
    steps: int
    batch_size: int
    learning_rate: float
    lam: float
    temperature: float
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    seed: int = 0
    hidden_weight: float = 0.0  # weight of the hidden-state loss; 0 skips it (and the teacher's states)
    hidden_loss: str = "cosine"


class HiddenStates(Protocol):
    """The teacher's hidden states for a batch (``teacher_states.TeacherStates``: cached or live)."""

    def batch(self, index: torch.Tensor, layers: list[int], device: str) -> list[torch.Tensor]: ...


@dataclass
class HiddenMatch:
    """Which teacher layer each student layer is matched to, and where the teacher's states come from."""

    states: HiddenStates
    teacher_layers: list[int]  # one per student layer
    teacher_width: int


@dataclass
class TrainResult:
    losses: list[float] = field(default_factory=list)  # total loss per step
    # per step, each part of the loss before weighting: hard (CE on labels), soft (T²·KL), hidden
    parts: dict[str, list[float]] = field(default_factory=lambda: {"hard": [], "soft": [], "hidden": []})
    seconds: float = 0.0


StepCallback = Callable[[int, float], None]


def distill(
    student: Any,
    train: TrainingSet,
    loss_step: LossStep,
    recipe: DistillRecipe,
    device: str,
    on_step: StepCallback | None = None,
    hidden: HiddenMatch | None = None,
) -> TrainResult:
    """Train ``student`` for ``recipe.steps`` steps on the task's distillation loss (plus the
    hidden-state loss).

    Args:
        student: a transformers model of the task's class, trained in place.
        train: the task's training set; batches are drawn from a seeded shuffle, epoch after epoch.
        loss_step: the task's loss on the student's outputs and a batch (Hinton's, for both tasks).
        recipe: budget, optimiser and loss settings.
        device: "cuda" or "cpu".
        on_step: called with (step, loss) after each step, e.g. to drive a progress bar.
        hidden: the layer matching and teacher states; needed when ``recipe.hidden_weight`` > 0.

    Raises:
        FloatingPointError: at the first non-finite loss, naming the step.
    """
    from transformers import get_linear_schedule_with_warmup

    generator = torch.Generator().manual_seed(recipe.seed)
    torch.manual_seed(recipe.seed)  # dropout
    if recipe.hidden_weight > 0 and hidden is None:
        raise ValueError("hidden_weight > 0 needs the teacher's hidden states (hidden=HiddenMatch(...))")
    hidden = hidden if recipe.hidden_weight > 0 else None
    use_hidden = hidden is not None
    student.to(device).train()
    projection = _projection(student.config.hidden_size, hidden.teacher_width, device) if hidden else None
    parameters = list(student.parameters()) + (list(projection.parameters()) if projection else [])
    optimizer = torch.optim.AdamW(parameters, lr=recipe.learning_rate, weight_decay=recipe.weight_decay)
    scheduler = get_linear_schedule_with_warmup(
        optimizer, int(recipe.warmup_ratio * recipe.steps), recipe.steps
    )
    result = TrainResult()
    start = time.perf_counter()
    order = torch.randperm(len(train), generator=generator)
    cursor = 0
    for step in range(1, recipe.steps + 1):
        if cursor + recipe.batch_size > len(order):  # next epoch, reshuffled
            order, cursor = torch.randperm(len(train), generator=generator), 0
        index = order[cursor : cursor + recipe.batch_size]
        cursor += recipe.batch_size
        batch = {k: v.to(device) for k, v in train.batch(index).items()}
        outputs = student(**{k: batch[k] for k in MODEL_INPUTS}, output_hidden_states=use_hidden)
        parts = loss_step(outputs, batch, recipe.lam, recipe.temperature)
        loss, hidden_part = parts.total, torch.zeros(())
        if hidden is not None:
            hidden_part = hidden_state_loss(
                list(outputs.hidden_states[1:]),
                hidden.states.batch(index, hidden.teacher_layers, device),
                batch["attention_mask"],
                recipe.hidden_loss,
                projection,
            )
            loss = loss + recipe.hidden_weight * hidden_part
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite loss ({loss.item()}) at step {step}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        scheduler.step()
        result.losses.append(loss.item())
        for name, value in (("hard", parts.hard), ("soft", parts.soft), ("hidden", hidden_part)):
            result.parts[name].append(float(value.detach()))
        if on_step:
            on_step(step, result.losses[-1])
    result.seconds = time.perf_counter() - start
    student.eval()
    return result


def _projection(student_width: int, teacher_width: int, device: str) -> torch.nn.Module | None:
    """A learned map from the student's width to the teacher's (TinyBERT's W_h); none when they match."""
    if student_width == teacher_width:
        return None
    return torch.nn.Linear(student_width, teacher_width, bias=False).to(device)
