"""One distillation run, top to bottom. No Optuna, no MLflow: objects in, a result record out.

The teacher is not run here: its logits for the training examples were computed once and are passed in,
and so are its hidden states when the recipe weighs the hidden-state loss (``teacher_states``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from autodistill.data import Encoded
from autodistill.loss import distillation_loss, hidden_state_loss
from autodistill.teacher_states import TeacherStates


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


@dataclass
class HiddenMatch:
    """Which teacher layer each student layer is matched to, and where the teacher's states come from."""

    states: TeacherStates
    teacher_layers: list[int]  # one per student layer
    teacher_width: int


@dataclass
class TrainResult:
    losses: list[float] = field(default_factory=list)  # total loss per step
    seconds: float = 0.0


StepCallback = Callable[[int, float], None]


def distill(
    student: Any,
    train: Encoded,
    teacher_logits: torch.Tensor,
    recipe: DistillRecipe,
    device: str,
    on_step: StepCallback | None = None,
    hidden: HiddenMatch | None = None,
) -> TrainResult:
    """Train ``student`` for ``recipe.steps`` steps on the Hinton loss (plus the hidden-state loss).

    Args:
        student: a ``*ForSequenceClassification`` model, trained in place.
        train: tokenised training examples; batches are drawn from a seeded shuffle, epoch after epoch.
        teacher_logits: [len(train), classes], the teacher's logits for the same examples.
        recipe: budget, optimiser and loss settings.
        device: "cuda" or "cpu".
        on_step: called with (step, loss) after each step, e.g. to drive a progress bar.
        hidden: the layer matching and teacher states; needed when ``recipe.hidden_weight`` > 0.

    Raises:
        FloatingPointError: at the first non-finite loss, naming the step.
    """
    from transformers import get_linear_schedule_with_warmup

    if teacher_logits.shape[0] != len(train):
        raise ValueError(
            f"teacher logits for {teacher_logits.shape[0]} examples, but {len(train)} train examples"
        )
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
        outputs = student(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            output_hidden_states=use_hidden,
        )
        loss = distillation_loss(
            outputs.logits, teacher_logits[index].to(device), batch["labels"], recipe.lam, recipe.temperature
        ).total
        if hidden is not None:
            loss = loss + recipe.hidden_weight * hidden_state_loss(
                list(outputs.hidden_states[1:]),
                hidden.states.batch(index, hidden.teacher_layers, device),
                batch["attention_mask"],
                recipe.hidden_loss,
                projection,
            )
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite loss ({loss.item()}) at step {step}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        scheduler.step()
        result.losses.append(loss.item())
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
