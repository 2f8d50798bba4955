"""Render the front: a console table and ``pareto.csv``. Only draws what ``pareto`` computed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

CONSOLE_COLUMNS = {
    "trial": "trial",
    "depth": "depth",
    "width": "width",
    "init": "init",
    "lambda": "λ",
    "temperature": "T",
    "accuracy": "accuracy",
    "latency_ms": "p50 ms",
    "size_mb": "size MB",
    "params": "params M",
}


def console_table(front: pd.DataFrame, reference: dict[str, Any] | None = None) -> str:
    """The front as a fixed-width table, with the teacher as a reference row when given."""
    table = front[list(CONSOLE_COLUMNS)].copy()
    if reference:
        teacher = {c: reference.get(c) for c in CONSOLE_COLUMNS} | {
            "trial": "teacher",
            "init": "",
            "lambda": None,
            "temperature": None,
        }
        table = pd.concat([table, pd.DataFrame([teacher])], ignore_index=True)
    table["params"] = table["params"].astype(float) / 1e6
    table = table.rename(columns=CONSOLE_COLUMNS)
    formats = {
        "λ": "{:.2f}",
        "T": "{:.2f}",
        "accuracy": "{:.4f}",
        "p50 ms": "{:.2f}",
        "size MB": "{:.1f}",
        "params M": "{:.2f}",
    }
    for column, fmt in formats.items():
        table[column] = table[column].map(lambda v, fmt=fmt: "" if v is None or pd.isna(v) else fmt.format(v))
    return table.to_string(index=False)


def write_csv(front: pd.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".csv.tmp")
    front.to_csv(tmp, index=False)
    tmp.replace(path)
    return path
