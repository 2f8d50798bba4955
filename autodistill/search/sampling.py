"""Turn a space into one trial's concrete settings: ``sample(trial, space, teacher)`` asks Optuna for each value."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from autodistill.config.schema import Dist, SpaceConfig
from autodistill.distill.student import StudentArch, kv_heads_for


@dataclass(frozen=True)
class TrialSettings:
    """Everything one trial trains with: architecture, initialisation, loss and optimiser settings."""

    arch: StudentArch
    lam: float
    temperature: float
    learning_rate: float
    init: str = "random"
    hidden_weight: float = 0.0
    attention_weight: float = 0.0

    def as_params(self) -> dict[str, Any]:
        """Flat parameters for tables and MLflow (λ is spelled ``lambda``)."""
        # kv_heads only where the family has them (grouped-query attention), so encoder studies keep
        # the parameters, cache keys and tables they had
        return {
            **{k: v for k, v in asdict(self.arch).items() if v is not None},
            "init": self.init,
            "lambda": self.lam,
            "temperature": self.temperature,
            "learning_rate": self.learning_rate,
            "hidden_weight": self.hidden_weight,
            # only when weighed, so studies from before the attention-relation loss keep their parameters
            **({"attention_weight": self.attention_weight} if self.attention_weight else {}),
        }

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> TrialSettings:
        """The inverse of ``as_params`` (trials stored before init/hidden_weight existed read as random, 0)."""
        return cls(
            arch=StudentArch(
                depth=params["depth"],
                width=params["width"],
                heads=params["heads"],
                ffn=params["ffn"],
                kv_heads=params.get("kv_heads"),
            ),
            lam=params["lambda"],
            temperature=params["temperature"],
            learning_rate=params["learning_rate"],
            init=params.get("init", "random"),
            hidden_weight=params.get("hidden_weight", 0.0),
            attention_weight=params.get("attention_weight", 0.0),
        )


def _suggest(trial: Any, name: str, value: Dist | float | int | str) -> Any:
    if not isinstance(value, Dist):
        return value
    if value.type == "categorical":
        return trial.suggest_categorical(name, value.choices)
    low, high = value.values_bound()
    if value.type == "int":
        return trial.suggest_int(name, int(low), int(high), step=int(value.step or 1), log=value.log)
    return trial.suggest_float(name, low, high, step=value.step, log=value.log)


def sample(trial: Any, space: SpaceConfig, teacher: StudentArch) -> TrialSettings:
    """Ask ``trial`` (an ``optuna.Trial``) for every searchable value; fixed values pass through.

    ``teacher-layers`` copies whole teacher layers, so its student has the teacher's width, heads and
    feed-forward size: for it only the depth is asked (a conditional space, which TPE handles).
    """
    student = space.student
    named = space.values_by_trial_name()  # the names first trials are checked against, too
    init = str(_suggest(trial, "init", named["init"]))
    depth = int(_suggest(trial, "depth", named["depth"]))
    if init == "teacher-layers":
        arch = StudentArch(depth, teacher.width, teacher.heads, teacher.ffn, teacher.kv_heads)
    else:
        width = int(_suggest(trial, "width", named["width"]))
        heads = student.heads_for(width)
        ffn = student.ffn_for(width, float(_suggest(trial, "ffn_ratio", named["ffn_ratio"])))
        # grouped-query attention: the teacher's query heads per key/value head, where it divides
        arch = StudentArch(depth, width, heads, ffn, kv_heads_for(teacher, heads))
    return TrialSettings(
        arch=arch,
        lam=float(_suggest(trial, "lambda", named["lambda"])),
        temperature=float(_suggest(trial, "temperature", named["temperature"])),
        learning_rate=float(_suggest(trial, "learning_rate", named["learning_rate"])),
        init=init,
        hidden_weight=float(_suggest(trial, "hidden_weight", named["hidden_weight"])),
        attention_weight=float(_suggest(trial, "attention_weight", named["attention_weight"])),
    )
