"""One distillation run, top to bottom. No Optuna, no MLflow: objects in, a result record out.

The teacher is not run here: the task's training set carries its targets (computed once) with each
batch, and the task's loss step turns the student's outputs and the batch into loss parts. The
teacher's hidden states come in too when the recipe weighs the hidden-state loss (``HiddenMatch``) or
the attention-relation loss (``AttentionMatch``: the input of the teacher's last layer, from which that
layer's own projections recompute its queries, keys and values).

On a GPU the loop never waits for it within a step: the losses stay on the device and are copied to
the host together every ``log_every`` steps (a copy waits for every kernel queued before it), batches
go through pinned memory without blocking, and the student's forward pass runs under bfloat16
``autocast`` where the job enables it; the losses are computed in float32, outside it.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from autodistill.distill.loss import LossParts, attention_relation_loss, hidden_state_loss
from autodistill.distill.student import last_layer_projections
from autodistill.util.devices import autocast, is_cuda, to_device

MODEL_INPUTS = ("input_ids", "attention_mask")  # what of a batch the student reads; the rest is targets


class TrainingSet(Protocol):
    """Examples with the teacher's targets, drawn in batches by index (a task provides one)."""

    def __len__(self) -> int: ...

    def batch(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        """``input_ids`` and ``attention_mask`` [batch, tokens], plus the targets the loss step reads."""
        ...


# (student outputs, batch on the device, λ, T) → the loss and its parts: the task's distillation loss.
LossStep = Callable[[Any, dict[str, torch.Tensor], float, float], LossParts]
# (student, batch on the device, output_hidden_states) → the outputs the loss step reads: the task's
# forward pass (a causal LM's leaves out its output layer, which its loss applies in chunks).
Forward = Callable[[Any, dict[str, torch.Tensor], bool], Any]


def plain_forward(student: Any, batch: dict[str, torch.Tensor], output_hidden_states: bool) -> Any:
    return student(**{k: batch[k] for k in MODEL_INPUTS}, output_hidden_states=output_hidden_states)


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
    log_every: int = 25  # steps between copies of the losses to the host (each one waits for the GPU)


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
    projections: list[Any]  # the teacher's last-layer [query, key, value] modules, on the training device
    heads: int  # relation heads (``attention_relation_loss``)

    @torch.no_grad()
    def teacher_qkv(self, index: torch.Tensor, device: str) -> list[torch.Tensor]:
        (entering,) = self.states.batch(index, [self.input_layer], device)
        return [projection(entering) for projection in self.projections]


def projections_on(modules: list[Any], device: str) -> list[Any]:
    """Frozen copies of the teacher's last-layer projections (``last_layer_projections``) on ``device``,
    for ``AttentionMatch``: moving the teacher's own modules would move part of the teacher, which
    stays on the CPU between its passes. Three small matrices: copied once per trial."""
    # float32 like the student's states, whatever the teacher runs in (bfloat16: ``inference_dtype``)
    return [copy.deepcopy(module).to(device).float().eval().requires_grad_(False) for module in modules]


@dataclass
class TrainResult:
    losses: list[float] = field(default_factory=list)  # total loss per step
    # per step, each part of the loss before weighting: hard (CE on labels), soft (T²·KL), hidden
    parts: dict[str, list[float]] = field(
        default_factory=lambda: {"hard": [], "soft": [], "hidden": [], "attention": []}
    )
    seconds: float = 0.0


StepCallback = Callable[[int, float], None]
PARTS = ("hard", "soft", "hidden", "attention")


def distill(
    student: Any,
    train: TrainingSet,
    loss_step: LossStep,
    recipe: DistillRecipe,
    device: str,
    on_step: StepCallback | None = None,
    hidden: HiddenMatch | None = None,
    attention: AttentionMatch | None = None,
    sync_steps: Collection[int] = (),
    forward: Forward = plain_forward,
) -> TrainResult:
    """Train ``student`` for ``recipe.steps`` steps on the task's distillation loss (plus the
    hidden-state loss).

    Args:
        student: a transformers model of the task's class, trained in place.
        train: the task's training set; batches are drawn from a seeded shuffle, epoch after epoch.
        loss_step: the task's loss on the student's outputs and a batch (Hinton's, for both tasks).
        recipe: budget, optimiser and loss settings.
        device: "cuda" or "cpu".
        on_step: called with (step, loss) after each step, e.g. to drive a progress bar. ``loss`` is the
            latest loss copied to the host: that step's at step 1, at each multiple of
            ``recipe.log_every``, at ``sync_steps`` and at the last step, an earlier step's in between.
        hidden: the layer matching and teacher states; needed when ``recipe.hidden_weight`` > 0.
        attention: the teacher's last-layer projections (``projections_on`` the device); needed when
            ``recipe.attention_weight`` > 0.
        sync_steps: steps at which the losses are copied to the host too, e.g. the checkpoints at which
            ``on_step`` evaluates the student: a non-finite loss fails the run before that.
        forward: the task's forward pass (``Task.forward``); the student called on the batch by default.

    Returns:
        Every step's loss and parts (copied to the host in batches; the record is complete).

    Raises:
        FloatingPointError: naming the first step with a non-finite loss, at the copy to the host that
            brings it (the steps up to that copy have run).
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
    optimizer = torch.optim.AdamW(
        parameters,
        lr=recipe.learning_rate,
        weight_decay=recipe.weight_decay,
        fused=True if is_cuda(device) else None,  # on a GPU one kernel updates every parameter
    )
    scheduler = get_linear_schedule_with_warmup(
        optimizer, int(recipe.warmup_ratio * recipe.steps), recipe.steps
    )
    result = TrainResult()
    start = time.perf_counter()
    order = torch.randperm(len(train), generator=generator)
    cursor = 0
    student_qkv, hooks = _capture_projections(student) if attention else ({}, [])
    pending: list[torch.Tensor] = []  # per step not yet on the host: [total, *PARTS] on the device
    zero = torch.zeros((), device=device)  # an unused part: on the device, stacked with the others
    latest = float("nan")  # the latest loss on the host
    try:  # an early stop (TrialPruned from on_step) or a non-finite loss must not leave hooks behind
        for step in range(1, recipe.steps + 1):
            if cursor + recipe.batch_size > len(order):  # next epoch, reshuffled
                order, cursor = torch.randperm(len(train), generator=generator), 0
            index = order[cursor : cursor + recipe.batch_size]
            cursor += recipe.batch_size
            batch = to_device(train.batch(index), device)
            with autocast(device):
                outputs = forward(student, batch, use_hidden)
            outputs = _in_float32(outputs)
            parts = loss_step(outputs, batch, recipe.lam, recipe.temperature)
            loss, hidden_part = parts.total, zero
            if hidden is not None:
                hidden_part = hidden_state_loss(
                    list(outputs.hidden_states[1:]),
                    hidden.states.batch(index, hidden.teacher_layers, device),
                    batch["attention_mask"],
                    recipe.hidden_loss,
                    projection,
                )
                loss = loss + recipe.hidden_weight * hidden_part
            attention_part = zero
            if attention is not None:
                attention_part = attention_relation_loss(
                    [student_qkv[role].float() for role in "qkv"],  # captured under autocast
                    attention.teacher_qkv(index, device),
                    batch["attention_mask"],
                    attention.heads,
                )
                loss = loss + recipe.attention_weight * attention_part
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(parameters, 1.0)
            optimizer.step()
            scheduler.step()
            values = (loss, parts.hard, parts.soft, hidden_part, attention_part)
            pending.append(torch.stack([value.detach().float() for value in values]))
            if step == 1 or step % recipe.log_every == 0 or step in sync_steps or step == recipe.steps:
                latest = _to_host(pending, step - len(pending) + 1, result)
                pending = []
            if on_step:
                on_step(step, latest)
    finally:
        for hook in hooks:
            hook.remove()
    result.seconds = time.perf_counter() - start
    student.eval()
    return result


def _in_float32(outputs: Any) -> Any:
    """The student's outputs with float32 logits and hidden states, whatever ``autocast`` made them: the
    losses are computed in float32. On float32 outputs (the CPU) ``.float()`` returns the same tensors."""
    if outputs.logits is not None:  # None: a causal LM's loss computes them in chunks, in float32
        outputs.logits = outputs.logits.float()
    if getattr(outputs, "hidden_states", None) is not None:
        outputs.hidden_states = tuple(state.float() for state in outputs.hidden_states)
    return outputs


def _to_host(pending: list[torch.Tensor], first_step: int, result: TrainResult) -> float:
    """Append the losses of steps ``first_step``… (``pending``: [total, *PARTS] per step, on the device) to
    ``result`` in one copy to the host; returns the last step's loss.

    Raises:
        FloatingPointError: naming the first of these steps whose loss is not finite.
    """
    rows = torch.stack(pending).tolist()
    for step, (total, *parts) in enumerate(rows, start=first_step):
        if not math.isfinite(total):
            raise FloatingPointError(f"non-finite loss ({total}) at step {step}")
        result.losses.append(total)
        for name, value in zip(PARTS, parts, strict=True):
            result.parts[name].append(value)
    return float(rows[-1][0])


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
