"""The Pareto front of a study as data: Optuna's ``study.best_trials`` computes dominance; we only tabulate.

Renderers (console table, CSV, later HTML) draw what this module returns and compute nothing.
"""

from __future__ import annotations

import warnings
from typing import Any

import pandas as pd

SETTING_COLUMNS = [
    "depth",
    "width",
    "heads",
    "ffn",
    "init",
    "lambda",
    "temperature",
    "learning_rate",
    "hidden_weight",
]
COST_COLUMNS = [
    "latency_ms",
    "latency_p95_ms",
    "size_mb",
    "params",
    "params_no_embeddings",
    "peak_memory_mb",
]


def quality_metric(study: Any) -> tuple[str, str]:
    """The study's quality objective and its direction, as the search recorded them from its task
    (studies written before tasks existed were classification: accuracy, maximised)."""
    recorded = study.user_attrs.get("quality_metric") or {}
    return recorded.get("name", "accuracy"), recorded.get("direction", "maximize")


def metric_columns(study: Any) -> list[str]:
    return [quality_metric(study)[0], *COST_COLUMNS]


def trial_row(trial: Any, metrics_shown: list[str]) -> dict[str, Any]:
    """One trial's settings, metrics and bookkeeping, from what the objective stored on it."""
    settings = trial.user_attrs.get("settings", {})
    metrics = trial.user_attrs.get("metrics", {})
    return {
        "trial": trial.number,
        "state": trial.state.name,
        **{c: settings.get(c) for c in SETTING_COLUMNS},
        **{c: metrics.get(c) for c in metrics_shown},
        "mlflow_run_id": trial.user_attrs.get("mlflow_run_id"),
        "fail_reason": trial.user_attrs.get("fail_reason"),
        "prune_reason": trial.user_attrs.get("prune_reason"),
    }


def front_frame(study: Any) -> pd.DataFrame:
    """The non-dominated trials (feasible ones, when the study has constraints), best quality first."""
    metric, direction = quality_metric(study)
    shown = metric_columns(study)
    rows = [trial_row(t, shown) for t in study.best_trials]
    frame = pd.DataFrame(rows, columns=["trial", "state", *SETTING_COLUMNS, *shown, "mlflow_run_id"])
    return frame.sort_values(
        [metric, "latency_ms"], ascending=[direction == "minimize", True], ignore_index=True
    )


def trials_frame(study: Any) -> pd.DataFrame:
    """Every trial of the study, with a column saying which are on the front."""
    front = {t.number for t in study.best_trials}
    shown = metric_columns(study)
    frame = pd.DataFrame([trial_row(t, shown) for t in study.get_trials(deepcopy=False)])
    if not frame.empty:
        frame["on_front"] = frame["trial"].isin(front)
    return frame


def importances(study: Any) -> dict[str, dict[str, float]]:
    """Per objective, how much each searched parameter mattered (Optuna's default importance evaluator).

    Empty for an objective when there are too few completed trials or nothing varied.
    """
    import optuna
    from optuna.study import StudyDirection

    objectives = study.user_attrs.get("objectives") or [
        f"objective {i}" for i in range(len(study.directions))
    ]
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    result: dict[str, dict[str, float]] = {}
    for i, (name, direction) in enumerate(zip(objectives, study.directions, strict=True)):
        # The evaluator scores parameters for reaching *low* values: flip objectives we maximise.
        sign = -1.0 if direction == StudyDirection.MAXIMIZE else 1.0
        try:
            if len(complete) < 2:
                raise ValueError("fewer than two completed trials")
            with warnings.catch_warnings():  # it warns that it ranks for low values: we flipped the sign
                warnings.simplefilter("ignore", UserWarning)
                scores = optuna.importance.get_param_importances(study, target=_objective_target(i, sign))
        except (ValueError, RuntimeError):
            scores = {}
        result[name] = dict(scores)
    return result


def _objective_target(index: int, sign: float) -> Any:
    def target(trial: Any) -> float:
        return float(sign * trial.values[index])

    return target
