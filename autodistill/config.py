"""The search-space file: typed schema, `--set` overrides, and every error reported at once.

A space file is YAML read with ``yaml.safe_load``. Searchable values use Optuna's own abbreviated
distribution vocabulary (``{type: float, low, high, log, step}``, ``{type: categorical, choices}``);
any of them may instead be a plain fixed value. This module is pure: it reads one file and imports
neither torch, transformers nor mlflow, so ``--help`` and ``validate`` stay fast.
"""

from __future__ import annotations

import difflib
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

# Metrics a study can optimise or constrain, with the direction that is better.
METRIC_DIRECTIONS: dict[str, Literal["maximize", "minimize"]] = {
    "accuracy": "maximize",
    "latency_ms": "minimize",  # batch-1 CPU latency, median (p50)
    "latency_p95_ms": "minimize",
    "size_mb": "minimize",  # bytes of the saved safetensors, in MB (10^6)
    "params": "minimize",
    "params_no_embeddings": "minimize",
}
MetricName = Literal["accuracy", "latency_ms", "latency_p95_ms", "size_mb", "params", "params_no_embeddings"]


class ConfigError(Exception):
    """One or more problems with the space file or flags; each line names the file and key."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


class Dist(BaseModel):
    """A searchable value in Optuna's abbreviated form; converted to an `optuna.distributions` object."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["int", "float", "categorical"]
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    choices: list[Any] | None = None

    @model_validator(mode="after")
    def _check_with_optuna(self) -> Dist:
        self.to_optuna()  # Optuna's distributions raise ValueError on low > high, log with low <= 0, ...
        return self

    def to_optuna(self) -> Any:
        from optuna import distributions as d

        if self.type == "categorical":
            if not self.choices:
                raise ValueError("categorical needs a non-empty 'choices' list")
            return d.CategoricalDistribution(self.choices)
        if self.low is None or self.high is None:
            raise ValueError(f"type {self.type} needs both 'low' and 'high'")
        if self.choices is not None:
            raise ValueError(f"'choices' is only for type categorical, not {self.type}")
        if self.type == "int":
            return d.IntDistribution(int(self.low), int(self.high), log=self.log, step=int(self.step or 1))
        return d.FloatDistribution(self.low, self.high, log=self.log, step=self.step)

    def values_bound(self) -> tuple[float, float]:
        """The smallest and largest value this distribution can yield."""
        if self.type == "categorical":
            numbers = [c for c in self.choices or [] if isinstance(c, int | float)]
            return (min(numbers), max(numbers)) if numbers else (float("nan"), float("nan"))
        return float(self.low), float(self.high)  # type: ignore[arg-type]


def _dist_or_value(v: Any) -> str:
    return "dist" if isinstance(v, dict | Dist) else "value"


# A mapping is a distribution, anything else a fixed value; the discriminator keeps pydantic from
# reporting a failed distribution a second time as "not a number".
Number = Annotated[
    Annotated[Dist, Tag("dist")] | Annotated[float, Tag("value")], Discriminator(_dist_or_value)
]
Integer = Annotated[
    Annotated[Dist, Tag("dist")] | Annotated[int, Tag("value")], Discriminator(_dist_or_value)
]


def _check_bounds(value: Dist | float, name: str, low: float, high: float | None, low_open: bool) -> None:
    lo, hi = value.values_bound() if isinstance(value, Dist) else (value, value)
    too_low = lo <= low if low_open else lo < low
    if too_low or (high is not None and hi > high):
        sign = ">" if low_open else "≥"
        upper = f" and ≤ {high}" if high is not None else ""
        got = f"{lo}" if lo == hi else f"values from {lo} to {hi}"
        raise ValueError(f"{name} must be {sign} {low}{upper}; got {got}")


class DatasetSpec(BaseModel):
    """Where the examples come from and which columns hold text and label."""

    model_config = ConfigDict(extra="forbid")

    path: str | None = Field(
        None, description="hub id, local directory, or a csv/tsv/json/jsonl/parquet file"
    )
    name: str | None = Field(None, description="hub dataset configuration, e.g. 'sst2' for 'glue'")
    text_column: str | None = Field(None, description="text column; default: 'sentence' or 'text'")
    label_column: str | None = Field(None, description="label column; default: 'label'")
    train_split: str = "train"
    validation_split: str | None = Field(None, description="default: 'validation'/'dev' when present")
    holdout_fraction: float = Field(0.1, gt=0, lt=1, description="seeded holdout when no validation split")
    split_seed: int = Field(
        0,
        description="seeds the holdout and the train subset; the same as the teacher's, so it never saw them",
    )
    max_train_examples: int | None = Field(
        None, gt=0, description="train examples a trial can see; default steps × batch_size"
    )
    max_eval_examples: int | None = Field(
        None, gt=0, description="validation examples per trial; default all"
    )


