"""The search space's typed schema: one pydantic model per section, one line of doc per field.

Searchable values use Optuna's own abbreviated distribution vocabulary (``{type: float, low, high,
log, step}``, ``{type: categorical, choices}``); any of them may instead be a plain fixed value.
Pure: no I/O, and neither torch, transformers nor mlflow is imported, so validation stays fast.
``spacefile`` reads a YAML file into it; ``task`` names the task seam's implementation to use.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

# Metrics a study can optimise or constrain, with the direction that is better.
METRIC_DIRECTIONS: dict[str, Literal["maximize", "minimize"]] = {
    "accuracy": "maximize",
    "macro_f1": "maximize",  # mean of the per-class F1 scores: imbalanced classes count alike
    "perplexity": "minimize",  # exp of the mean next-token cross-entropy (causal LMs)
    "latency_ms": "minimize",  # batch-1 CPU latency, median (p50)
    "latency_p95_ms": "minimize",
    # the student's latency over the teacher's, the two timed in turns: the machine's speed, which drifts
    # by 5-30% on shared cores, cancels out of it (a bound on latency_ms holds only at one moment's speed)
    "latency_fraction": "minimize",
    "size_mb": "minimize",  # bytes of the saved safetensors, in MB (10^6)
    "params": "minimize",
    "params_no_embeddings": "minimize",
    "prefill_ms": "minimize",  # causal LMs: the prompt's forward pass, batch 1
}
MetricName = Literal[
    "accuracy",
    "macro_f1",
    "perplexity",
    "latency_ms",
    "latency_p95_ms",
    "latency_fraction",
    "size_mb",
    "params",
    "params_no_embeddings",
    "prefill_ms",
]
# The quality metrics each task can be judged by; the first is its default.
QUALITY_METRICS: dict[str, tuple[str, ...]] = {
    "sequence-classification": ("accuracy", "macro_f1"),
    "causal-lm": ("perplexity",),
}


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
        try:  # Optuna's distributions raise ValueError on low > high, log with low <= 0, ...
            self.to_optuna()
        except (OverflowError, TypeError) as exc:  # e.g. high: .inf, or a choice of an unusable type
            raise ValueError(f"not a usable distribution ({exc})") from None
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

    def admits(self, value: float | int | str) -> bool:
        """Whether this distribution can yield ``value`` (a first trial's value must be one it could sample)."""
        if self.type == "categorical":
            return value in (self.choices or [])
        if isinstance(value, str) or (self.type == "int" and value != int(value)):
            return False
        return float(self.low) <= value <= float(self.high)  # type: ignore[arg-type]

    def shown(self) -> str:
        """As a user would write it: its choices, or its range."""
        if self.type == "categorical":
            return f"choices {self.choices}"
        return f"{self.type} in [{self.low:g}, {self.high:g}]"

    def values_bound(self) -> tuple[float, float]:
        """The smallest and largest value this distribution can yield."""
        if self.type == "categorical":
            numbers = [c for c in self.choices or [] if isinstance(c, int | float)]
            return (min(numbers), max(numbers)) if numbers else (float("nan"), float("nan"))
        return float(self.low), float(self.high)  # type: ignore[arg-type]


def upper_bound(value: Dist | float | int) -> float:
    """The largest value a fixed value or a distribution can yield."""
    return value.values_bound()[1] if isinstance(value, Dist) else float(value)


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
    test_split: str | None = Field(
        None,
        description="held-out test split; default: 'test' when present with labels, else a part of validation",
    )
    test_fraction: float = Field(
        0.5,
        gt=0,
        lt=1,
        description="seeded part of the validation examples kept for the test score when there is no test split",
    )
    split_seed: int = Field(
        0,
        ge=0,
        description="seeds the holdout and the train subset; the same as the teacher's, so it never saw them",
    )
    max_train_examples: int | None = Field(
        None, gt=0, description="train examples a trial can see; default steps × batch_size"
    )
    metric: Literal["accuracy", "macro_f1"] = Field(
        "accuracy", description="classification quality: accuracy, or macro_f1 for imbalanced classes"
    )
    max_eval_examples: int | None = Field(
        None,
        gt=0,
        description="validation examples per trial (the test examples are not counted); default all",
    )
    unlabeled: str | None = Field(
        None,
        description="text without labels for the transfer set, labelled by the teacher: a .txt file (one "
        "text per line) or a csv/tsv/json/jsonl/parquet file with the text column",
    )


INIT_CHOICES = ("random", "teacher-layers", "weight-select")
InitName = Literal["random", "teacher-layers", "weight-select"]


class StudentSpec(BaseModel):
    """Student architecture: depth and width are searched; heads and FFN follow from width."""

    model_config = ConfigDict(extra="forbid")

    head_size: int = Field(64, gt=0, description="attention heads = width / head_size")
    ffn_ratio: Number = Field(
        4.0,
        description="feed-forward size = ffn_ratio × width; searchable (a narrower feed-forward buys depth "
        "at the same latency)",
    )
    depth: Integer = Field(description="number of transformer layers")
    width: Integer = Field(description="hidden size")
    init: Annotated[
        Annotated[Dist, Tag("dist")] | Annotated[InitName, Tag("value")], Discriminator(_dist_or_value)
    ] = Field(
        "random",
        description="random | teacher-layers (teacher's width, a subset of its layers) | "
        "weight-select (a consistent subset of the teacher's layers, units and heads)",
    )
    layer_selection: Literal["even", "first", "last"] = Field(
        "even", description="which teacher layers a teacher-based student starts from and is matched to"
    )

    @field_validator("init")
    @classmethod
    def _known_init(cls, v: Dist | str) -> Dist | str:
        if isinstance(v, Dist):
            unknown = (
                [c for c in v.choices or [] if c not in INIT_CHOICES] if v.type == "categorical" else [v.type]
            )
            if unknown:
                raise ValueError(f"init choices must be among {list(INIT_CHOICES)}; got {unknown}")
        return v

    def init_choices(self) -> list[str]:
        return list(self.init.choices or []) if isinstance(self.init, Dist) else [self.init]

    def heads_for(self, width: int) -> int:
        """Attention heads of a student of ``width``: one per ``head_size`` units (at least one)."""
        return max(1, width // self.head_size)

    def ffn_for(self, width: int, ratio: float) -> int:
        """Feed-forward size of a student of ``width`` with feed-forward ``ratio`` (at least one unit)."""
        return max(1, round(width * ratio))

    @field_validator("ffn_ratio")
    @classmethod
    def _ffn_ratio_positive(cls, v: Dist | float) -> Dist | float:
        _check_bounds(v, "ffn_ratio", 0, None, low_open=True)
        return v

    @field_validator("depth")
    @classmethod
    def _depth_positive(cls, v: Dist | int) -> Dist | int:
        _check_bounds(v, "depth", 1, None, low_open=False)
        return v

    @field_validator("width")
    @classmethod
    def _width_fits_heads(cls, v: Dist | int, info: ValidationInfo) -> Dist | int:
        head_size = info.data.get("head_size", 64)
        try:
            widths = possible_ints(v)
        except (TypeError, ValueError, OverflowError):
            raise ValueError("widths must be whole numbers") from None
        for width in widths:
            if width <= 0 or width % head_size:
                raise ValueError(
                    f"width {width} is not a positive multiple of head_size {head_size}; "
                    f"use multiples of {head_size} (for an int range, set step: {head_size})"
                )
        return v


def possible_ints(value: Dist | int) -> list[int]:
    """Every whole number a fixed value or an int/categorical distribution can yield."""
    if not isinstance(value, Dist):
        return [int(value)]
    if value.type == "categorical":
        return [int(c) for c in value.choices or []]
    step = int(value.step or 1)
    return list(range(int(value.low or 0), int(value.high or 0) + 1, step))


class DistillSpec(BaseModel):
    """Distillation loss settings and the student's learning rate."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    lam: Number = Field(alias="lambda", description="weight of the soft (teacher) loss, in [0, 1]")
    temperature: Number = Field(description="softmax temperature T of the soft loss, > 0")
    learning_rate: Number = Field(description="AdamW peak learning rate, > 0")
    hidden_weight: Number = Field(
        0.0, description="weight of the hidden-state loss between matched student and teacher layers; 0: off"
    )
    attention_weight: Number = Field(
        0.0,
        description="weight of MiniLM's attention-relation loss (query, key and value relations of the "
        "last layer, Wang et al. 2021); 0: off",
    )
    relation_heads: int = Field(
        16,
        gt=0,
        description="relation heads of the attention-relation loss; student and teacher widths divide by it",
    )
    top_k: int = Field(
        64,
        gt=0,
        description="causal-lm: the teacher's top-k next tokens cached per position (its full "
        "vocabulary is too big to keep)",
    )
    hidden_loss: Literal["cosine", "mse"] = Field(
        "cosine", description="cosine (DistilBERT) or mse; a learned projection maps narrower students"
    )

    @field_validator("hidden_weight", "attention_weight")
    @classmethod
    def _non_negative(cls, v: Dist | float, info: Any) -> Dist | float:
        _check_bounds(v, info.field_name, 0.0, None, low_open=False)
        return v

    def uses_hidden_states(self) -> bool:
        """Whether any trial can weigh the hidden-state loss (then the teacher's states are needed)."""
        return upper_bound(self.hidden_weight) > 0

    def uses_attention_relations(self) -> bool:
        """Whether any trial can weigh the attention-relation loss (then the input of the teacher's last
        layer is needed, like a hidden state)."""
        return upper_bound(self.attention_weight) > 0

    @field_validator("lam")
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
    deterministic: bool = Field(
        False, description="deterministic algorithms on the GPU: repeatable runs, at some cost in speed"
    )
    mixed_precision: bool = Field(
        True, description="bfloat16 forward passes on a GPU that supports them; false: float32 everywhere"
    )
    log_every: int = Field(
        25,
        gt=0,
        description="steps between copies of the training losses to the host (each waits for the GPU)",
    )
    chunk_tokens: int | None = Field(
        None,
        gt=0,
        description="causal-lm: positions whose vocabulary-wide logits are held at once (top-k, loss, "
        "perplexity); unset: as many as 128 MiB of float32 logits hold",
    )


class LatencySpec(BaseModel):
    """How latency is measured: batch 1 on CPU, fixed threads, warm-up, then rounds of timed repeats.

    ``repeats`` timed passes are split into ``rounds``; the reported p50 is the median of the round
    medians, so a burst of load from another process spoils one round, not the figure. ``device: cuda``
    times a batch of ``batch_size`` on the GPU instead (the CPU is the deployment target, so the default
    measures there even when the trials train on a GPU).
    """

    model_config = ConfigDict(extra="forbid")

    sequence_length: int = Field(64, gt=1, description="tokens in the timed input")
    threads: int = Field(1, gt=0, description="intra-op threads while timing (torch or onnxruntime)")
    backend: Literal["torch", "onnxruntime"] = Field(
        "torch", description="what runs the timed passes: torch eager, or the ONNX export in onnxruntime"
    )
    warmup: int = Field(5, ge=0, description="untimed passes first")
    repeats: int = Field(75, gt=0, description="timed passes in all, split evenly into the rounds")
    rounds: int = Field(5, gt=0, description="rounds of timed passes (at most repeats)")
    device: Literal["cpu", "cuda"] = Field(
        "cpu",
        description="where the timed passes run: cpu (the deployment target, also when training on a GPU) "
        "or cuda (batch latency on the GPU)",
    )
    batch_size: int = Field(1, gt=0, description="inputs per timed pass; other than 1 only with device cuda")

    @model_validator(mode="after")
    def _device_fits(self) -> LatencySpec:
        if self.device == "cpu" and self.batch_size != 1:
            raise ValueError(
                f"batch_size {self.batch_size}: CPU latency is batch 1; a batch needs device: cuda"
            )
        if self.device == "cuda" and self.backend != "torch":
            raise ValueError("device: cuda times torch eager on the GPU; use backend: torch with it")
        return self

    def identity(self) -> dict[str, Any]:
        """What fingerprints and cache keys hold: the settings, less ``device`` and ``batch_size`` at their
        defaults, so studies, shape figures and teacher references from before they existed still match."""
        settings = self.model_dump(mode="json")
        for key, default in (("device", "cpu"), ("batch_size", 1)):
            if settings[key] == default:
                del settings[key]
        return settings


class Bound(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max: float | None = None
    min: float | None = None

    @model_validator(mode="after")
    def _one_side(self) -> Bound:
        if self.max is None and self.min is None:
            raise ValueError("a constraint needs 'max' or 'min'")
        return self


class EarlyStoppingSpec(BaseModel):
    """Stop a trial whose accuracy at a checkpoint is already clearly beaten by a cheaper trial."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    checkpoints: list[float] = Field(
        [0.25, 0.5, 0.75], description="fractions of train.steps at which accuracy is measured and compared"
    )
    margin: float = Field(
        0.02,
        ge=0,
        description="how far below a cheaper trial's accuracy at the same checkpoint counts as beaten",
    )

    @field_validator("checkpoints")
    @classmethod
    def _fractions(cls, v: list[float]) -> list[float]:
        if any(not 0 < f < 1 for f in v):
            raise ValueError(f"checkpoints are fractions of train.steps, each in (0, 1); got {v}")
        return sorted(set(v))


class SearchSpec(BaseModel):
    """Sampler, objectives and constraints of the Optuna study."""

    model_config = ConfigDict(extra="forbid")

    sampler: Literal["tpe", "nsga2", "random", "gp"] = "tpe"
    heartbeat_seconds: int = Field(
        30, gt=0, description="trial heartbeat; a trial silent for twice this long is failed and retried once"
    )
    objectives: list[MetricName] = ["accuracy", "latency_ms", "size_mb"]  # pydantic copies defaults
    constraints: dict[MetricName, Bound] = Field(default_factory=dict)
    early_stopping: EarlyStoppingSpec = EarlyStoppingSpec()
    first_trials: list[dict[str, float | int | str]] = Field(
        default_factory=list,
        description="students to try before the sampler proposes any (Optuna's enqueue_trial), e.g. a shape "
        "known to do well: each maps searchable values (init, depth, width, ffn_ratio, lambda, temperature, "
        "learning_rate, hidden_weight, attention_weight) to a value; those left out are sampled",
    )

    def constraint_values(self, metrics: dict[str, float]) -> dict[str, float]:
        """Each constraint's value for ``metrics``, in Optuna's convention: ≤ 0 is feasible (constraints on
        metrics not in ``metrics`` are left out)."""
        values = {}
        for metric, bound in self.constraints.items():
            if metric not in metrics:
                continue
            if bound.max is not None:
                values[f"{metric}_max"] = metrics[metric] - bound.max
            if bound.min is not None:
                values[f"{metric}_min"] = bound.min - metrics[metric]
        return values

    def times_beside_teacher(self) -> bool:
        """Whether a shape's latency is timed in turns with the teacher's (its ``latency_fraction``):
        only when an objective or constraint reads it, as it costs a teacher timing per shape."""
        return "latency_fraction" in self.objectives or "latency_fraction" in self.constraints

    def cost_violations(self, cost: dict[str, float]) -> list[str]:
        """The constraints that ``cost`` (a shape's size and latency, known before training) breaks, one
        line each; constraints on metrics not in ``cost`` (accuracy) are left for after training."""
        broken = []
        for metric, bound in self.constraints.items():
            value = cost.get(metric)
            if value is None:
                continue
            if bound.max is not None and value > bound.max:
                broken.append(f"{metric} {value:.4g} > max {bound.max:g}")
            if bound.min is not None and value < bound.min:
                broken.append(f"{metric} {value:.4g} < min {bound.min:g}")
        return broken

    @field_validator("constraints")
    @classmethod
    def _fraction_bound(cls, v: dict[str, Bound]) -> dict[str, Bound]:
        bound = v.get("latency_fraction")
        if bound and bound.max is not None and not 0 < bound.max <= 1:
            raise ValueError(
                f"latency_fraction: max {bound.max:g} is a fraction of the teacher's latency "
                "(0.25 = a quarter); give a value in (0, 1]"
            )
        return v

    @field_validator("objectives")
    @classmethod
    def _distinct(cls, v: list[str]) -> list[str]:
        if len(v) < 2 or len(set(v)) != len(v):
            raise ValueError("objectives must list at least two distinct metrics")
        return v


class TransferSpec(BaseModel):
    """The transfer set: text the teacher labels beyond the labelled training examples (classification).

    It holds ``dataset.unlabeled`` and ``augment`` altered copies of each training text (TinyBERT's
    recipe: each whole word replaced, with probability ``replace_prob``, by one of its ``neighbours``
    nearest words in the teacher's input embeddings). The teacher's logits on it are cached once, like
    the training examples'; ``autodistill train`` always trains on it, trials only with ``in_trials``.
    """

    model_config = ConfigDict(extra="forbid")

    augment: int = Field(0, ge=0, description="altered copies of each training text; 0: none")
    replace_prob: float = Field(0.4, gt=0, le=1, description="chance that a whole word is replaced")
    neighbours: int = Field(15, gt=0, description="nearest words in the teacher's embeddings to draw from")
    max_examples: int | None = Field(
        None, gt=0, description="cap on the transfer set's size (a seeded subset); default no cap"
    )
    in_trials: bool = Field(
        False,
        description="trials train on the transfer set of their own examples too (within train.steps); "
        "off: only `autodistill train` does",
    )

    def enabled(self, unlabeled: str | None) -> bool:
        return self.augment > 0 or unlabeled is not None


class CacheSpec(BaseModel):
    """Where the teacher's work is kept: the tokenised data, its targets, hidden states and reference metrics."""

    model_config = ConfigDict(extra="forbid")

    dir: str | None = Field(
        None,
        description="cache directory, which workers of a study may share (default OUT/cache; --cache-dir wins)",
    )


class SpaceConfig(BaseModel):
    """A whole search: teacher, data, student space, distillation, budget, measurement, study."""

    model_config = ConfigDict(extra="forbid")

    task: Literal["sequence-classification", "causal-lm"] = Field(
        "sequence-classification",
        description="what is distilled: a sequence classifier, or a causal language model (judged by perplexity)",
    )

    teacher: str | None = Field(None, description="local save_pretrained directory or hub id")
    trust_remote_code: bool = Field(
        False, description="run the teacher repository's own Python code (off: safe)"
    )
    allow_pickle: bool = Field(
        False, description="load pickle weights (pytorch_model.bin); off: safetensors only"
    )
    dataset: DatasetSpec = DatasetSpec()
    student: StudentSpec
    distill: DistillSpec
    train: TrainSpec = TrainSpec()
    latency: LatencySpec = LatencySpec()
    search: SearchSpec = Field(default_factory=SearchSpec, validate_default=True)
    transfer: TransferSpec = TransferSpec()
    cache: CacheSpec = CacheSpec()

    @model_validator(mode="after")
    def _classification_only(self) -> SpaceConfig:
        if self.task == "causal-lm" and self.transfer.enabled(self.dataset.unlabeled):
            raise ValueError(
                "transfer/dataset.unlabeled: the transfer set is for task: sequence-classification; a causal "
                "LM's teacher already gives a target at every token (remove transfer.augment and dataset.unlabeled)"
            )
        if self.distill.uses_attention_relations():
            heads = self.distill.relation_heads
            odd = [w for w in possible_ints(self.student.width) if w % heads]
            if odd:
                raise ValueError(
                    f"distill.relation_heads: student widths {odd} are not multiples of {heads}; choose "
                    "relation_heads that divides every width (or a width that is a multiple of it)"
                )
        return self

    @model_validator(mode="after")
    def _first_trials_in_space(self) -> SpaceConfig:
        named = self.values_by_trial_name()
        searchable = ", ".join(n for n, v in named.items() if isinstance(v, Dist)) or "none"
        for k, params in enumerate(self.search.first_trials):
            for name, value in params.items():
                where = f"search.first_trials[{k}].{name}"
                space_value = named.get(name)
                if name not in named:
                    raise ValueError(f"{where}: not a value a trial asks for (searchable here: {searchable})")
                if not isinstance(space_value, Dist):
                    raise ValueError(f"{where}: fixed at {space_value} in this space; leave it out here")
                if not space_value.admits(value):
                    raise ValueError(f"{where}: {value!r} is outside its distribution, {space_value.shown()}")
        return self

    def values_by_trial_name(self) -> dict[str, Any]:
        """The student and loss values a trial asks Optuna for, by the names it uses (``lambda``, not
        ``lam``): each a distribution, or a fixed value."""
        return {
            "init": self.student.init,
            "depth": self.student.depth,
            "width": self.student.width,
            "ffn_ratio": self.student.ffn_ratio,
            "lambda": self.distill.lam,
            "temperature": self.distill.temperature,
            "learning_rate": self.distill.learning_rate,
            "hidden_weight": self.distill.hidden_weight,
            "attention_weight": self.distill.attention_weight,
        }

    @field_validator("latency")
    @classmethod
    def _latency_fits_the_task(cls, v: LatencySpec, info: ValidationInfo) -> LatencySpec:
        if v.device == "cuda" and info.data.get("task") == "causal-lm":
            raise ValueError(
                "device: cuda is not supported for task: causal-lm (its latency is per-token decoding with "
                "the KV cache, timed on the CPU); use device: cpu"
            )
        return v

    @field_validator("search")
    @classmethod
    def _objectives_fit_the_task(cls, v: SearchSpec, info: ValidationInfo) -> SearchSpec:
        """Objectives default to the task's quality metric, latency and size; a metric of another task is
        refused (a classifier has no perplexity, a language model no accuracy)."""
        task = info.data.get("task", "sequence-classification")
        dataset = info.data.get("dataset")
        quality = "perplexity" if task == "causal-lm" else (dataset.metric if dataset else "accuracy")
        if "objectives" not in v.model_fields_set:
            return v.model_copy(update={"objectives": [quality, "latency_ms", "size_mb"]})
        others = [
            o for o in v.objectives if o in {q for qs in QUALITY_METRICS.values() for q in qs} - {quality}
        ]
        if others:
            source = "task: causal-lm" if task == "causal-lm" else f"dataset.metric: {quality}"
            raise ValueError(
                f"objectives: {', '.join(others)} is not this study's quality metric; with {source} use {quality!r}"
            )
        return v

    def quality_metric(self) -> str:
        """What the task is judged by: perplexity for causal LMs, dataset.metric for classifiers."""
        return "perplexity" if self.task == "causal-lm" else self.dataset.metric

    @field_validator("dataset", mode="before")
    @classmethod
    def _dataset_shorthand(cls, v: Any) -> Any:
        return {"path": v} if isinstance(v, str) else v

    def train_examples(self) -> int:
        """How many training examples a trial can see (the teacher's logits are cached for these)."""
        return self.dataset.max_train_examples or self.train.steps * self.train.batch_size
