"""Scoring a classifier: logits for every example, and accuracy against the labels."""

from __future__ import annotations

from typing import Any

import torch

from autodistill.tasks.classification.encoding import Encoded
from autodistill.util.devices import autocast, to_device


@torch.no_grad()
def predict_logits(model: Any, data: Encoded, batch_size: int, device: str) -> torch.Tensor:
    """Logits [N, classes] float32 for every example, batched by similar length to cut padding; the
    forward passes run under ``autocast`` (bfloat16 on a GPU when the job enables it)."""
    model.eval().to(device)
    order = torch.argsort(data.lengths, descending=True)
    out = torch.empty(len(data), model.config.num_labels)
    for start in range(0, len(data), batch_size):
        index = order[start : start + batch_size]
        batch = to_device(data.batch(index), device)
        with autocast(device):
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        out[index] = logits.float().cpu()
    return out


def accuracy(model: Any, data: Encoded, batch_size: int, device: str) -> float:
    """Share of ``data``'s examples whose label is the model's top class."""
    logits = predict_logits(model, data, batch_size, device)
    return float((logits.argmax(dim=-1) == data.labels).float().mean())


def macro_f1(model: Any, data: Encoded, batch_size: int, device: str) -> float:
    """The mean over classes of each class's F1 score: a rare class weighs as much as a common one.

    Classes that appear neither among the labels nor among the predictions are left out (their F1 is
    undefined); a class that is predicted but never true, or true but never predicted, scores 0.
    """
    predicted = predict_logits(model, data, batch_size, device).argmax(dim=-1)
    labels = data.labels
    scores = []
    for c in torch.unique(torch.cat([labels, predicted])).tolist():
        true_positive = float(((predicted == c) & (labels == c)).sum())
        predicted_c, actual_c = float((predicted == c).sum()), float((labels == c).sum())
        scores.append(2 * true_positive / (predicted_c + actual_c))
    return float(sum(scores) / len(scores))
