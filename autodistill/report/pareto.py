"""The Pareto front of a study as data: Optuna's ``study.best_trials`` computes dominance; we only tabulate.

Renderers (console table, CSV, later HTML) draw what this module returns and compute nothing.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from autodistill.store.studies import teacher_reference, test_scores

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
    "attention_weight",
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
    """The quality metric on validation examples, the same on the test examples (front students
    only), then the costs, and any other metric an objective or constraint reads (``prefill_ms``,
    ``latency_fraction``)."""
    metric = quality_metric(study)[0]
    read = [*(study.user_attrs.get("objectives") or []), *(study.user_attrs.get("constraints") or {})]
    others = [m for m in dict.fromkeys(read) if m not in (metric, *COST_COLUMNS)]
    return [metric, f"test_{metric}", *COST_COLUMNS, *others]


def trial_row(trial: Any, metrics_shown: list[str], tested: dict[int, dict[str, float]]) -> dict[str, Any]:
    """One trial's settings, metrics and bookkeeping, from what the objective stored on it, with its
    test score when it has one (``tested``: by trial number)."""
    settings = trial.user_attrs.get("settings", {})
    metrics = {**trial.user_attrs.get("metrics", {}), **tested.get(trial.number, {})}
    return {
        "trial": trial.number,
        "state": trial.state.name,
        **{c: settings.get(c) for c in SETTING_COLUMNS},
        **{c: metrics.get(c) for c in metrics_shown},
        "latency_machine": (trial.user_attrs.get("latency_measured_with") or {}).get("machine"),
        "mlflow_run_id": trial.user_attrs.get("mlflow_run_id"),
        "fail_reason": trial.user_attrs.get("fail_reason"),
        "prune_reason": trial.user_attrs.get("prune_reason"),
    }


def front_frame(study: Any, front: list[Any] | None = None) -> pd.DataFrame:
    """The non-dominated trials (feasible ones, when the study has constraints), best quality first;
    ``front``: such trials computed elsewhere (``autodistill retime``'s, on new latencies)."""
    metric, direction = quality_metric(study)
    shown = metric_columns(study)
    tested = test_scores(study)
    rows = [trial_row(t, shown, tested) for t in (study.best_trials if front is None else front)]
    columns = ["trial", "state", *SETTING_COLUMNS, *shown, "latency_machine", "mlflow_run_id"]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.sort_values(
        [metric, "latency_ms"], ascending=[direction == "minimize", True], ignore_index=True
    )


def latency_machines(frame: pd.DataFrame) -> set[str]:
    """The machines that timed the latencies of ``frame``'s trials (none for studies from before
    latencies named their machine)."""
    if "latency_machine" not in frame:
        return set()
    return {m for m in frame["latency_machine"] if isinstance(m, str)}


def front_reference(study: Any, front: pd.DataFrame) -> dict[str, Any]:
    """The teacher's reference figures to set beside ``front``: timed on the machine that timed the
    front's latencies, when that is one machine."""
    return teacher_reference(study, latency_machines(front))


def trials_frame(study: Any) -> pd.DataFrame:
    """Every trial of the study, with a column saying which are on the front."""
    front = {t.number for t in study.best_trials}
    shown = metric_columns(study)
    tested = test_scores(study)
    frame = pd.DataFrame([trial_row(t, shown, tested) for t in study.get_trials(deepcopy=False)])
    if not frame.empty:
        frame["on_front"] = frame["trial"].isin(front)
    return frame


# Below this many complete trials the evaluator's forest mostly ranks noise: the chart says so instead
# of drawing bars that look like findings.
MIN_TRIALS_FOR_IMPORTANCE = 10
# All a student's graph depends on: size and latency follow from these alone, whatever the training.
SHAPE_PARAMS = ("depth", "width", "init")


@dataclass(frozen=True)
class Importances(Mapping[str, dict[str, float]]):
    """Per objective, how much each searched parameter mattered: a mapping objective → {param: score}.

    Cost objectives (every objective but the quality metric) are ranked over ``shape_params`` only;
    ``hidden`` says why nothing is ranked (too few complete trials), and then the mapping is empty.
    """

    scores: dict[str, dict[str, float]]
    complete: int  # complete trials in the study
    cost_objectives: tuple[str, ...] = ()
    shape_params: tuple[str, ...] = ()
    hidden: str | None = None

    def __getitem__(self, objective: str) -> dict[str, float]:
        return self.scores[objective]

    def __iter__(self) -> Iterator[str]:
        return iter(self.scores)

    def __len__(self) -> int:
        return len(self.scores)


def importances(study: Any) -> Importances:
    """Per objective, how much each searched parameter mattered (Optuna's fANOVA evaluator, seeded so a
    study always draws the same chart): the quality metric over every parameter, each cost objective
    over the shape parameters the study searched (nothing else can move a size or a latency).

    Hidden below ``MIN_TRIALS_FOR_IMPORTANCE`` complete trials; empty for an objective when nothing
    it may depend on varied.
    """
    import optuna

    objectives = study.user_attrs.get("objectives") or [
        f"objective {i}" for i in range(len(study.directions))
    ]
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    costs = tuple(o for o in objectives if o != quality_metric(study)[0])
    # A conditional shape parameter (width, absent for teacher-layers students) would drop the trials
    # without it: only those every complete trial has are ranked, as Optuna does by default.
    shape = tuple(p for p in SHAPE_PARAMS if complete and all(p in t.params for t in complete))
    if len(complete) < MIN_TRIALS_FOR_IMPORTANCE:
        hidden = (
            f"importances need ≥ {MIN_TRIALS_FOR_IMPORTANCE} complete trials; this study has {len(complete)}"
        )
        return Importances({}, len(complete), costs, shape, hidden)
    scores = {
        name: _ranked(study, i, direction, list(shape) if name in costs else None)
        for i, (name, direction) in enumerate(zip(objectives, study.directions, strict=True))
    }
    return Importances(scores, len(complete), costs, shape)


def _ranked(study: Any, index: int, direction: Any, params: list[str] | None) -> dict[str, float]:
    """One objective's importances over ``params`` (None: every parameter); {} when nothing varied."""
    import optuna
    from optuna.study import StudyDirection

    if params == []:
        return {}
    # The evaluator scores parameters for reaching *low* values: flip objectives we maximise.
    sign = -1.0 if direction == StudyDirection.MAXIMIZE else 1.0
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
    try:
        with warnings.catch_warnings():  # it warns that it ranks for low values: we flipped the sign
            warnings.simplefilter("ignore", UserWarning)
            scores = optuna.importance.get_param_importances(
                study, evaluator=evaluator, params=params, target=_objective_target(index, sign)
            )
    except (ValueError, RuntimeError):
        return {}
    return dict(scores)


def _objective_target(index: int, sign: float) -> Any:
    def target(trial: Any) -> float:
        return float(sign * trial.values[index])

    return target
