"""One distillation run, top to bottom. No Optuna, no MLflow: objects in, a result record out.

The teacher is not run here: the task's training set carries its targets (computed once) with each
batch, and the task's loss step turns the student's outputs and the batch into loss parts. The
teacher's hidden states come in too when the recipe weighs the hidden-state loss (``HiddenMatch``) or
the attention-relation loss (``AttentionMatch``: the input of the teacher's last layer, from which that
layer's own projections recompute its queries, keys and values).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from autodistill.distill.loss import LossParts, attention_relation_loss, hidden_state_loss
from autodistill.distill.student import last_layer_projections

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
    attention_weight: float = 0.0  # weight of the attention-relation loss; 0 skips it


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
class AttentionMatch:
    """Where the teacher's last-layer queries, keys and values come from, and how they are compared.

    Only the input of the teacher's last layer is cached (like any hidden state); that layer's query, key
    and value projections recompute the rest per batch: three small matrix products instead of a cache
    three times the size, or a teacher forward pass per step.
    """

    states: HiddenStates
    input_layer: int  # the teacher layer whose output enters its last layer (-1: the embeddings)
    projections: list[Any]  # the teacher's last-layer [query, key, value] modules
    heads: int  # relation heads (``attention_relation_loss``)

    @torch.no_grad()
    def teacher_qkv(self, index: torch.Tensor, device: str) -> list[torch.Tensor]:
        (entering,) = self.states.batch(index, [self.input_layer], device)
        return [projection.to(device)(entering) for projection in self.projections]


@dataclass
class TrainResult:
    losses: list[float] = field(default_factory=list)  # total loss per step
    # per step, each part of the loss before weighting: hard (CE on labels), soft (T²·KL), hidden
    parts: dict[str, list[float]] = field(
        default_factory=lambda: {"hard": [], "soft": [], "hidden": [], "attention": []}
    )
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
    attention: AttentionMatch | None = None,
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
        attention: the teacher's last-layer projections; needed when ``recipe.attention_weight`` > 0.

    Raises:
        FloatingPointError: at the first non-finite loss, naming the step.
    """
    from transformers import get_linear_schedule_with_warmup

    generator = torch.Generator().manual_seed(recipe.seed)
    torch.manual_seed(recipe.seed)  # dropout
    if recipe.hidden_weight > 0 and hidden is None:
        raise ValueError("hidden_weight > 0 needs the teacher's hidden states (hidden=HiddenMatch(...))")
    if recipe.attention_weight > 0 and attention is None:
        raise ValueError(
            "attention_weight > 0 needs the teacher's last layer (attention=AttentionMatch(...))"
        )
    hidden = hidden if recipe.hidden_weight > 0 else None
    attention = attention if recipe.attention_weight > 0 else None
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
    student_qkv, hooks = _capture_projections(student) if attention else ({}, [])
    try:  # an early stop (TrialPruned from on_step) or a non-finite loss must not leave hooks behind
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
            attention_part = torch.zeros(())
            if attention is not None:
                attention_part = attention_relation_loss(
                    [student_qkv[role] for role in "qkv"],
                    attention.teacher_qkv(index, device),
                    batch["attention_mask"],
                    attention.heads,
                )
                loss = loss + recipe.attention_weight * attention_part
            if not torch.isfinite(loss):
                raise FloatingPointError(f"non-finite loss ({loss.item()}) at step {step}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(parameters, 1.0)
            optimizer.step()
            scheduler.step()
            result.losses.append(loss.item())
            named = (
                ("hard", parts.hard),
                ("soft", parts.soft),
                ("hidden", hidden_part),
                ("attention", attention_part),
            )
            for name, value in named:
                result.parts[name].append(float(value.detach()))
            if on_step:
                on_step(step, result.losses[-1])
    finally:
        for hook in hooks:
            hook.remove()
    result.seconds = time.perf_counter() - start
    student.eval()
    return result


def _capture_projections(student: Any) -> tuple[dict[str, torch.Tensor], list[Any]]:
    """Forward hooks that keep the latest outputs of the student's last-layer query, key and value
    projections (by role: q, k, v), and the hooks' handles to remove them after training."""
    captured: dict[str, torch.Tensor] = {}
    hooks = []
    for role, module in zip("qkv", last_layer_projections(student), strict=True):

        def keep(_module: Any, _inputs: Any, output: torch.Tensor, role: str = role) -> None:
            captured[role] = output

        hooks.append(module.register_forward_hook(keep))
    return captured, hooks


def _projection(student_width: int, teacher_width: int, device: str) -> torch.nn.Module | None:
    """A learned map from the student's width to the teacher's (TinyBERT's W_h); none when they match."""
    if student_width == teacher_width:
        return None
    return torch.nn.Linear(student_width, teacher_width, bias=False).to(device)
