"""Writing a study's report files: ``pareto.csv`` and ``report.html``, side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autodistill.report.console import write_csv
from autodistill.report.html import write_html_report
from autodistill.report.pareto import front_frame


def write_report(study: Any, reference: dict[str, Any], directory: Path) -> tuple[Path, Path]:
    """Write ``pareto.csv`` (the front) and ``report.html`` (every trial) into ``directory``."""
    csv_path = write_csv(front_frame(study), directory / "pareto.csv")
    return csv_path, write_html_report(study, reference, directory / "report.html")
