"""The model card of an exported classification student."""

from __future__ import annotations

from typing import Any


def model_card(title: str, settings: dict[str, Any], metrics: dict[str, Any], facts: dict[str, Any]) -> str:
    """A Hugging Face model card (README.md) for a classification student: usage, settings, measurements."""
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
