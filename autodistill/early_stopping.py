"""Early stopping for a multi-objective search, where Optuna's pruners cannot help (``Trial.report``
refuses multi-objective studies).

Size and latency are known before training (they depend on the shape, not the weights), so at each
checkpoint only accuracy is uncertain. A trial is stopped when some completed, feasible trial costs no
more on every other objective and was already at least ``margin`` more accurate (and strictly more
accurate) at the same step: the running trial would have to overtake it in the remaining steps to
reach the front. The rule is deterministic
(no randomness to seed) and is switched off with ``search.early_stopping.enabled: false``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from autodistill.config import SpaceConfig

CHECKPOINT_ATTR = "checkpoint_accuracy"  # Optuna user attribute: {step: accuracy} at each checkpoint


@dataclass(frozen=True)
class Checkpointed:
    """A completed trial as the rule sees it: its costs and its accuracy at each checkpoint step."""

    number: int
    costs: dict[str, float]
    accuracy_at: dict[int, float]


def beaten_by(
    step: int, accuracy: float, costs: dict[str, float], completed: Iterable[Checkpointed], margin: float
) -> Checkpointed | None:
    """The most accurate completed trial that, at ``step``, was ≥ ``margin`` more accurate while costing
    no more on every cost objective; None when there is none."""
    rivals = [
        c
        for c in completed
        if step in c.accuracy_at
        and c.accuracy_at[step] >= accuracy + margin
        and c.accuracy_at[step] > accuracy  # margin 0: a tie is not a defeat
        and all(c.costs[k] <= v for k, v in costs.items())
    ]
    return max(rivals, key=lambda c: c.accuracy_at[step], default=None)


class EarlyStopping:
    """Checkpoint steps and the stop decision for one study's space."""

    def __init__(self, space: SpaceConfig):
        self.search = space.search
        spec = space.search.early_stopping
        objectives = list(space.search.objectives)
        self.cost_objectives: list[str] = [o for o in objectives if o != "accuracy"]
        self.margin = spec.margin
        # The rule compares accuracy at equal cost: it needs accuracy among the objectives.
        self.enabled = spec.enabled and "accuracy" in objectives
        steps = space.train.steps
        self.steps = sorted({max(1, round(f * steps)) for f in spec.checkpoints}) if self.enabled else []

    def completed(self, study: Any) -> list[Checkpointed]:
        from optuna.trial import TrialState

        return [
            Checkpointed(
                number=t.number,
                costs={k: t.user_attrs["metrics"][k] for k in self.cost_objectives},
                accuracy_at={int(k): v for k, v in t.user_attrs.get(CHECKPOINT_ATTR, {}).items()},
            )
            for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if "metrics" in t.user_attrs and self._feasible(t.user_attrs["metrics"])
        ]

    def _feasible(self, metrics: dict[str, float]) -> bool:
        """An infeasible trial never reaches the front, so it must not stop others."""
        return all(v <= 0 for v in self.search.constraint_values(metrics).values())

    def decide(self, trial: Any, step: int, accuracy: float, metrics: dict[str, float]) -> str | None:
        """Record the checkpoint on ``trial``; the reason to stop it, or None to go on."""
        seen = {**trial.user_attrs.get(CHECKPOINT_ATTR, {}), str(step): accuracy}
        trial.set_user_attr(CHECKPOINT_ATTR, seen)
        costs = {k: metrics[k] for k in self.cost_objectives}
        rival = beaten_by(step, accuracy, costs, self.completed(trial.study), self.margin)
        if rival is None:
            return None
        cheaper = ", ".join(f"{k} {rival.costs[k]:.4g} ≤ {costs[k]:.4g}" for k in self.cost_objectives)
        return (
            f"dominated at step {step}: accuracy {accuracy:.4f} vs trial {rival.number}'s "
            f"{rival.accuracy_at[step]:.4f} at the same step ({cheaper})"
        )
