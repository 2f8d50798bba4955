"""The Hinton distillation loss, as a pure function returning its parts."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F


class LossParts(NamedTuple):
    total: torch.Tensor
    hard: torch.Tensor  # cross-entropy against the labels
    soft: torch.Tensor  # T² · KL(teacher_T ‖ student_T)


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    lam: float,
    temperature: float,
) -> LossParts:
    """(1-λ)·CE(student, labels) + λ·T²·KL(softmax(teacher/T) ‖ softmax(student/T)).

    Args:
        student_logits: [batch, classes].
        teacher_logits: [batch, classes], no gradient needed.
        labels: [batch] class ids.
        lam: weight λ ∈ [0, 1] of the soft term.
        temperature: T > 0, softens both distributions in the soft term only.

    Returns:
        LossParts(total, hard, soft), each a scalar averaged over the batch. The T² factor keeps the
        soft gradients' scale independent of T (Hinton et al. 2015).
    """
    hard = F.cross_entropy(student_logits, labels)
    student_log_p = F.log_softmax(student_logits / temperature, dim=-1)
    teacher_log_p = F.log_softmax(teacher_logits.detach() / temperature, dim=-1)
    kl = F.kl_div(student_log_p, teacher_log_p, reduction="batchmean", log_target=True)
    soft = temperature**2 * kl
    return LossParts(total=(1.0 - lam) * hard + lam * soft, hard=hard, soft=soft)


def hidden_state_loss(
    student_states: list[torch.Tensor],
    teacher_states: list[torch.Tensor],
    mask: torch.Tensor,
    kind: str = "cosine",
    projection: torch.nn.Module | None = None,
) -> torch.Tensor:
    """Distance between matched student and teacher hidden states, averaged over layers and real tokens.

    Args:
        student_states: per matched layer, [batch, tokens, student width].
        teacher_states: the same layers' teacher states, [batch, tokens, teacher width], no gradient needed.
        mask: [batch, tokens], 1 for real tokens; padding does not count.
        kind: ``cosine`` (DistilBERT's 1 - cos, which aligns directions) or ``mse``.
        projection: maps student width to teacher width when they differ (learned with the student).

    Returns:
        A scalar; 0 when the (projected) states equal the teacher's.
    """
    if len(student_states) != len(teacher_states):
        raise ValueError(
            f"{len(student_states)} student layers matched to {len(teacher_states)} teacher layers"
        )
    real = mask.bool()
    losses = []
    for student, teacher in zip(student_states, teacher_states, strict=True):
        s = projection(student) if projection is not None else student
        s, t = s[real], teacher.detach()[real].to(s.dtype)  # [real tokens, width]
        if kind == "cosine":
            losses.append((1.0 - F.cosine_similarity(s, t, dim=-1)).mean())
        elif kind == "mse":
            losses.append(F.mse_loss(s, t))
        else:
            raise ValueError(f"hidden loss kind must be cosine or mse, not {kind!r}")
    return torch.stack(losses).mean()
