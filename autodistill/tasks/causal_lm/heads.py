"""The output layer applied a chunk of positions at a time: memory set by the chunk, not by vocabulary × length.

A causal LM's logits are [batch, tokens, vocabulary]: at Llama 3's 128,256-token vocabulary a batch of
8 × 512 is 2.1 GB in float32, and the top-k, the loss and perplexity each made several copies of that.
Here the model runs without its output layer (``headless``: the decoder's last hidden states, a few MB),
and callers apply the output layer to ``chunk`` positions at a time, so at most a chunk's logits (and its
few working copies) exist at once. The results are the same sums over positions as on whole logits, up
to float rounding (tested against the unchunked path).

The chunk is fixed (``train.chunk_tokens``, or as many positions as ``CHUNK_BYTES`` of float32 logits),
not derived from free memory: the chunking changes float rounding, and a chunk that depended on what
else the machine was doing would make a seeded trial differ from run to run.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import torch

CHUNK_BYTES = 128 * 2**20  # float32 logits per chunk when train.chunk_tokens is unset

# Per model: whether its logits are its output layer applied to its decoder's last hidden states.
_SPLITS: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()


def chunk_positions(vocab: int, chunk_tokens: int | None = None) -> int:
    """Positions whose logits are held at once: ``chunk_tokens``, or as many as ``CHUNK_BYTES`` hold."""
    return chunk_tokens if chunk_tokens else max(1, CHUNK_BYTES // (4 * vocab))


@dataclass
class HeadlessOutputs:
    """A causal LM's outputs without its logits: what the chunked loss, top-k and perplexity read."""

    last_hidden: torch.Tensor  # [batch, tokens, width]: what the output layer reads
    head: Any  # the output layer (``get_output_embeddings()``): hidden → logits
    hidden_states: tuple[torch.Tensor, ...] | None = None  # every layer's, when asked for
    logits: torch.Tensor | None = None  # never computed here; None tells the loss to chunk


@torch.no_grad()
def splits_cleanly(model: Any) -> bool:
    """Whether ``model``'s logits are exactly its output layer applied to its decoder's last hidden states
    (Llama, Qwen, Mistral, GPT-2: yes; a model that scales or caps its logits, e.g. Gemma 2: no).

    Checked once per model on three tokens, in eval mode (dropout would make the two passes differ),
    rather than trusted from a list of architectures.
    """
    if model in _SPLITS:
        return _SPLITS[model]
    head = model.get_output_embeddings()
    clean = False
    if head is not None and getattr(model, "base_model", model) is not model:
        training = model.training
        model.eval()
        try:
            device = next(model.parameters()).device
            ids = torch.tensor([[0, 1, 2]], device=device)
            full = model(input_ids=ids).logits.float()
            split = head(model.base_model(input_ids=ids).last_hidden_state).float()
            clean = full.shape == split.shape and torch.allclose(full, split, rtol=1e-4, atol=1e-4)
        finally:
            model.train(training)
    _SPLITS[model] = clean
    return clean


def headless(
    model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, output_hidden_states: bool = False
) -> Any:
    """The model's forward pass without its output layer, when ``splits_cleanly``; else its full outputs
    (logits and all), which the callers handle too."""
    if not splits_cleanly(model):
        return model(
            input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=output_hidden_states
        )
    outputs = model.base_model(
        input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=output_hidden_states
    )
    return HeadlessOutputs(
        last_hidden=outputs.last_hidden_state,
        head=model.get_output_embeddings(),
        hidden_states=outputs.hidden_states if output_hidden_states else None,
    )


def logits_of(outputs: Any, rows: torch.Tensor) -> torch.Tensor:
    """Float32 logits [n, vocab] of ``rows`` [n, width] of the last hidden states (``HeadlessOutputs``), or
    of rows already holding logits (full outputs)."""
    if isinstance(outputs, HeadlessOutputs):
        return outputs.head(rows.to(outputs.head.weight.dtype)).float()
    return rows.float()


def position_rows(outputs: Any) -> torch.Tensor:
    """[batch, tokens, ·]: the last hidden states of ``HeadlessOutputs``, or the logits of full outputs;
    ``logits_of`` turns rows of either into logits."""
    return outputs.last_hidden if isinstance(outputs, HeadlessOutputs) else outputs.logits
