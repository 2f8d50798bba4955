"""The Pareto report: one self-contained HTML file (plotly inlined), drawn from ``pareto``'s data.

The page template lives in ``dashboards/report.html``; this module only fills it.
"""

from __future__ import annotations

import html
from pathlib import Path
from string import Template
from typing import Any

import pandas as pd

from autodistill.report.pareto import Importances, importances, latency_machines, quality_metric, trials_frame
from autodistill.store.studies import samples
from autodistill.util.files import atomic_text_save


def _template() -> str:
    """The page template: dashboards/report.html in a checkout, autodistill.dashboards when installed."""
    beside = Path(__file__).resolve().parents[2] / "dashboards" / "report.html"
    if beside.is_file():
        return beside.read_text(encoding="utf-8")
    from importlib.resources import files

    return files("autodistill.dashboards").joinpath("report.html").read_text(encoding="utf-8")


HOVER_FIELDS = [
    "trial",
    "depth",
    "width",
    "heads",
    "init",
    "lambda",
    "temperature",
    "learning_rate",
    "hidden_weight",
    "attention_weight",
    "steps",
    "mlflow_run_id",
]
COST_AXES = {
    "latency_ms": "batch-1 CPU latency, p50 (ms)",
    "size_mb": "size (MB, safetensors)",
}


def _hover(frame: pd.DataFrame, metric: str) -> tuple[list[list[Any]], str]:
    # the test score and a sample of what the student produces (front students only)
    fields = [*HOVER_FIELDS, f"test_{metric}", "sample"]
    lines = [f"{name}: %{{customdata[{i}]}}" for i, name in enumerate(fields)]
    shown = frame[fields].astype(object).where(frame[fields].notna(), "")
    shown = shown.map(lambda v: f"{v:.4g}" if isinstance(v, float) else v)
    return shown.values.tolist(), (
        "<br>".join(lines) + f"<br>{metric} %{{y:.4f}}<br>%{{xaxis.title.text}}: %{{x:.3g}}<extra></extra>"
    )


def _wrapped(text: str, width: int = 60, limit: int = 300) -> str:
    """Text for a hover box: HTML-escaped, cut at ``limit`` characters, broken into lines."""
    import textwrap

    text = text if len(text) <= limit else text[:limit] + "…"
    return "<br>".join(html.escape(line) for line in textwrap.wrap(text, width))


def tradeoff_figure(trials: pd.DataFrame, reference: dict[str, Any], x: str, metric: str) -> Any:
    import plotly.graph_objects as go

    fig = go.Figure()
    complete = trials[trials["state"] == "COMPLETE"]
    for name, rows, style in (
        ("dominated", complete[~complete["on_front"]], {"opacity": 0.3, "size": 9, "color": "#888"}),
        ("Pareto front", complete[complete["on_front"]], {"opacity": 1.0, "size": 13, "color": "#1f6feb"}),
    ):
        customdata, template = _hover(rows, metric)
        fig.add_trace(
            go.Scatter(
                x=rows[x],
                y=rows[metric],
                mode="markers",
                name=name,
                customdata=customdata,
                hovertemplate=template,
                marker={"size": style["size"], "color": style["color"], "opacity": style["opacity"]},
            )
        )
    if reference:
        fig.add_trace(
            go.Scatter(
                x=[reference.get(x)],
                y=[reference.get(metric)],
                mode="markers",
                name="teacher",
                marker={"symbol": "star", "size": 18, "color": "#d4a017"},
                hovertemplate=f"teacher<br>{metric} %{{y:.4f}}<br>%{{x:.3g}}<extra></extra>",
            )
        )
    fig.update_layout(
        title=f"{metric} vs {COST_AXES[x].split(' (')[0]}",
        xaxis_title=COST_AXES[x],
        yaxis_title=f"validation {metric}",
        height=440,
        margin={"t": 50, "r": 20},
        legend={"orientation": "h", "y": -0.2},
    )
    fig.update_xaxes(type="log")
    return fig


