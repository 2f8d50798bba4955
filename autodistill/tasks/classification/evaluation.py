"""Scoring a classifier: logits for every example, and accuracy against the labels."""

from __future__ import annotations

from typing import Any

import torch

from autodistill.tasks.classification.encoding import Encoded


@torch.no_grad()
def predict_logits(model: Any, data: Encoded, batch_size: int, device: str) -> torch.Tensor:
    """Logits [N, classes] for every example, batched by similar length to cut padding."""
    model.eval().to(device)
    order = torch.argsort(data.lengths, descending=True)
    out = torch.empty(len(data), model.config.num_labels)
    for start in range(0, len(data), batch_size):
        index = order[start : start + batch_size]
        batch = data.batch(index)
        logits = model(
            input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device)
        ).logits
        out[index] = logits.float().cpu()
    return out


def accuracy(model: Any, data: Encoded, batch_size: int, device: str) -> float:
    """Share of ``data``'s examples whose label is the model's top class."""
    logits = predict_logits(model, data, batch_size, device)
    return float((logits.argmax(dim=-1) == data.labels).float().mean())