class StudentSpec(BaseModel):
    """Student architecture: depth and width are searched; heads and FFN follow from width."""

    model_config = ConfigDict(extra="forbid")

    head_size: int = Field(64, gt=0, description="attention heads = width / head_size")
    ffn_ratio: float = Field(4.0, gt=0, description="feed-forward size = ffn_ratio × width")
    depth: Integer = Field(description="number of transformer layers")
    width: Integer = Field(description="hidden size")

    @field_validator("depth")
    @classmethod
    def _depth_positive(cls, v: Dist | int) -> Dist | int:
        _check_bounds(v, "depth", 1, None, low_open=False)
        return v

    @field_validator("width")
    @classmethod
    def _width_fits_heads(cls, v: Dist | int, info: ValidationInfo) -> Dist | int:
        head_size = info.data.get("head_size", 64)
        for width in _possible_ints(v):
            if width <= 0 or width % head_size:
                raise ValueError(
                    f"width {width} is not a positive multiple of head_size {head_size}; "
                    f"use multiples of {head_size} (for an int range, set step: {head_size})"
                )
        return v


def _possible_ints(value: Dist | int) -> list[int]:
    if not isinstance(value, Dist):
        return [int(value)]
    if value.type == "categorical":
        return [int(c) for c in value.choices or []]
    step = int(value.step or 1)
    return list(range(int(value.low or 0), int(value.high or 0) + 1, step))


