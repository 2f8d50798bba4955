"""``autodistill train --best N``: which students to train at full length, and which to register.

The candidates are the N most accurate (on validation) of the completed trials that meet the study's
constraints and the latency bound, not only the Pareto front's: under a bound, a student dominated
by a faster one of the same short-run accuracy is still a candidate, and after full-length training it
can be the better one (in ``docs/figures.md``, a 2 × 384 student with a narrow feed-forward tied a
1 × 384 one after 100 steps, was slower by 0.4 ms, and ended 3.7 test points ahead over 3 seeds).

Pure: trials are read only through ``trial.number``, ``trial.user_attrs["metrics"]`` and (``feasible``)
``trial.constraints``, so stand-in objects test it. The candidates are chosen on the search's validation scores, the registered student on
its validation score after full-length training. Test scores are never read here: choosing on them
would make the reported test figure an optimistic one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


class ChoiceError(ValueError):
    """No student meets the bound; the message names the flag and the fastest student."""


@dataclass(frozen=True)
class LatencyBound:
    """``train --best``'s bound: at most ``limit`` of a trial's ``metric`` (``latency_ms``, or
    ``latency_fraction`` when the search timed each shape in turns with the teacher). ``flag`` names
    the flag and its value for messages."""

    metric: str
    limit: float
    flag: str

    def value(self, trial: Any) -> float:
        return float(trial.user_attrs["metrics"][self.metric])

    def describe(self, value: float) -> str:
        return f"{value:.3g} ms" if self.metric == "latency_ms" else f"{value:.3g} of the teacher's latency"


def quality(trial: Any, metric: str) -> float:
    return float(trial.user_attrs["metrics"][metric])


def latency_bound(
    max_ms: float | None,
    fraction: float | None,
    teacher_ms: float | None,
    timed_beside: bool,
    machines: set[str] | None = None,
) -> LatencyBound:
    """``--max-latency-ms`` as given, or ``--max-latency-fraction`` of the teacher's latency: on each
    trial's ``latency_fraction`` when the search measured one for every trial (``timed_beside``), else
    on ``latency_ms`` against the teacher's latency as the study recorded it on the students' machine
    (``machines``: those that timed them), one figure from another moment (on shared cores, 22.3 to
    32.6 ms for one teacher in one session).

    Raises:
        ChoiceError: no bound given, no teacher latency, or students timed on several machines.
    """
    if max_ms is not None:
        return LatencyBound("latency_ms", max_ms, f"--max-latency-ms {max_ms:g}")
    if fraction is None:
        raise ChoiceError("--best needs a latency bound: --max-latency-ms X or --max-latency-fraction F")
    if timed_beside:
        return LatencyBound(
            "latency_fraction", fraction, f"--max-latency-fraction {fraction:g} (timed beside the teacher)"
        )
    if machines and len(machines) > 1:
        raise ChoiceError(
            f"--max-latency-fraction: the students were timed on {len(machines)} machines "
            f"({', '.join(sorted(machines))}), and one teacher time does not fit them all; "
            "give --max-latency-ms"
        )
    if teacher_ms is None:
        raise ChoiceError(
            "--max-latency-fraction: the study recorded no teacher latency; give --max-latency-ms"
        )
    limit = fraction * teacher_ms
    return LatencyBound(
        "latency_ms",
        limit,
        f"--max-latency-fraction {fraction:g} ({limit:.3g} ms of the teacher's {teacher_ms:.3g} ms)",
    )


def feasible(trial: Any) -> bool:
    """Completed with metrics and within the study's constraints (Optuna: every value ≤ 0)."""
    return "metrics" in trial.user_attrs and all(v <= 0 for v in trial.constraints.values())


def select_candidates(
    students: Sequence[Any], n: int, bound: LatencyBound, metric: str, direction: str
) -> list[Any]:
    """The ``n`` students within ``bound`` with the best validation ``metric`` (higher is better when
    ``direction`` is ``maximize``), best first; ties go to the faster, then the earlier trial.

    Raises:
        ChoiceError: no student is that fast (the message gives the fastest one's latency).
    """
    under = [t for t in students if bound.value(t) <= bound.limit]
    if not under:
        if not students:
            raise ChoiceError(
                "--best: no trial of the study completed within its constraints; run the search first"
            )
        fastest = min(students, key=bound.value)
        raise ChoiceError(
            f"{bound.flag}: no student is that fast; the fastest, trial {fastest.number}, "
            f"takes {bound.describe(bound.value(fastest))}"
        )
    sign = -1.0 if direction == "maximize" else 1.0
    ranked = sorted(under, key=lambda t: (sign * quality(t, metric), bound.value(t), t.number))
    return ranked[:n]


def best_after_training(after: Sequence[float], direction: str) -> int:
    """The index of the best validation score after full-length training (the first on a tie, i.e.
    the candidate that was better before). Test scores are deliberately not an input."""
    pick = max if direction == "maximize" else min
    return after.index(pick(after))


def sampling_error(accuracy: float, examples: int) -> float:
    """One binomial standard error of an accuracy measured on ``examples`` examples."""
    return math.sqrt(accuracy * (1.0 - accuracy) / examples)


def too_close_to_call(chosen: float, other: float, examples: int) -> bool:
    """Whether another candidate's validation accuracy is within one standard error of the registered
    one's: then the validation examples cannot order the two (in ``docs/figures.md``, a full run
    registered a student one example of 436 ahead on validation that was 1.2 points behind on test)."""
    return abs(chosen - other) < sampling_error(chosen, examples)
