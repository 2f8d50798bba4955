"""Scoring a causal language model: perplexity on token blocks, and a greedy sample of its text."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from autodistill.distill.loss import next_token_targets
from autodistill.tasks.causal_lm.data import Blocks
from autodistill.tasks.causal_lm.heads import chunk_positions, headless, logits_of, position_rows
from autodistill.util.devices import autocast, to_device


@torch.no_grad()
def perplexity(
    model: Any, blocks: Blocks, batch_size: int, device: str, chunk_tokens: int | None = None
) -> float:
    """exp of the mean next-token cross-entropy over every target token of every block.

    Each block of L tokens has L-1 targets (position t predicts token t+1; a block does not see the
    one before it), so this is the perplexity a model gets reading each block on its own: the
    per-block losses transformers reports, weighted by their target counts, then exponentiated.
    Summed in float64 so thousands of blocks add up without rounding drift, on the device: the sums are
    copied to the host once, at the end, not at every batch. The forward passes
    run under ``autocast`` (bfloat16 on a GPU when the job enables it), the cross-entropy in float32, on
    ``chunk_positions`` positions at a time (``heads``): memory is set by the chunk, not by batch × length
    × vocabulary.
    """
    model.eval().to(device)
    step = chunk_positions(model.config.vocab_size, chunk_tokens)
    total = torch.zeros((), dtype=torch.float64, device=device)
    count = torch.zeros((), dtype=torch.long, device=device)
    for start in range(0, len(blocks), batch_size):
        batch = to_device(blocks.batch(torch.arange(start, min(start + batch_size, len(blocks)))), device)
        ids, mask = batch["input_ids"], batch["attention_mask"]
        with autocast(device):
            outputs = headless(model, ids, mask)
        targets, valid = next_token_targets(batch["labels"], mask)
        rows, target_rows = position_rows(outputs)[:, :-1][valid], targets[valid]
        for start in range(0, rows.shape[0], step):
            part = slice(start, start + step)
            logits = logits_of(outputs, rows[part])
            total += F.cross_entropy(logits, target_rows[part], reduction="sum").double()
        count += valid.sum()
    if int(count) == 0:
        raise ValueError("perplexity: no target tokens (blocks of one token, or none); use longer blocks")
    return math.exp(float(total) / int(count))


@torch.no_grad()
def generate_sample(
    model: Any, tokenizer: Any, prompt: str, max_new_tokens: int, device: str = "cpu", seed: int = 0
) -> str:
    """The prompt followed by the model's greedy continuation of it (for MLflow artifacts and the
    report's hover): deterministic, whatever sampling settings the model's generation config holds."""
    from transformers import GenerationConfig

    torch.manual_seed(seed)  # greedy needs no randomness; a model whose forward draws any gets the same
    model.eval().to(device)
    encoded = tokenizer(prompt, return_tensors="pt").to(device)
    eos = getattr(tokenizer, "eos_token_id", None)
    pad = getattr(tokenizer, "pad_token_id", None)
    config = GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=False,
        eos_token_id=eos,
        pad_token_id=pad if pad is not None else eos,
    )
    output = model.generate(**encoded, generation_config=config)
    return str(tokenizer.decode(output[0], skip_special_tokens=True))
