"""The report's "which settings mattered" claims nothing false: costs are ranked over the shape alone,
and nothing is ranked until the study has enough complete trials to tell a setting from noise."""

from __future__ import annotations

import random

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from autodistill.report.html import importance_figure
from autodistill.report.pareto import MIN_TRIALS_FOR_IMPORTANCE, importances

DISTRIBUTIONS = {
    "depth": IntDistribution(1, 4),
    "width": CategoricalDistribution([32, 64, 128]),
    "init": CategoricalDistribution(["random", "weight-select"]),
    "temperature": FloatDistribution(1.0, 4.0),
    "learning_rate": FloatDistribution(1e-4, 1e-3, log=True),
}
SHAPE = {"depth", "width", "init"}


def study_of(complete: int, failed: int = 0) -> optuna.Study:
    """A study whose size follows the width alone, latency the depth and width, accuracy the temperature."""
    study = optuna.create_study(directions=["maximize", "minimize", "minimize"])
    study.set_user_attr("objectives", ["accuracy", "latency_ms", "size_mb"])
    study.set_user_attr("quality_metric", {"name": "accuracy", "direction": "maximize"})
    draw = random.Random(0)
    for i in range(complete + failed):
        params = {
            "depth": draw.randint(1, 4),
            "width": draw.choice([32, 64, 128]),
            "init": draw.choice(["random", "weight-select"]),
            "temperature": draw.uniform(1.0, 4.0),
            "learning_rate": 10 ** draw.uniform(-4, -3),
        }
        values = [
            0.5 + 0.1 * params["temperature"],
            0.1 * params["depth"] * params["width"],
            params["width"] / 8,
        ]
        state = optuna.trial.TrialState.COMPLETE if i < complete else optuna.trial.TrialState.FAIL
        study.add_trial(
            optuna.trial.create_trial(
                params=params,
                distributions=DISTRIBUTIONS,
                values=values if state == optuna.trial.TrialState.COMPLETE else None,
                state=state,
            )
        )
    return study


def test_costs_are_ranked_over_the_shape_alone_and_quality_over_every_setting() -> None:
    scores = importances(study_of(complete=12))
    assert scores.hidden is None and scores.complete == 12
    assert scores.cost_objectives == ("latency_ms", "size_mb") and set(scores.shape_params) == SHAPE
    assert set(scores["size_mb"]) <= SHAPE and set(scores["latency_ms"]) <= SHAPE
    assert max(scores["size_mb"], key=scores["size_mb"].get) == "width"
    assert set(scores["accuracy"]) == set(DISTRIBUTIONS)  # training settings may move the quality
    assert max(scores["accuracy"], key=scores["accuracy"].get) == "temperature"
    caption = importance_figure(scores).layout.title.text
    assert "latency_ms, size_mb depend only on the shape" in caption and "depth, width, init" in caption


def test_below_the_minimum_the_result_and_the_chart_say_why_nothing_is_ranked() -> None:
    few = MIN_TRIALS_FOR_IMPORTANCE - 1
    scores = importances(study_of(complete=few, failed=3))  # failed trials do not count
    assert dict(scores) == {}
    assert (
        scores.hidden
        == f"importances need ≥ {MIN_TRIALS_FOR_IMPORTANCE} complete trials; this study has {few}"
    )
    figure = importance_figure(scores)
    assert not figure.data
    assert [a.text for a in figure.layout.annotations] == [scores.hidden]


def test_a_study_that_never_varied_the_shape_ranks_no_cost() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.set_user_attr("objectives", ["accuracy", "size_mb"])
    for i in range(MIN_TRIALS_FOR_IMPORTANCE):
        study.add_trial(
            optuna.trial.create_trial(
                params={"temperature": 1.0 + i / 4},
                distributions={"temperature": DISTRIBUTIONS["temperature"]},
                values=[0.5 + i / 100, 5.0 + (i % 2) / 100],  # measurement noise on one fixed shape
            )
        )
    scores = importances(study)
    assert scores["size_mb"] == {} and scores.shape_params == ()
    assert set(scores["accuracy"]) == {"temperature"}
    figure = importance_figure(scores)
    assert "nothing to rank" in [a.text for a in figure.layout.annotations]
    assert "which this study did not search" in figure.layout.title.text
