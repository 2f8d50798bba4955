"""The Hinton distillation loss, as a pure function returning its parts."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint


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
        soft gradients' scale independent of T (Hinton et al. 2015). Computed in float32 whatever the
        logits' dtype (bfloat16 from a forward pass under autocast).
    """
    student_logits = student_logits.float()  # the same tensor when it is float32 already
    hard = F.cross_entropy(student_logits, labels)
    student_log_p = F.log_softmax(student_logits / temperature, dim=-1)
    teacher_log_p = F.log_softmax(teacher_logits.detach().float() / temperature, dim=-1)
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
        A scalar; 0 when the (projected) states equal the teacher's. Computed in float32.
    """
    if len(student_states) != len(teacher_states):
        raise ValueError(
            f"{len(student_states)} student layers matched to {len(teacher_states)} teacher layers"
        )
    real = mask.bool()
    losses = []
    for student, teacher in zip(student_states, teacher_states, strict=True):
        s = projection(student) if projection is not None else student
        s, t = s[real].float(), teacher.detach()[real].float()  # [real tokens, width]
        if kind == "cosine":
            losses.append((1.0 - F.cosine_similarity(s, t, dim=-1)).mean())
        elif kind == "mse":
            losses.append(F.mse_loss(s, t))
        else:
            raise ValueError(f"hidden loss kind must be cosine or mse, not {kind!r}")
    return torch.stack(losses).mean()


# A finite stand-in for -inf where padding keys are masked: log-probabilities stay finite, so
# p_teacher · (log p_teacher - log p_student) is 0 (not nan) at a masked key.
_MASKED = -1e9


def self_relations(projected: torch.Tensor, heads: int, key_mask: torch.Tensor) -> torch.Tensor:
    """Log-softmax of scaled dot products between a layer's tokens, per relation head (MiniLMv2).

    Args:
        projected: [batch, tokens, width] queries, keys or values of one attention layer (all heads,
            before the split into attention heads).
        heads: relation heads; ``width`` is split into this many, which need not be the layer's own
            attention heads, so a student and a teacher of different widths and head counts compare.
        key_mask: [batch, tokens], 1 for real tokens; padding keys get no probability.

    Returns:
        [batch, heads, tokens, tokens] log-probabilities over keys (the last dimension).
    """
    batch, tokens, width = projected.shape
    size = width // heads
    split = projected.float().view(batch, tokens, heads, size).transpose(1, 2)  # [batch, heads, tokens, size]
    scores = split @ split.transpose(-1, -2) / size**0.5
    scores = scores.masked_fill(~key_mask.bool()[:, None, None, :], _MASKED)
    return F.log_softmax(scores, dim=-1)


def attention_relation_loss(
    student_qkv: list[torch.Tensor],
    teacher_qkv: list[torch.Tensor],
    mask: torch.Tensor,
    heads: int,
) -> torch.Tensor:
    """MiniLM's self-attention distillation in its multi-head relation form (Wang et al. 2021, MiniLMv2):
    KL(teacher ‖ student) between the query-query, key-key and value-value relations of the last layer.

    The relations are [tokens × tokens] per relation head whatever the width, so a narrow student learns
    the teacher's attention pattern (queries and keys) and how its values relate, with no projection.

    Args:
        student_qkv: the student's last-layer [queries, keys, values], each [batch, tokens, student width].
        teacher_qkv: the teacher's, each [batch, tokens, teacher width], no gradient needed.
        mask: [batch, tokens], 1 for real tokens; padded queries do not count, padded keys get nothing.
        heads: relation heads; both widths must be multiples of it.

    Returns:
        A scalar: the KL summed over keys, averaged over relation heads, real query tokens and the three
        relations; 0 when the student's relations equal the teacher's.
    """
    if len(student_qkv) != len(teacher_qkv):
        raise ValueError(f"{len(student_qkv)} student projections against {len(teacher_qkv)} of the teacher")
    for projected in (*student_qkv, *teacher_qkv):
        if projected.shape[-1] % heads:
            raise ValueError(f"width {projected.shape[-1]} is not a multiple of {heads} relation heads")
    real = mask.bool()
    losses = []
    for student, teacher in zip(student_qkv, teacher_qkv, strict=True):
        student_log_p = self_relations(student, heads, mask)
        teacher_log_p = self_relations(teacher.detach(), heads, mask)
        kl = (teacher_log_p.exp() * (teacher_log_p - student_log_p)).sum(-1)  # [batch, heads, tokens]
        losses.append(kl.mean(1)[real].mean())
    return torch.stack(losses).mean()


# Causal language models: next-token distillation, against the full vocabulary or a top-k cache.

IGNORE_INDEX = -100  # transformers' label for "no target here"
# A finite stand-in for log 0: -inf would give 0·inf = nan in the KL and nan gradients through logsumexp.
_LOG_ZERO = -1e30


def next_token_targets(labels: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The causal shift: position t predicts token t+1, so the last position has no target.

    Args:
        labels: [batch, tokens] token ids (``IGNORE_INDEX`` where there is no target).
        mask: [batch, tokens], 1 for real tokens.

    Returns:
        (targets [batch, tokens-1], valid [batch, tokens-1] bool): position t counts when it and t+1
        are both real tokens and token t+1 is not ``IGNORE_INDEX``.
    """
    targets = labels[:, 1:]
    valid = mask[:, :-1].bool() & mask[:, 1:].bool() & (targets != IGNORE_INDEX)
    return targets, valid


