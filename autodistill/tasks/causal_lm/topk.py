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
from autodistill.util.devices import autocast, to_device


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
    log_p = torch.log_softmax(logits.float(), dim=-1)
    values, indices = log_p.topk(k, dim=-1)
    tail = log_p.scatter(-1, indices, float("-inf"))
    log_rest = tail.logsumexp(dim=-1, keepdim=True)  # -inf for an empty tail
    log_q = tail - log_rest
    q = log_q.exp()  # 0 in the top k; nan everywhere for an empty tail (-inf - -inf)
    entropy = -torch.where(q > 0, q * log_q, 0.0).sum(dim=-1)
    return indices.to(torch.int32), values, log_rest.squeeze(-1).exp(), entropy


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
def compute_topk(teacher: Any, blocks: Blocks, k: int, batch_size: int, device: str) -> TopkTargets:
    """Run ``teacher`` (eval mode, no gradients) over ``blocks`` in batches and keep its top-k targets.

    Position t's targets are the teacher's distribution of token t+1; the last position's are kept too,
    so every tensor lines up with ``blocks.input_ids`` (the loss drops it in the causal shift). The
    forward passes run under ``autocast`` (bfloat16 on a GPU when the job enables it); the top k are
    taken in float32.
    """
    n, length = blocks.input_ids.shape
    indices = torch.empty(n, length, k, dtype=torch.int32)
    values = torch.empty(n, length, k, dtype=torch.float16)
    rest = torch.empty(n, length, dtype=torch.float32)
    entropy = torch.empty(n, length, dtype=torch.float32)
    teacher.eval().to(device)
    for start in range(0, n, batch_size):
        index = torch.arange(start, min(start + batch_size, n))
        batch = to_device(blocks.batch(index), device)
        with autocast(device):
            logits = teacher(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        top, log_p, tail, tail_entropy = topk_from_logits(logits, k)
        indices[index], values[index] = top.cpu(), log_p.to(torch.float16).cpu()
        rest[index], entropy[index] = tail.cpu(), tail_entropy.cpu()
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
) -> TopkTargets:
    """The teacher's top-k targets on ``blocks``, computed once per key and stored atomically.

    Args:
        key_parts: what identifies the teacher and the blocks, e.g. ``[teacher_fingerprint(ref),
            LmData.fingerprint]``; k and the block length are added here.
    """
    n, length = blocks.input_ids.shape

    def compute() -> dict[str, torch.Tensor]:
        size = n * length * (k * 6 + 8) / 1e6
        log(
            f"teacher: computing its top-{k} next-token targets on {n} blocks of {length} tokens "
            f"({size:.0f} MB, once, cached) on {device}"
        )
        return vars(compute_topk(teacher, blocks, k, batch_size, device))

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
