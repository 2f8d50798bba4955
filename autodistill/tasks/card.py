"""The model card (README.md) of an exported student; each task says what its model is and how to use it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class CardText:
    """What differs between tasks' model cards."""

    pipeline_tag: str  # the Hugging Face hub's task name
    loss: str  # one sentence on how the student was distilled
    usage: str  # Python that loads the student (PATH stands for its directory)


def model_card(
    text: CardText, title: str, settings: dict[str, Any], metrics: dict[str, Any], facts: dict[str, Any]
) -> str:
    """Usage, the trial's settings and where it came from, and every measured number."""
    rows = "\n".join(f"| {k} | {v} |" for k, v in {**settings, **facts}.items())
    measured = "\n".join(f"| {k} | {v:.6g} |" for k, v in metrics.items() if isinstance(v, int | float))
    return f"""---
library_name: transformers
pipeline_tag: {text.pipeline_tag}
tags: [autodistill, distillation]
---

# {title}

{text.loss}

```python
{text.usage}
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