def _no_target(student_logits: torch.Tensor) -> LossParts:
    # a batch without a single target (all padding): zero, still attached to the graph for backward()
    zero = student_logits.sum() * 0.0
    return LossParts(total=zero, hard=zero, soft=zero)


def full_vocab_distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    mask: torch.Tensor,
    lam: float,
    temperature: float,
) -> LossParts:
    """(1-λ)·CE(next token) + λ·T²·KL(teacher_T ‖ student_T) over the whole vocabulary: the reference
    that ``topk_distillation_loss`` approximates.

    Args:
        student_logits: [batch, tokens, vocab].
        teacher_logits: [batch, tokens, vocab], no gradient needed.
        labels: [batch, tokens] token ids (usually the inputs themselves); the shift is done here.
        mask: [batch, tokens], 1 for real tokens; positions without a real target do not count.
        lam: weight λ ∈ [0, 1] of the soft term.
        temperature: T > 0, softens both distributions in the soft term only.

    Returns:
        LossParts(total, hard, soft), each a scalar averaged over the positions with a target (a batch
        without any gives zeros). Computed in float32 whatever the logits' dtype.
    """
    targets, valid = next_token_targets(labels, mask)
    if not bool(valid.any()):
        return _no_target(student_logits)
    student = student_logits[:, :-1][valid].float()  # [targets, vocab]: real positions only
    teacher = teacher_logits[:, :-1][valid].detach().float()
    hard = F.cross_entropy(student, targets[valid])
    kl = F.kl_div(
        F.log_softmax(student / temperature, dim=-1),
        F.log_softmax(teacher / temperature, dim=-1),
        reduction="batchmean",
        log_target=True,
    )
    soft = temperature**2 * kl
    return LossParts(total=(1.0 - lam) * hard + lam * soft, hard=hard, soft=soft)


