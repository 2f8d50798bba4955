"""The teacher's targets for next-token distillation: its top-k log-probabilities per token, cached.

The full distribution is too big to keep (SmolLM2's 49,152 logits a token would be 96 KB a token in
float16), so the cache keeps, for every position of every training block, the teacher's k most
likely next tokens (int32 ids), their log-probabilities at T=1 (float16) and the probability mass left
outside them (float32: the tail can be far below float16's smallest number), and the entropy of
that tail (float32), which lets the loss estimate how much the tail weighs once softened by T > 1.
That is what ``distill.loss.topk_distillation_loss`` needs to rebuild the teacher's distribution over
k+1 buckets at any temperature: about 6k + 8 bytes a token (392 at k = 64). Computed once per study with the teacher in eval mode, stored atomically.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from autodistill.store.caches import cached
from autodistill.tasks.causal_lm.data import Blocks
from autodistill.tasks.causal_lm.heads import chunk_positions, headless, logits_of, position_rows
from autodistill.util.devices import autocast, to_device

# A finite stand-in for log 0 in the tail: exp gives exactly 0, and 0 · it is 0, where -inf would give nan.
_LOG_ZERO = -1e30


def topk_from_logits(
    logits: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The top-k targets of logits, exact in float32.

    Args:
        logits: [..., vocab].
        k: 1 ≤ k ≤ vocab.

    Returns:
        (indices [..., k] int32, log-probabilities at T=1 [..., k] float32, rest [...] float32,
        tail entropy [...] float32): rest is the probability mass of the other ``vocab - k`` tokens
        (0 when k = vocab), computed as the exp of their logsumexp rather than 1 - Σ p_topk, which
        cancels to noise when it is small; the tail entropy is that of those tokens' distribution
        renormalised, ``-Σ q log q`` with ``q = p / rest`` (in nats; 0 for an empty tail).
    """
    vocab = logits.shape[-1]
    if not 1 <= k <= vocab:
        raise ValueError(
            f"top_k: {k} is outside 1..{vocab} (the teacher's vocabulary); choose a k in that range"
        )
    # Two vocabulary-wide copies besides the float32 logits (the tail, then its probabilities), not the
    # seven a log-softmax-first version made: the top k of the logits are those of the log-probabilities.
    z = logits.float()
    top, indices = z.topk(k, dim=-1)
    # log Σ exp(z) as the max plus the log of a sum near 1, and every log-probability as (z - max) minus
    # that log: z - logsumexp(z) would cancel to noise for a token of log-probability near 0
    high = top[..., :1]
    log_sum = (z - high).exp_().sum(dim=-1, keepdim=True).log_()
    if k == vocab:  # an empty tail: no mass, no entropy
        zeros = torch.zeros(z.shape[:-1], dtype=torch.float32, device=z.device)
        return indices.to(torch.int32), (top - high) - log_sum, zeros, zeros
    log_q = z.scatter(-1, indices, _LOG_ZERO)  # the tail's logits; the top k get (finite) nothing
    log_tail = log_q.logsumexp(dim=-1, keepdim=True)
    log_q -= log_tail  # log q: the tail renormalised
    q_log_q = log_q.exp().mul_(log_q)  # q = 0 in the top k, and 0 · (-1e30) = 0; in place: no third copy
    entropy = -q_log_q.sum(dim=-1)  # summed, not a matrix product: a dot product over 128k terms drifts
    rest = ((log_tail - high) - log_sum).squeeze(-1).exp()
    return indices.to(torch.int32), (top - high) - log_sum, rest, entropy


@dataclass
class TopkTargets:
    """The teacher's top-k targets for every position of N blocks of L tokens."""

    indices: torch.Tensor  # [N, L, k] int32
    values: torch.Tensor  # [N, L, k] float16: log-probabilities at T=1
    rest: torch.Tensor  # [N, L] float32: mass outside the top k at T=1
    tail_entropy: torch.Tensor  # [N, L] float32: entropy of that tail, renormalised (nats)

    @property
    def k(self) -> int:
        return int(self.indices.shape[-1])


