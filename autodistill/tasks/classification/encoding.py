"""Token ids for classification: tokenised once with the teacher's tokenizer, cached, padded per batch."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autodistill.tasks.classification.data import Split
from autodistill.util.files import atomic_torch_save, compute_once, load_torch
from autodistill.util.hashing import short_hash


@dataclass
class Encoded:
    """Token ids padded to the longest example, and each example's true length.

    Batches are cut to their own longest example (dynamic padding) by ``batch``.
    """

    input_ids: Any  # LongTensor [N, L]
    lengths: Any  # LongTensor [N]
    labels: Any  # LongTensor [N]

    def __len__(self) -> int:
        return int(self.lengths.shape[0])

    def batch(self, index: Any) -> dict[str, Any]:
        import torch

        lengths = self.lengths[index]
        width = int(lengths.max())
        ids = self.input_ids[index, :width]
        mask = (torch.arange(width)[None, :] < lengths[:, None]).long()
        return {"input_ids": ids, "attention_mask": mask, "labels": self.labels[index]}


def encode(split: Split, tokenizer: Any, max_length: int, cache_dir: Path | None) -> Encoded:
    """Tokenise a split with the teacher's tokenizer, once: the result is cached under ``cache_dir``."""
    import torch

    def tokenise() -> dict[str, Any]:
        tokenizer.padding_side = "right"  # ``Encoded.batch`` trims padding from the right
        enc = tokenizer(
            split.texts, truncation=True, max_length=max_length, padding="longest", return_tensors="pt"
        )
        return {
            "input_ids": enc["input_ids"],
            "lengths": enc["attention_mask"].sum(dim=1),
            "labels": torch.tensor(split.labels, dtype=torch.long),
        }

    if cache_dir is None:
        return Encoded(**tokenise())
    key = short_hash(split.texts, split.labels, tokenizer.name_or_path, len(tokenizer), max_length)
    return Encoded(**compute_once(cache_dir / f"tokens-{key}.pt", load_torch, atomic_torch_save, tokenise))