def importance_figure(scores: Importances) -> Any:
    """One bar chart per objective; the chart says what it ranked over, or why it shows nothing."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    if scores.hidden:  # too few trials: bars would rank noise
        fig = go.Figure()
        fig.add_annotation(text=scores.hidden, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False)
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False)
        fig.update_layout(height=160, margin={"t": 20, "b": 20})
        return fig
    titles = [f"{o} (shape only)" if o in scores.cost_objectives else o for o in scores]
    fig = make_subplots(rows=1, cols=max(1, len(scores)), subplot_titles=titles or ["(no objectives)"])
    for col, values in enumerate(scores.values(), start=1):
        names = list(values)[::-1]
        fig.add_trace(
            go.Bar(x=[values[n] for n in names], y=names, orientation="h", showlegend=False), 1, col
        )
        if not values:
            axis = "" if col == 1 else str(col)
            fig.add_annotation(
                text="nothing to rank",
                xref=f"x{axis} domain",
                yref=f"y{axis} domain",
                x=0.5,
                y=0.5,
                showarrow=False,
            )
    fig.update_layout(
        height=340, margin={"t": 80}, title={"text": _importance_caption(scores), "font": {"size": 13}}
    )
    return fig


def _importance_caption(scores: Importances) -> str:
    """What the bars rank over: the quality metric over every setting, costs over the shape alone."""
    if not scores.cost_objectives:
        return f"which settings mattered ({scores.complete} complete trials)"
    over = (
        f"so are ranked over {', '.join(scores.shape_params)}"
        if scores.shape_params
        else "which this study did not search"
    )
    return (
        f"which settings mattered ({scores.complete} complete trials); "
        f"{', '.join(scores.cost_objectives)} depend only on the shape, {over}"
    )


def history_figure(trials: pd.DataFrame, objectives: list[str]) -> Any:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    complete = trials[trials["state"] == "COMPLETE"]
    fig = make_subplots(
        rows=len(objectives), cols=1, shared_xaxes=True, subplot_titles=objectives, vertical_spacing=0.08
    )
    for row, name in enumerate(objectives, start=1):
        colors = ["#1f6feb" if f else "#999" for f in complete["on_front"]]
        fig.add_trace(
            go.Scatter(
                x=complete["trial"],
                y=complete[name],
                mode="markers",
                showlegend=False,
                marker={"color": colors, "size": 9},
            ),
            row,
            1,
        )
    fig.update_layout(height=220 * len(objectives), margin={"t": 40})
    fig.update_xaxes(title_text="trial", row=len(objectives), col=1)
    return fig


def trials_table(trials: pd.DataFrame) -> str:
    shown = trials.drop(columns=["mlflow_run_id", "steps", "sample"], errors="ignore").astype(object)
    shown = shown.where(shown.notna(), None).replace({None: ""})
    rows = shown.to_html(
        table_id="trials", index=False, na_rep="", float_format=lambda v: f"{v:.4g}", border=0
    )
    return rows


def timed_on(trials: pd.DataFrame, reference: dict[str, Any]) -> str:
    """Where the latencies were timed: one machine named, or several counted (each trial's is in the table)."""
    machines = latency_machines(trials) | ({reference["machine"]} if reference.get("machine") else set())
    if len(machines) == 1:
        return f" Latencies timed on {next(iter(machines))}."
    if machines:
        return (
            f" Latencies timed on {len(machines)} machines: compare them only within one (latency_machine)."
        )
    return ""


def render(study: Any, reference: dict[str, Any]) -> str:
    """The report page for ``study`` as one HTML string."""
    trials = trials_frame(study)
    metric = quality_metric(study)[0]
    steps = (study.user_attrs.get("space") or {}).get("train", {}).get("steps")
    objectives = list(study.user_attrs.get("objectives") or [])
    if trials.empty:
        trials = pd.DataFrame(
            columns=["trial", "state", "on_front", *HOVER_FIELDS, metric, f"test_{metric}", *COST_AXES]
        )
    trials["steps"] = steps
    shown = samples(study)  # e.g. a causal LM's generated text: wrapped for the hover box
    trials["sample"] = trials["trial"].map(lambda n: _wrapped(" ".join(shown.get(n, {}).values())))
    trials["on_front"] = trials["on_front"].astype(bool)
    figures = [tradeoff_figure(trials, reference, x, metric) for x in COST_AXES]
    scores = importances(study)
    figs = [*figures, importance_figure(scores), history_figure(trials, objectives or [metric])]
    ids = ["fig-latency", "fig-size", "fig-importance", "fig-history"]
    # plotly.js is inlined once, with the first figure: the file opens with no server and no network.
    divs = [
        fig.to_html(
            full_html=False,
            include_plotlyjs=(i == 0),
            div_id=div_id,
            default_width="100%",
            config={"responsive": True},
        )
        for i, (fig, div_id) in enumerate(zip(figs, ids, strict=True))
    ]
    n_complete = int((trials["state"] == "COMPLETE").sum())
    # Validation figures chose the front; the test figures (front students only) were used for nothing.
    summary = (
        f"{len(trials)} trials ({n_complete} complete), {int(trials['on_front'].sum())} on the front; "
        f"objectives: {', '.join(objectives)}; teacher {metric} {reference.get(metric, float('nan')):.4f} "
        f"(test {reference.get(f'test_{metric}', float('nan')):.4f}), "
        f"latency {reference.get('latency_ms', float('nan')):.2f} ms, size {reference.get('size_mb', float('nan')):.1f} MB."
        + timed_on(trials, reference)
    )
    table = trials_table(trials)
    return Template(_template()).substitute(
        title=html.escape(f"autodistill report — study {study.study_name}"),
        summary=html.escape(summary),
        tradeoff_figures="".join(f"<div>{d}</div>" for d in divs[:2]),
        importance_figure=divs[2],
        history_figure=divs[3],
        trials_table=table,
    )


def write_html_report(study: Any, reference: dict[str, Any], path: Path) -> Path:
    """Write the report atomically next to the study's other outputs."""
    return atomic_text_save(render(study, reference), path)
