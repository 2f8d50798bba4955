"""Early stopping for a multi-objective search, where Optuna's pruners cannot help (``Trial.report``
refuses multi-objective studies).

Size and latency are known before training (they depend on the shape, not the weights), so at each
checkpoint only the quality metric (the task's: accuracy for classifiers) is uncertain. A trial is
stopped when some completed, feasible trial costs no more on every other objective and was already at
least ``margin`` better (and strictly better) at the same step: the running trial would have to
overtake it in the remaining steps to reach the front. The rule is deterministic
(no randomness to seed) and is switched off with ``search.early_stopping.enabled: false``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from autodistill.config.schema import SpaceConfig


def checkpoint_attr(metric: str) -> str:
    """The Optuna user attribute holding {step: quality} at each checkpoint, e.g. checkpoint_accuracy."""
    return f"checkpoint_{metric}"


@dataclass(frozen=True)
class Checkpointed:
    """A completed trial as the rule sees it: its costs and its quality at each checkpoint step, signed
    so that higher is better."""

    number: int
    costs: dict[str, float]
    quality_at: dict[int, float]


def beaten_by(
    step: int, quality: float, costs: dict[str, float], completed: Iterable[Checkpointed], margin: float
) -> Checkpointed | None:
    """The best completed trial that, at ``step``, was ≥ ``margin`` better (higher ``quality``) while
    costing no more on every cost objective; None when there is none."""
    rivals = [
        c
        for c in completed
        if step in c.quality_at
        and c.quality_at[step] >= quality + margin
        and c.quality_at[step] > quality  # margin 0: a tie is not a defeat
        and all(c.costs[k] <= v for k, v in costs.items())
    ]
    return max(rivals, key=lambda c: c.quality_at[step], default=None)


class EarlyStopping:
    """Checkpoint steps and the stop decision for one study's space."""

    def __init__(self, space: SpaceConfig, metric: str, direction: str):
        self.search = space.search
        spec = space.search.early_stopping
        objectives = list(space.search.objectives)
        self.metric, self.attr = metric, checkpoint_attr(metric)
        self.sign = 1.0 if direction == "maximize" else -1.0  # the rule compares signed values: higher wins
        self.cost_objectives: list[str] = [o for o in objectives if o != metric]
        self.margin = spec.margin
        # The rule compares quality at equal cost: it needs the quality metric among the objectives.
        self.enabled = spec.enabled and metric in objectives
        steps = space.train.steps
        self.steps = sorted({max(1, round(f * steps)) for f in spec.checkpoints}) if self.enabled else []
        # A completed trial never changes: each is read into the rule's form once per worker (None when
        # it cannot stop others), so a checkpoint costs the trials completed since the last one, not a
        # pass over the whole study (Optuna's storages already keep finished trials in memory).
        self._seen: dict[int, Checkpointed | None] = {}

    def completed(self, study: Any) -> list[Checkpointed]:
        from optuna.trial import TrialState

        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            if t.number not in self._seen:
                self._seen[t.number] = self._as_rival(t)
        return [c for c in self._seen.values() if c is not None]

    def _as_rival(self, t: Any) -> Checkpointed | None:
        if "metrics" not in t.user_attrs or not self._feasible(t.user_attrs["metrics"]):
            return None
        return Checkpointed(
            number=t.number,
            costs={k: t.user_attrs["metrics"][k] for k in self.cost_objectives},
            quality_at={int(k): self.sign * v for k, v in t.user_attrs.get(self.attr, {}).items()},
        )

    def _feasible(self, metrics: dict[str, float]) -> bool:
        """An infeasible trial never reaches the front, so it must not stop others."""
        return all(v <= 0 for v in self.search.constraint_values(metrics).values())

    def decide(self, trial: Any, step: int, quality: float, metrics: dict[str, float]) -> str | None:
        """Record the checkpoint on ``trial``; the reason to stop it, or None to go on."""
        seen = {**trial.user_attrs.get(self.attr, {}), str(step): quality}
        trial.set_user_attr(self.attr, seen)
        costs = {k: metrics[k] for k in self.cost_objectives}
        rival = beaten_by(step, self.sign * quality, costs, self.completed(trial.study), self.margin)
        if rival is None:
            return None
        cheaper = ", ".join(f"{k} {rival.costs[k]:.4g} ≤ {costs[k]:.4g}" for k in self.cost_objectives)
        return (
            f"dominated at step {step}: {self.metric} {quality:.4f} vs trial {rival.number}'s "
            f"{self.sign * rival.quality_at[step]:.4f} at the same step ({cheaper})"
        )
