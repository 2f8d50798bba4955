"""`train --best N`'s choices, pure: which students are candidates, which one is registered."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from autodistill.deliver.choosing import (
    ChoiceError,
    LatencyBound,
    best_after_training,
    latency_bound,
    sampling_error,
    select_candidates,
    too_close_to_call,
)


@dataclass
class Trial:
    """A stand-in for an Optuna FrozenTrial: a number and the metrics the search stored."""

    number: int
    user_attrs: dict[str, Any] = field(default_factory=dict)


def trial(number: int, latency_ms: float, **metrics: float) -> Trial:
    return Trial(number, {"metrics": {"latency_ms": latency_ms, **metrics}})


FRONT = [
    trial(0, 1.0, accuracy=0.70, perplexity=30.0),
    trial(1, 2.0, accuracy=0.80, perplexity=20.0),
    trial(2, 3.0, accuracy=0.90, perplexity=10.0),  # best, but the slowest
    trial(3, 0.5, accuracy=0.60, perplexity=40.0),  # the fastest
    trial(4, 2.0, accuracy=0.85, perplexity=15.0),
]


def ms(limit: float) -> LatencyBound:
    return LatencyBound("latency_ms", limit, f"--max-latency-ms {limit:g}")


def numbers(trials: list[Any]) -> list[int]:
    return [t.number for t in trials]


def test_the_n_best_under_the_bound_best_first() -> None:
    assert numbers(select_candidates(FRONT, 2, ms(2.0), "accuracy", "maximize")) == [4, 1]
    assert numbers(select_candidates(FRONT, 3, ms(2.5), "accuracy", "maximize")) == [4, 1, 0]
    assert numbers(select_candidates(FRONT, 9, ms(10.0), "accuracy", "maximize")) == [2, 4, 1, 0, 3]


def test_the_bound_is_inclusive_and_fewer_than_n_is_not_an_error() -> None:
    assert numbers(select_candidates(FRONT, 3, ms(1.0), "accuracy", "maximize")) == [0, 3]


def test_direction_is_respected() -> None:
    # perplexity: lower is better, so the same students rank in the same order as accuracy here
    assert numbers(select_candidates(FRONT, 2, ms(2.0), "perplexity", "minimize")) == [4, 1]
    # accuracy minimised (a direction that only tests the sign): the worst accuracy comes first
    assert numbers(select_candidates(FRONT, 2, ms(2.0), "accuracy", "minimize")) == [3, 0]


def test_ties_go_to_the_faster_then_the_earlier_trial() -> None:
    tied = [trial(5, 2.0, accuracy=0.8), trial(6, 1.0, accuracy=0.8), trial(7, 1.0, accuracy=0.8)]
    assert numbers(select_candidates(tied, 3, ms(5.0), "accuracy", "maximize")) == [6, 7, 5]


def test_nothing_under_the_bound_names_the_fastest_student() -> None:
    with pytest.raises(ChoiceError) as caught:
        select_candidates(FRONT, 2, ms(0.1), "accuracy", "maximize")
    assert str(caught.value) == (
        "--max-latency-ms 0.1: no student is that fast; the fastest, trial 3, takes 0.5 ms"
    )
    with pytest.raises(ChoiceError, match="no trial of the study completed"):
        select_candidates([], 2, ms(1.0), "accuracy", "maximize")


def test_the_latency_bound() -> None:
    assert latency_bound(3.0, None, 8.0, False) == ms(3.0)
    quarter = latency_bound(None, 0.25, 8.0, False)  # a quarter of the teacher's latency, in ms
    assert (quarter.metric, quarter.limit) == ("latency_ms", 2.0)
    assert quarter.flag == "--max-latency-fraction 0.25 (2 ms of the teacher's 8 ms)"
    # every trial was timed beside the teacher: its own fraction is bounded, not a ms figure
    beside = latency_bound(None, 0.25, 8.0, True)
    assert (beside.metric, beside.limit) == ("latency_fraction", 0.25)
    assert latency_bound(3.0, None, 8.0, True) == ms(3.0)  # --max-latency-ms stays a bound in ms
    with pytest.raises(ChoiceError, match="needs a latency bound"):
        latency_bound(None, None, 8.0, False)
    with pytest.raises(ChoiceError, match="recorded no teacher latency"):
        latency_bound(None, 0.5, None, False)


def test_a_fraction_of_the_teacher_is_refused_across_machines() -> None:
    # one machine: its teacher's time is the one to take a fraction of
    assert latency_bound(None, 0.5, 8.0, False, {"a"}).limit == 4.0
    with pytest.raises(ChoiceError, match=r"timed on 2 machines \(a, b\).*--max-latency-ms"):
        latency_bound(None, 0.5, 8.0, False, {"a", "b"})
    # each trial's own fraction was timed beside the teacher on its own machine: comparable
    assert latency_bound(None, 0.5, 8.0, True, {"a", "b"}).metric == "latency_fraction"
    assert latency_bound(3.0, None, 8.0, False, {"a", "b"}) == ms(3.0)


def test_a_fraction_bound_reads_each_trials_fraction_of_the_teacher() -> None:
    # trial 8 is faster in ms but was timed while the machine ran fast: beside the teacher it is over
    timed = [
        Trial(8, {"metrics": {"latency_ms": 5.0, "latency_fraction": 0.27, "accuracy": 0.9}}),
        Trial(9, {"metrics": {"latency_ms": 6.0, "latency_fraction": 0.21, "accuracy": 0.8}}),
    ]
    bound = latency_bound(None, 0.25, 24.0, True)
    assert numbers(select_candidates(timed, 2, bound, "accuracy", "maximize")) == [9]
    with pytest.raises(ChoiceError) as caught:
        select_candidates(timed, 2, latency_bound(None, 0.2, 24.0, True), "accuracy", "maximize")
    assert str(caught.value) == (
        "--max-latency-fraction 0.2 (timed beside the teacher): no student is that fast; the fastest, "
        "trial 9, takes 0.21 of the teacher's latency"
    )


def test_the_registered_one_is_best_on_validation_after_training() -> None:
    assert best_after_training([0.80, 0.85, 0.82], "maximize") == 1
    assert best_after_training([12.0, 9.5, 11.0], "minimize") == 1
    assert best_after_training([0.8, 0.8], "maximize") == 0  # a tie: the one that was better before


def test_a_lead_within_one_standard_error_is_said_to_be_too_close_to_call() -> None:
    from autodistill.cli.train_command import close_calls

    assert sampling_error(0.85, 436) == pytest.approx(0.0171, abs=1e-4)
    # the full run of docs/figures.md: one example of 436 apart, inside the error; four points apart, not
    assert too_close_to_call(0.8578, 0.8555, 436)
    assert not too_close_to_call(0.8578, 0.8165, 436)
    assert not too_close_to_call(0.8578, 0.8555, 100_000)  # the same lead on many examples is real

    def candidate(number: int, after: float, metric: str = "accuracy") -> SimpleNamespace:
        return SimpleNamespace(trial=Trial(number), after=after, metric=metric, validation_examples=436)

    close, far = candidate(0, 0.8555), candidate(1, 0.8165)
    result = SimpleNamespace(candidates=[close, candidate(2, 0.8578), far], chosen=1)
    (line,) = close_calls(result)
    assert line.startswith("note: trial 0's validation accuracy (0.8555) is within one standard error")
    assert "(±0.0167 on 436 examples)" in line and "dataset.validation_split" in line
    perplexities = [candidate(0, 10.0, "perplexity"), candidate(1, 10.01, "perplexity")]
    assert close_calls(SimpleNamespace(candidates=perplexities, chosen=0)) == []
