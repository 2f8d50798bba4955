"""Turn a space into one trial's concrete settings: ``sample(trial, space)`` asks Optuna for each value."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from autodistill.config import Dist, SpaceConfig


@dataclass(frozen=True)
class StudentArch:
    """A student's shape; heads and feed-forward size follow from width by the space's rules."""

    depth: int
    width: int
    heads: int
    ffn: int


@dataclass(frozen=True)
class TrialSettings:
    """Everything one trial trains with: architecture, distillation and optimiser settings."""

    arch: StudentArch
    lam: float
    temperature: float
    learning_rate: float

    def as_params(self) -> dict[str, Any]:
        """Flat parameters for tables and MLflow (λ is spelled ``lambda``)."""
        return {
            **asdict(self.arch),
            "lambda": self.lam,
            "temperature": self.temperature,
            "learning_rate": self.learning_rate,
        }


def _suggest(trial: Any, name: str, value: Dist | float | int) -> Any:
    if not isinstance(value, Dist):
        return value
    if value.type == "categorical":
        return trial.suggest_categorical(name, value.choices)
    low, high = value.values_bound()
    if value.type == "int":
        return trial.suggest_int(name, int(low), int(high), step=int(value.step or 1), log=value.log)
    return trial.suggest_float(name, low, high, step=value.step, log=value.log)


def sample(trial: Any, space: SpaceConfig) -> TrialSettings:
    """Ask ``trial`` (an ``optuna.Trial``) for every searchable value; fixed values pass through."""
    student, distill = space.student, space.distill
    depth = int(_suggest(trial, "depth", student.depth))
    width = int(_suggest(trial, "width", student.width))
    return TrialSettings(
        arch=StudentArch(
            depth=depth,
            width=width,
            heads=width // student.head_size,
            ffn=round(width * student.ffn_ratio),
        ),
        lam=float(_suggest(trial, "lambda", distill.lambda_)),
        temperature=float(_suggest(trial, "temperature", distill.temperature)),
        learning_rate=float(_suggest(trial, "learning_rate", distill.learning_rate)),
    )