@torch.no_grad()
def compute_topk(
    teacher: Any, blocks: Blocks, k: int, batch_size: int, device: str, chunk_tokens: int | None = None
) -> TopkTargets:
    """Run ``teacher`` (eval mode, no gradients) over ``blocks`` in batches and keep its top-k targets.

    Position t's targets are the teacher's distribution of token t+1; the last position's are kept too,
    so every tensor lines up with ``blocks.input_ids`` (the loss drops it in the causal shift). The
    forward passes run under ``autocast`` (bfloat16 on a GPU when the job enables it); the top k are
    taken in float32, ``chunk_positions`` positions at a time (``heads``): a chunk's logits and their
    working copies are all the memory it takes beyond the cache itself.
    """
    n, length = blocks.input_ids.shape
    indices = torch.empty(n, length, k, dtype=torch.int32)
    values = torch.empty(n, length, k, dtype=torch.float16)
    rest = torch.empty(n, length, dtype=torch.float32)
    entropy = torch.empty(n, length, dtype=torch.float32)
    teacher.eval().to(device)
    step = chunk_positions(teacher.config.vocab_size, chunk_tokens)
    # flat views: a batch's positions are consecutive rows of them
    flat = indices.view(-1, k), values.view(-1, k), rest.view(-1), entropy.view(-1)
    for start in range(0, n, batch_size):
        index = torch.arange(start, min(start + batch_size, n))
        batch = to_device(blocks.batch(index), device)
        with autocast(device):
            outputs = headless(teacher, batch["input_ids"], batch["attention_mask"])
            rows = position_rows(outputs).flatten(0, 1)  # [batch × L, width or vocab]
            for first in range(0, rows.shape[0], step):
                top, log_p, tail, tail_entropy = topk_from_logits(
                    logits_of(outputs, rows[first : first + step]), k
                )
                at = slice(start * length + first, start * length + first + top.shape[0])
                flat[0][at], flat[1][at] = top.cpu(), log_p.to(torch.float16).cpu()
                flat[2][at], flat[3][at] = tail.cpu(), tail_entropy.cpu()
    return TopkTargets(indices=indices, values=values, rest=rest, tail_entropy=entropy)


def teacher_topk(
    teacher: Any,
    blocks: Blocks,
    k: int,
    batch_size: int,
    device: str,
    cache_dir: Path,
    key_parts: list[Any],
    log: Callable[[str], None],
    chunk_tokens: int | None = None,
) -> TopkTargets:
    """The teacher's top-k targets on ``blocks``, computed once per key and stored atomically.

    Args:
        key_parts: what identifies the teacher and the blocks, e.g. ``[teacher_fingerprint(ref),
            LmData.fingerprint]``; k and the block length are added here.
        chunk_tokens: positions whose logits are held at once (``heads.chunk_positions``); not part of the
            key: any chunk gives the same targets up to float rounding.
    """
    n, length = blocks.input_ids.shape

    def compute() -> dict[str, torch.Tensor]:
        size = n * length * (k * 6 + 8) / 1e6
        log(
            f"teacher: computing its top-{k} next-token targets on {n} blocks of {length} tokens "
            f"({size:.0f} MB, once, cached) on {device}"
        )
        return vars(compute_topk(teacher, blocks, k, batch_size, device, chunk_tokens))

    # "with tail_entropy": a cache written before the tail's entropy was kept is not read as one
    key = [*key_parts, "top_k", k, "max_length", length, "with tail_entropy"]
    stored = cached("teacher-topk", cache_dir, key, compute, log=log)
    return TopkTargets(**stored)


@dataclass
class TopkBatches:
    """Training blocks with the teacher's top-k targets, drawn in batches by index (a ``TrainingSet``)."""

    blocks: Blocks
    targets: TopkTargets

    def __post_init__(self) -> None:
        if tuple(self.targets.rest.shape) != tuple(self.blocks.input_ids.shape):
            raise ValueError(
                f"top-k targets for {tuple(self.targets.rest.shape)} tokens, but the blocks are "
                f"{tuple(self.blocks.input_ids.shape)}"
            )

    def __len__(self) -> int:
        return len(self.blocks)

    def batch(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        """The blocks' ``input_ids``, ``attention_mask``, ``labels`` [batch, L] and the teacher's
        ``topk_indices`` [batch, L, k] (int64, for gather), ``topk_values`` [batch, L, k] (float16),
        ``topk_rest`` and ``topk_tail_entropy`` [batch, L]: ``topk_distillation_loss``'s arguments."""
        return {
            **self.blocks.batch(index),
            "topk_indices": self.targets.indices[index].long(),
            "topk_values": self.targets.values[index],
            "topk_rest": self.targets.rest[index],
            "topk_tail_entropy": self.targets.tail_entropy[index],
        }
