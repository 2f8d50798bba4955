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
    params = sum(p.numel() for p in model.parameters())
    embeddings = getattr(model.base_model, "embeddings", None)
    emb = sum(p.numel() for p in embeddings.parameters()) if embeddings is not None else 0
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        size_bytes = sum(f.stat().st_size for f in Path(tmp).glob("*.safetensors"))
    return Size(params=params, params_no_embeddings=params - emb, size_bytes=size_bytes)
