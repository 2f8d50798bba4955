"""The task seam: what differs between kinds of distillation (sequence classification, later causal
language models) behind one small interface. Search, tracking, Pareto, report and CLI use a ``Task``
without knowing which one runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from autodistill.config.schema import LatencySpec, SpaceConfig
from autodistill.distill.loop import TrainingSet
from autodistill.distill.loss import LossParts
from autodistill.distill.teacher_states import TokenBatches
from autodistill.measure.latency import Latency


@dataclass
class TaskInputs:
    """What a task read and checked without compute: the teacher's config and the task's examples."""

    teacher_config: Any
    examples: Any  # the task's own record of its examples (e.g. labelled texts)
    train_examples: int  # how many training examples there are (within the space's budget)
    fingerprint: str  # identifies the examples' content (texts and labels), not their path
    facts: dict[str, Any] = field(default_factory=dict)  # logged on the study's parent run
    summary: dict[str, str] = field(default_factory=dict)  # what `validate` prints: a line per row name


@dataclass
class TaskData:
    """Examples tokenised once, with the teacher's targets on the training examples (cached)."""

    train: TrainingSet  # batches carry the teacher's targets for the task's loss step
    train_tokens: TokenBatches  # the same training examples as tokens, for the teacher's hidden states
    validation: Any  # what ``Task.evaluate`` scores during the search (stopping, selection)
    test: Any  # scored once per front student and per full-length result; never stops or selects
    key: list[Any]  # identifies teacher, examples and tokenisation, for the caches built on them
    # identifies teacher and the validation and test examples alone, for the teacher's reference metrics:
    # a full-length run on other training examples (or a transfer set) reuses them
    evaluation_key: list[Any] = field(default_factory=list)


class Task(Protocol):
    """One kind of distillation; ``tasks.get_task(space)`` gives the implementation a space names."""

    name: str  # as written in the space's ``task:``
    metric: str  # the quality objective, e.g. "accuracy"
    direction: Literal["maximize", "minimize"]  # which way the quality objective is better
    exports_onnx: bool  # whether `export --onnx` can write (and check) an ONNX graph of its students

    @classmethod
    def for_space(cls, space: SpaceConfig) -> Task:
        """The task as ``space`` sets it up (e.g. which quality metric it reports)."""
        ...

    def auto_class(self) -> Any:
        """The transformers Auto class that builds, exports and reloads a student."""
        ...

    def inspect(
        self, space: SpaceConfig, cache_dir: Path | None = None
    ) -> tuple[TaskInputs | None, list[str]]:
        """Check the teacher and the dataset against each other and the space, loading no weights;
        every problem is returned, one line each naming the flag or key. What an earlier run cached under
        ``cache_dir`` may be read (tokens); nothing is written."""
        ...

    def load_teacher(self, space: SpaceConfig, device: str = "cpu") -> tuple[Any, Any]:
        """The teacher model, in eval mode, and its tokenizer, in the dtype it runs in on ``device``."""
        ...

    def prepare(
        self,
        space: SpaceConfig,
        inputs: TaskInputs,
        teacher: Any,
        tokenizer: Any,
        cache_dir: Path,
        device: str,
        log: Callable[[str], None],
        transfer: bool = False,
    ) -> TaskData:
        """Tokenise the examples once and compute (or reuse) the teacher's targets on them; with
        ``transfer``, the training examples include the space's transfer set (where the task has one)."""
        ...

    def forward(self, model: Any, batch: dict[str, Any], output_hidden_states: bool) -> Any:
        """A student's forward pass on a training ``batch``: the outputs ``loss`` reads."""
        ...

    def loss(self, outputs: Any, batch: dict[str, Any], lam: float, temperature: float) -> LossParts:
        """The distillation loss of a student's ``outputs`` on a training ``batch``."""
        ...

    def measure_latency(self, model: Any, spec: LatencySpec) -> Latency:
        """How long the model takes to answer, as deployed for this task (batch 1, on the CPU)."""
        ...

    def evaluate(self, model: Any, data: Any, batch_size: int, device: str) -> float:
        """The quality metric of ``model`` on ``data`` (e.g. ``TaskData.validation``)."""
        ...

    def samples(self, model: Any, tokenizer: Any) -> dict[str, str]:
        """Text artifacts showing what a front student does (file name → text), e.g. a generated sample;
        empty when the task has none to show."""
        ...

    def model_card(
        self, title: str, settings: dict[str, Any], metrics: dict[str, Any], facts: dict[str, Any]
    ) -> str:
        """The README.md of an exported student."""
        ...
