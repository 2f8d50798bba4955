"""A model's size: parameters (with and without embeddings) and bytes of its safetensors file."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Size:
    params: int
    params_no_embeddings: int
    size_bytes: int  # of model.safetensors as save_pretrained writes it


def model_size(model: Any) -> Size:
    params = sum(p.numel() for p in model.parameters())  # a tied LM head is counted once
    return Size(
        params=params, params_no_embeddings=params - _embedding_params(model), size_bytes=_bytes(model)
    )


def _embedding_params(model: Any) -> int:
    """Encoders: their embeddings module (words, positions, types, norm). Decoders: the token (and
    position) embeddings, and an output head that is not tied to them."""
    embeddings = getattr(model.base_model, "embeddings", None)
    if embeddings is not None:
        return sum(p.numel() for p in embeddings.parameters())
    modules = {id(m): m for m in (model.get_input_embeddings(), getattr(model.base_model, "wpe", None)) if m}
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is not None and head.weight is not model.get_input_embeddings().weight:
        modules[id(head)] = head
    return sum(p.numel() for m in modules.values() for p in m.parameters())


def _bytes(model: Any) -> int:
    """Bytes of ``model.safetensors`` as ``save_pretrained`` writes it."""
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        return sum(f.stat().st_size for f in Path(tmp).glob("*.safetensors"))
