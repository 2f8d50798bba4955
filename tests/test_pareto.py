"""The front comes from Optuna's best_trials; checked against a brute-force oracle on real studies."""

from __future__ import annotations

import optuna
from hypothesis import given, settings
from hypothesis import strategies as st

from autodistill.report import console_table, write_csv
from autodistill.report.pareto import front_frame, trials_frame

DIRECTIONS = ["maximize", "minimize", "minimize"]


def add(
    study: optuna.Study, number: int, acc: float, lat: float, size: float, feasible: bool | None = None
) -> None:
    trial = study.ask()
    trial.set_user_attr(
        "settings",
        {
            "depth": 1 + number % 3,
            "width": 64,
            "heads": 1,
            "ffn": 256,
            "lambda": 0.5,
            "temperature": 2.0,
            "learning_rate": 1e-3,
        },
    )
    trial.set_user_attr("metrics", {"accuracy": acc, "latency_ms": lat, "size_mb": size, "params": 1e6})
    trial.set_user_attr("mlflow_run_id", f"run{number}")
    if feasible is not None:
        trial.set_constraint("latency_ms_max", -1.0 if feasible else 1.0)
    study.tell(trial, [acc, lat, size])


def dominated(p: tuple[float, float, float], q: tuple[float, float, float]) -> bool:
    """q dominates p: no worse on all (accuracy up, latency and size down), better on one."""
    no_worse = q[0] >= p[0] and q[1] <= p[1] and q[2] <= p[2]
    return no_worse and q != p


points = st.lists(
    st.tuples(
        st.sampled_from([0.5, 0.6, 0.7, 0.8]), st.sampled_from([1.0, 2.0, 3.0]), st.sampled_from([10.0, 20.0])
    ),
    min_size=1,
    max_size=15,
)


@settings(max_examples=40, deadline=None)
@given(points)
def test_front_is_exactly_the_non_dominated_set(pts: list[tuple[float, float, float]]) -> None:
    study = optuna.create_study(directions=DIRECTIONS)
    for i, p in enumerate(pts):
        add(study, i, *p)
    expected = {i for i, p in enumerate(pts) if not any(dominated(p, q) for q in pts)}
    front = front_frame(study)
    assert set(front["trial"]) == expected
    assert list(front["accuracy"]) == sorted(front["accuracy"], reverse=True)


def test_infeasible_trials_are_not_on_the_front() -> None:
    study = optuna.create_study(directions=DIRECTIONS)
    add(study, 0, 0.9, 1.0, 10.0, feasible=False)  # would dominate everything
    add(study, 1, 0.8, 2.0, 20.0, feasible=True)
    assert list(front_frame(study)["trial"]) == [1]


def test_tables_and_csv(tmp_path) -> None:
    study = optuna.create_study(directions=DIRECTIONS)
    add(study, 0, 0.8, 2.0, 20.0)
    add(study, 1, 0.7, 3.0, 30.0)  # dominated
    failed = study.ask()
    study.tell(failed, state=optuna.trial.TrialState.FAIL)
    all_trials = trials_frame(study)
    assert list(all_trials["state"]) == ["COMPLETE", "COMPLETE", "FAIL"]
    assert list(all_trials["on_front"]) == [True, False, False]
    front = front_frame(study)
    path = write_csv(front, tmp_path / "pareto.csv")
    assert path.read_text().splitlines()[0].startswith("trial,state,depth,width")
    text = console_table(
        front,
        {"accuracy": 0.9, "latency_ms": 9.0, "size_mb": 90.0, "params": 2.2e7, "depth": 6, "width": 384},
    )
    assert "teacher" in text and "0.8000" in text and "22.00" in text
