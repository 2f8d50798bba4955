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
