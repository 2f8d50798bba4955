"""The front as data (``pareto``), and its renderings: the console table, pareto.csv, report.html."""

from autodistill.report.console import console_table, write_csv
from autodistill.report.files import write_report
from autodistill.report.html import render, write_html_report
from autodistill.report.pareto import (
    front_frame,
    front_reference,
    importances,
    latency_machines,
    quality_metric,
    trials_frame,
)

__all__ = [
    "console_table",
    "front_frame",
    "front_reference",
    "importances",
    "latency_machines",
    "quality_metric",
    "render",
    "trials_frame",
    "write_csv",
    "write_html_report",
    "write_report",
]
