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

from collections.abc import Sequence
from typing import Any


class ChoiceError(ValueError):
    """No student meets the bound; the message names the flag and the fastest student."""


def latency(trial: Any) -> float:
    return float(trial.user_attrs["metrics"]["latency_ms"])


def quality(trial: Any, metric: str) -> float:
    return float(trial.user_attrs["metrics"][metric])


def latency_limit(max_ms: float | None, fraction: float | None, teacher_ms: float | None) -> float:
    """The bound in ms: ``--max-latency-ms`` as given, or ``--max-latency-fraction`` of the teacher's
    latency as the study recorded it."""
    if max_ms is not None:
        return max_ms
    if fraction is None:
        raise ChoiceError("--best needs a latency bound: --max-latency-ms X or --max-latency-fraction F")
    if teacher_ms is None:
        raise ChoiceError(
            "--max-latency-fraction: the study recorded no teacher latency; give --max-latency-ms"
        )
    return fraction * teacher_ms


def feasible(trial: Any) -> bool:
    """Completed with metrics and within the study's constraints (Optuna: every value ≤ 0)."""
    return "metrics" in trial.user_attrs and all(v <= 0 for v in trial.constraints.values())


def select_candidates(
    students: Sequence[Any], n: int, limit_ms: float, metric: str, direction: str, bound: str
) -> list[Any]:
    """The ``n`` students at or under ``limit_ms`` with the best validation ``metric`` (higher
    is better when ``direction`` is ``maximize``), best first; ties go to the faster, then the earlier
    trial. ``bound`` names the flag (and the limit) for the error.

    Raises:
        ChoiceError: no student is that fast (the message gives the fastest one's latency).
    """
    under = [t for t in students if latency(t) <= limit_ms]
    if not under:
        if not students:
            raise ChoiceError(
                "--best: no trial of the study completed within its constraints; run the search first"
            )
        fastest = min(students, key=latency)
        raise ChoiceError(
            f"{bound}: no student is that fast; the fastest, trial {fastest.number}, "
            f"takes {latency(fastest):.3g} ms"
        )
    sign = -1.0 if direction == "maximize" else 1.0
    ranked = sorted(under, key=lambda t: (sign * quality(t, metric), latency(t), t.number))
    return ranked[:n]


def best_after_training(after: Sequence[float], direction: str) -> int:
    """The index of the best validation score after full-length training (the first on a tie, i.e.
    the candidate that was better before). Test scores are deliberately not an input."""
    pick = max if direction == "maximize" else min
    return after.index(pick(after))
