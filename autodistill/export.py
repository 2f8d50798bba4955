"""Export a student as a Hugging Face model directory (and optionally ONNX) that loads anywhere.

The directory holds safetensors weights, the config with ``id2label``, the teacher's tokenizer, a
model card (README.md) with the trial's settings and measured metrics, and ``model.onnx`` on request,
checked against torch. It is written beside its destination and renamed into place when complete.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import warnings
from pathlib import Path
from typing import Any

from autodistill.locations import swap_into_place

ONNX_TOLERANCE = 1e-4


def model_card(title: str, settings: dict[str, Any], metrics: dict[str, Any], facts: dict[str, Any]) -> str:
    rows = "\n".join(f"| {k} | {v} |" for k, v in {**settings, **facts}.items())
    measured = "\n".join(f"| {k} | {v:.6g} |" for k, v in metrics.items() if isinstance(v, int | float))
    return f"""---
library_name: transformers
pipeline_tag: text-classification
tags: [autodistill, distillation]
---

# {title}

A student distilled by autodistill with the Hinton loss
(1-λ)·CE(labels) + λ·T²·KL(teacher_T ‖ student_T).

```python
from transformers import AutoModelForSequenceClassification, AutoTokenizer
model = AutoModelForSequenceClassification.from_pretrained("PATH")
tokenizer = AutoTokenizer.from_pretrained("PATH")
```

## Settings

| setting | value |
| --- | --- |
{rows}

## Measured

| metric | value |
| --- | --- |
{measured}
"""


def export_onnx(model: Any, path: Path, sequence_length: int) -> float:
    """Write ``model`` as ONNX (dynamic batch and sequence) and return the largest |ONNX - torch| logit gap."""
    import numpy as np
    import onnxruntime
    import torch

    model = model.eval().to("cpu")
    vocab = model.config.vocab_size
    ids = torch.randint(
        min(1000, vocab - 1), vocab, (2, sequence_length), generator=torch.Generator().manual_seed(0)
    )
    mask = torch.ones_like(ids)
    mask[1, sequence_length // 2 :] = 0  # a padded row checks the mask path too
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):  # the exporter narrates
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (ids, mask),
            str(path),
            input_names=["input_ids", "attention_mask"],
            output_names=["logits"],
            dynamic_shapes=({0: "batch", 1: "sequence"}, {0: "batch", 1: "sequence"}),
            dynamo=True,
            external_data=False,  # one self-contained file
        )
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    check_ids = ids[:, : max(2, sequence_length - 3)]
    check_mask = mask[:, : check_ids.shape[1]]
    onnx_logits = session.run(None, {"input_ids": check_ids.numpy(), "attention_mask": check_mask.numpy()})[0]
    with torch.no_grad():
        torch_logits = model(input_ids=check_ids, attention_mask=check_mask).logits.numpy()
    return float(np.abs(onnx_logits - torch_logits).max())


def write_export(
    model: Any, tokenizer: Any, to: Path, card: str, facts: dict[str, Any], onnx: bool, sequence_length: int
) -> dict[str, Any]:
    """Write the model directory atomically; returns what was written (and the ONNX gap)."""
    tmp = to.with_name(f".{to.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.to("cpu").save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    (tmp / "README.md").write_text(card, encoding="utf-8")
    result: dict[str, Any] = {"path": str(to.resolve())}
    if onnx:
        gap = export_onnx(model, tmp / "model.onnx", sequence_length)
        if gap > ONNX_TOLERANCE:
            shutil.rmtree(tmp, ignore_errors=True)
            raise RuntimeError(
                f"ONNX logits differ from torch by {gap:.2e} (> {ONNX_TOLERANCE}); nothing written"
            )
        result["onnx_max_abs_diff"] = gap
    (tmp / "autodistill.json").write_text(json.dumps({**facts, **result}, indent=2, default=str))
    swap_into_place(tmp, to, "autodistill.json", "an autodistill export")
    return result


def export_trial(study: Any, trial: Any, to: Path, onnx: bool) -> dict[str, Any]:
    """Export the student a search kept for ``trial`` (front students are saved at trial time)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from autodistill.studies import StudyError

    student_dir = trial.user_attrs.get("student_dir")
    if not student_dir or not Path(student_dir).is_dir():
        raise StudyError(
            f"TRIAL {trial.number}: its student was not kept (only students on the front are saved); "
            f"pick a front trial from pareto.csv, or retrain it with `autodistill train {trial.number}`"
        )
    space = study.user_attrs.get("space") or {}
    model = AutoModelForSequenceClassification.from_pretrained(student_dir)
    tokenizer = AutoTokenizer.from_pretrained(space["teacher"])
    settings = trial.user_attrs.get("settings", {})
    metrics = trial.user_attrs.get("metrics", {})
    facts = {
        "study": study.study_name,
        "trial": trial.number,
        "teacher": space.get("teacher"),
        "dataset": (space.get("dataset") or {}).get("path"),
        "steps": (space.get("train") or {}).get("steps"),
        "mlflow_run_id": trial.user_attrs.get("mlflow_run_id"),
    }
    card = model_card(
        f"autodistill student: study {study.study_name}, trial {trial.number}", settings, metrics, facts
    )
    seq = (space.get("latency") or {}).get("sequence_length", 64)
    return write_export(
        model, tokenizer, to, card, {**facts, "settings": settings, "metrics": metrics}, onnx, seq
    )