class DistillSpec(BaseModel):
    """Distillation loss settings and the student's learning rate."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    lambda_: Number = Field(alias="lambda", description="weight of the soft (teacher) loss, in [0, 1]")
    temperature: Number = Field(description="softmax temperature T of the soft loss, > 0")
    learning_rate: Number = Field(description="AdamW peak learning rate, > 0")

    @field_validator("lambda_")
    @classmethod
    def _lambda_in_unit(cls, v: Dist | float) -> Dist | float:
        _check_bounds(v, "lambda", 0.0, 1.0, low_open=False)
        return v

    @field_validator("temperature", "learning_rate")
    @classmethod
    def _positive(cls, v: Dist | float, info: Any) -> Dist | float:
        _check_bounds(v, info.field_name, 0.0, None, low_open=True)
        return v


class TrainSpec(BaseModel):
    """The fixed short-trial budget and training recipe."""

    model_config = ConfigDict(extra="forbid")

    steps: int = Field(300, gt=0, description="optimisation steps per trial")
    batch_size: int = Field(32, gt=0)
    eval_batch_size: int = Field(128, gt=0)
    max_length: int = Field(64, gt=1, description="tokens per example after truncation")
    warmup_ratio: float = Field(
        0.1, ge=0, lt=1, description="linear warm-up share of steps, then linear decay"
    )
    weight_decay: float = Field(0.01, ge=0)
    seed: int = 0


class LatencySpec(BaseModel):
    """How latency is measured: batch 1 on CPU, fixed threads, warm-up, then timed repeats."""

    model_config = ConfigDict(extra="forbid")

    sequence_length: int = Field(64, gt=1, description="tokens in the timed input")
    threads: int = Field(1, gt=0, description="torch intra-op threads while timing")
    warmup: int = Field(10, ge=0)
    repeats: int = Field(100, gt=0)


class Bound(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max: float | None = None
    min: float | None = None

    @model_validator(mode="after")
    def _one_side(self) -> Bound:
        if self.max is None and self.min is None:
            raise ValueError("a constraint needs 'max' or 'min'")
        return self


class SearchSpec(BaseModel):
    """Sampler, objectives and constraints of the Optuna study."""

    model_config = ConfigDict(extra="forbid")

    sampler: Literal["tpe", "nsga2", "random", "gp"] = "tpe"
    objectives: list[MetricName] = ["accuracy", "latency_ms", "size_mb"]  # pydantic copies defaults
    constraints: dict[MetricName, Bound] = Field(default_factory=dict)

    @field_validator("objectives")
    @classmethod
    def _distinct(cls, v: list[str]) -> list[str]:
        if len(v) < 2 or len(set(v)) != len(v):
            raise ValueError("objectives must list at least two distinct metrics")
        return v


class SpaceConfig(BaseModel):
    """A whole search: teacher, data, student space, distillation, budget, measurement, study."""

    model_config = ConfigDict(extra="forbid")

    teacher: str | None = Field(None, description="local save_pretrained directory or hub id")
    dataset: DatasetSpec = DatasetSpec()
    student: StudentSpec
    distill: DistillSpec
    train: TrainSpec = TrainSpec()
    latency: LatencySpec = LatencySpec()
    search: SearchSpec = SearchSpec()

    @field_validator("dataset", mode="before")
    @classmethod
    def _dataset_shorthand(cls, v: Any) -> Any:
        return {"path": v} if isinstance(v, str) else v

    def train_examples(self) -> int:
        """How many training examples a trial can see (the teacher's logits are cached for these)."""
        return self.dataset.max_train_examples or self.train.steps * self.train.batch_size


@dataclass
class LoadedSpace:
    config: SpaceConfig
    path: Path
    text: str  # the file as written, logged with the study


def load_space(
    path: str | Path,
    overrides: list[str] = (),  # type: ignore[assignment]
    teacher: str | None = None,
    dataset: str | None = None,
) -> LoadedSpace:
    """Read, override and validate a space file.

    Args:
        path: the YAML file.
        overrides: ``KEY=VALUE`` strings from ``--set``; dotted keys, values parsed as YAML.
        teacher / dataset: the ``--teacher`` / ``--dataset`` flags, which win over the file.

    Raises:
        ConfigError: with every problem found, each naming the file (or flag) and key.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read the space file ({exc.strerror}); check the path"]) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" line {where.line + 1}" if where else ""
        raise ConfigError(
            [f"{path}:{line} malformed YAML ({getattr(exc, 'problem', exc)}); fix the syntax"]
        ) from None
    if not isinstance(raw, dict):
        raise ConfigError(
            [f"{path}: the space file must be a YAML mapping of sections (student:, distill:, ...)"]
        )

    problems: list[str] = []
    overridden: set[str] = set()
    for item in overrides:
        problem = _apply_override(raw, item)
        if problem:
            problems.append(f"--set {item}: {problem}")
        else:
            overridden.add(item.partition("=")[0].strip())
    if teacher is not None:
        raw["teacher"] = teacher
    if dataset is not None:
        section = raw.get("dataset")
        raw["dataset"] = {**section, "path": dataset} if isinstance(section, dict) else {"path": dataset}

    try:
        config = SpaceConfig.model_validate(raw)
    except ValidationError as exc:
        problems += [_describe(err, path, overridden) for err in exc.errors()]
        raise ConfigError(problems) from None
    if problems:
        raise ConfigError(problems)
    return LoadedSpace(config=config, path=path, text=text)


def _apply_override(raw: dict[str, Any], item: str) -> str | None:
    key, sep, value = item.partition("=")
    key = key.strip()
    if not sep or not key:
        return "expected KEY=VALUE with a dotted key, e.g. --set train.steps=20"
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError:
        return f"value {value!r} is not valid YAML"
    node = raw
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            return f"'{part}' holds a value, not a section, so '{key}' cannot be set"
        node = child
    node[parts[-1]] = parsed
    return None


def _describe(err: Any, path: Path, overridden: set[str]) -> str:
    # pydantic names the union branch it took ('dist', 'value'); the user wrote neither.
    loc = [str(p) for p in err["loc"] if p not in {"dist", "value"}]
    loc = ["lambda" if p == "lambda_" else p for p in loc]
    key = ".".join(loc) or "(top level)"
    from_flag = any(o == key or o.startswith(key + ".") or key.startswith(o + ".") for o in overridden)
    source = "--set" if from_flag else str(path)
    message = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        message = f"unknown key '{loc[-1]}'"
        nearest = difflib.get_close_matches(loc[-1], _keys_at(loc[:-1]), n=1)
        message += (
            f"; did you mean '{nearest[0]}'?" if nearest else f"; valid keys: {', '.join(_keys_at(loc[:-1]))}"
        )
    elif err["type"] == "missing":
        message = "required key is missing"
    return f"{source}: {key}: {message}"


def _keys_at(loc: list[str]) -> list[str]:
    """Valid keys of the section at ``loc``, for 'did you mean' hints."""
    model: Any = SpaceConfig
    for part in loc:
        fields = getattr(model, "model_fields", {})
        name = "lambda_" if part == "lambda" else part
        if name not in fields:
            return []
        model = _model_in(fields[name].annotation)
    return [f.alias or n for n, f in getattr(model, "model_fields", {}).items()]


def _model_in(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                return arg
    return None