def topk_distillation_loss(
    student_logits: torch.Tensor,
    topk_indices: torch.Tensor,
    topk_values: torch.Tensor,
    topk_rest: torch.Tensor,
    labels: torch.Tensor,
    mask: torch.Tensor,
    lam: float,
    temperature: float,
    tail_entropy: torch.Tensor | None = None,
    *,
    head: Callable[[torch.Tensor], torch.Tensor] | None = None,
    chunk: int | None = None,
) -> LossParts:
    """(1-λ)·CE(next token) + λ·T²·KL(teacher_T ‖ student_T), with both distributions over k+1 buckets:
    the teacher's top-k tokens at each position, and one bucket for the rest of the vocabulary (the tail).

    The teacher's buckets are rebuilt from what the cache holds (``tasks.causal_lm.topk``): its top-k
    log-probabilities at T=1, ``log p_i = z_i - logsumexp(z)``, the mass of the tail,
    ``rest = Σ_{j∉top-k} p_j``, and optionally the tail's entropy ``H`` (of ``p_j / rest``). At
    temperature T its bucket logits are ``log p_i / T`` (the shared ``logsumexp(z)/T`` cancels in the
    softmax) and, for the tail, an estimate of ``log Σ_{j∉top-k} p_j^(1/T)``:

    - with ``tail_entropy``: ``log(rest)/T + (1 - 1/T)·H``, the tail taken as ``e^H`` equally likely
      tokens. Exact at T=1 and for a uniform tail; otherwise the tangent at T=1 of that (convex in 1/T)
      log-sum, so it never overestimates the tail's softened mass.
    - without: ``log(rest)/T``, the tail taken as one token. Exact at T=1 only; at T=2-4 the teacher's
      softened tail then weighs far less than the student's (a whole vocabulary of tokens softened),
      which ``benchmarks/topk_gap.py`` measures at several times the full loss.

    The student's buckets are exact at any T: its top-k logits / T and the logsumexp of its other
    logits / T. At T=1 the bucketed KL is a lower bound of the full one (merging outcomes never raises a
    KL divergence), and with k = vocabulary (an empty tail) it equals the full one at any T.

    Args:
        student_logits: [batch, tokens, vocab].
        topk_indices: [batch, tokens, k] the teacher's top-k token ids per position (any int dtype).
        topk_values: [batch, tokens, k] their log-probabilities at T=1 (float16 in the cache).
        topk_rest: [batch, tokens] the teacher's probability mass outside the top k, at T=1 (≥ 0).
        labels: [batch, tokens] token ids; position t's target is token t+1.
        mask: [batch, tokens], 1 for real tokens; positions without a real target do not count.
        lam: weight λ ∈ [0, 1] of the soft term.
        temperature: T > 0.
        tail_entropy: [batch, tokens] the entropy (nats) of the teacher's tail, normalised; None takes
            the tail as one token.
        head: with it, ``student_logits`` are the student's last hidden states [batch, tokens, width] and
            ``head`` maps rows of them to float32 logits [n, vocab] (its output layer), applied ``chunk``
            positions at a time so that only one chunk's logits exist at once (``tasks.causal_lm.heads``).
        chunk: positions per chunk; None: all at once. With several chunks under autograd each chunk is
            checkpointed (its logits are computed again in the backward pass instead of kept), so the
            memory of the backward pass is bounded by a chunk too.

    Returns:
        LossParts(total, hard, soft), scalars averaged over the positions with a target; ``hard`` is
        the exact next-token cross-entropy over the full vocabulary. Computed in float32.
    """
    targets, valid = next_token_targets(labels, mask)
    if not bool(valid.any()):
        return _no_target(student_logits)
    rows = student_logits[:, :-1][valid]  # [targets, vocab], or [targets, width] with a head
    index = topk_indices[:, :-1][valid].long()  # [targets, k]
    teacher_top = topk_values[:, :-1][valid].detach()
    teacher_rest = topk_rest[:, :-1][valid].detach()  # [targets]
    entropy = tail_entropy[:, :-1][valid].detach() if tail_entropy is not None else None
    target_rows = targets[valid]
    to_logits = head if head is not None else _as_float
    n = rows.shape[0]
    step = chunk or n
    checkpointed = n > step and torch.is_grad_enabled()
    hard, kl = rows.new_zeros((), dtype=torch.float32), rows.new_zeros((), dtype=torch.float32)
    for start in range(0, n, step):
        part = slice(start, start + step)
        args = (to_logits, rows[part], index[part], teacher_top[part], teacher_rest[part], target_rows[part])
        extra = (entropy[part] if entropy is not None else None, temperature)
        if checkpointed:
            sums = checkpoint(_topk_sums, *args, *extra, use_reentrant=False)
        else:
            sums = _topk_sums(*args, *extra)
        hard, kl = hard + sums[0], kl + sums[1]
    hard, soft = hard / n, temperature**2 * kl / n
    return LossParts(total=(1.0 - lam) * hard + lam * soft, hard=hard, soft=soft)


def _as_float(logits: torch.Tensor) -> torch.Tensor:
    return logits.float()  # the same tensor when it is float32 already


def _topk_sums(
    to_logits: Callable[[torch.Tensor], torch.Tensor],
    rows: torch.Tensor,
    index: torch.Tensor,
    teacher_top: torch.Tensor,
    teacher_rest: torch.Tensor,
    targets: torch.Tensor,
    tail_entropy: torch.Tensor | None,
    temperature: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(Σ cross-entropy, Σ bucketed KL) over ``rows`` (positions with a target): ``topk_distillation_loss``
    for one chunk, as sums, so that chunks add up to the whole."""
    student = to_logits(rows)  # [n, vocab] float32
    hard = F.cross_entropy(student, targets, reduction="sum")
    scaled = student / temperature
    student_top = scaled.gather(-1, index)
    # exact tail: logsumexp of the logits outside the top k (computing 1 - Σ p_topk would cancel badly)
    student_tail = scaled.scatter(-1, index, _LOG_ZERO).logsumexp(dim=-1, keepdim=True)
    student_log_p = F.log_softmax(torch.cat([student_top, student_tail], dim=-1), dim=-1)

    teacher_rest = teacher_rest.float()
    log_rest = torch.where(teacher_rest > 0, teacher_rest.clamp_min(1e-45).log(), _LOG_ZERO)
    teacher_tail = log_rest / temperature
    if tail_entropy is not None:
        teacher_tail = teacher_tail + (1.0 - 1.0 / temperature) * tail_entropy.float()
    teacher_buckets = torch.cat([teacher_top.float() / temperature, teacher_tail[:, None]], dim=-1)
    teacher_log_p = F.log_softmax(teacher_buckets, dim=-1)
    kl = F.kl_div(student_log_p, teacher_log_p, reduction="sum", log_target=True)
    return hard, kl
