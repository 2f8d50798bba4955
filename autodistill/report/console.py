"""Render the front: a console table and ``pareto.csv``. Only draws what ``pareto`` computed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from autodistill.report.pareto import latency_machines
from autodistill.util.files import atomic_write

SETTINGS_SHOWN = {
    "trial": "trial",
    "depth": "depth",
    "width": "width",
    "init": "init",
    "lambda": "λ",
    "temperature": "T",
}
COSTS_SHOWN = {"latency_ms": "p50 ms", "size_mb": "size MB", "params": "params M"}


def console_table(
    front: pd.DataFrame, reference: dict[str, Any] | None = None, metric: str = "accuracy"
) -> str:
    """The front as a fixed-width table, with the teacher as a reference row when given; ``metric`` is
    the study's quality objective (``pareto.quality_metric``)."""
    columns = {**SETTINGS_SHOWN, metric: metric, f"test_{metric}": f"test {metric}", **COSTS_SHOWN}
    if "latency_fraction" in front:  # the study timed each shape beside the teacher
        columns["latency_fraction"] = "× teacher"
    machines = timing_machines(front, reference)
    if len(machines) > 1:  # latencies from different machines: each row says where it was timed
        columns["latency_machine"] = "timed on"
    table = front[list(columns)].copy()
    if reference:
        teacher = {c: reference.get("machine" if c == "latency_machine" else c) for c in columns} | {
            "trial": "teacher",
            "init": "",
            "lambda": None,
            "temperature": None,
        }
        table = pd.concat([table, pd.DataFrame([teacher])], ignore_index=True)
    table["params"] = table["params"].astype(float) / 1e6
    table = table.rename(columns=columns)
    formats = {
        "λ": "{:.2f}",
        "T": "{:.2f}",
        metric: "{:.4f}",
        f"test {metric}": "{:.4f}",
        "p50 ms": "{:.2f}",
        "size MB": "{:.1f}",
        "params M": "{:.2f}",
        "× teacher": "{:.3f}",
    }
    for column, fmt in formats.items():
        if column not in table:
            continue
        table[column] = table[column].map(lambda v, fmt=fmt: "" if v is None or pd.isna(v) else fmt.format(v))
    text = table.to_string(index=False)
    if len(machines) == 1:
        text += f"\nlatencies timed on {next(iter(machines))}"
    return text


def timing_machines(front: pd.DataFrame, reference: dict[str, Any] | None) -> set[str]:
    """The machines that timed the front's latencies and the teacher's."""
    machines = latency_machines(front)
    if reference and isinstance(reference.get("machine"), str):
        machines.add(reference["machine"])
    return machines


def write_csv(front: pd.DataFrame, path: Path) -> Path:
    return atomic_write(path, lambda tmp: front.to_csv(tmp, index=False))
