"""Sequence classification, the first implementation of the task seam.

Examples are labelled texts; the teacher's targets are its logits per example (cached once per study);
the loss is Hinton's on the class distribution; quality is accuracy on the validation examples.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from autodistill.config.schema import LatencySpec, SpaceConfig
from autodistill.data.sources import DataError
from autodistill.distill.loop import plain_forward
from autodistill.distill.loss import LossParts, distillation_loss
from autodistill.measure.latency import Latency, measure_latency
from autodistill.store.caches import cached, teacher_fingerprint
from autodistill.tasks.base import TaskData, TaskInputs
from autodistill.tasks.card import CardText, model_card
from autodistill.tasks.classification.data import TextData, fingerprint, load_text_data
from autodistill.tasks.classification.encoding import Encoded, encode
from autodistill.tasks.classification.evaluation import accuracy, macro_f1, predict_logits
from autodistill.tasks.classification.teacher import TeacherError, inspect_teacher, load_teacher
from autodistill.tasks.classification.transfer import joined, load_unlabeled, transfer_set

CARD = CardText(
    pipeline_tag="text-classification",
    loss="A student distilled by autodistill with the Hinton loss\n(1-λ)·CE(labels) + λ·T²·KL(teacher_T ‖ student_T).",
    usage="from transformers import AutoModelForSequenceClassification, AutoTokenizer\n"
    'model = AutoModelForSequenceClassification.from_pretrained("PATH")\n'
    'tokenizer = AutoTokenizer.from_pretrained("PATH")',
)


@dataclass
class LabelledBatches:
    """Training examples with their labels and the teacher's logits, drawn in batches by index."""

    tokens: Encoded
    teacher_logits: torch.Tensor  # [examples, classes]

    def __post_init__(self) -> None:
        if self.teacher_logits.shape[0] != len(self.tokens):
            raise ValueError(
                f"teacher logits for {self.teacher_logits.shape[0]} examples, but {len(self.tokens)} train examples"
            )

    def __len__(self) -> int:
        return len(self.tokens)

    def batch(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        return {**self.tokens.batch(index), "teacher_logits": self.teacher_logits[index]}


class SequenceClassification:
    """Distil a ``*ForSequenceClassification`` teacher; judged by accuracy or macro-F1 (``dataset.metric``)."""

    name = "sequence-classification"
    direction: Literal["maximize", "minimize"] = "maximize"
    exports_onnx = True

    def __init__(self, metric: str = "accuracy"):
        self.metric = metric

    @classmethod
    def for_space(cls, space: SpaceConfig) -> SequenceClassification:
        return cls(space.dataset.metric)

    def auto_class(self) -> Any:
        from transformers import AutoModelForSequenceClassification

        return AutoModelForSequenceClassification

    def inspect(
        self, space: SpaceConfig, cache_dir: Path | None = None
    ) -> tuple[TaskInputs | None, list[str]]:
        problems: list[str] = []
        teacher = None
        try:
            teacher = inspect_teacher(space.teacher, space.trust_remote_code, space.allow_pickle)
        except TeacherError as exc:
            problems.append(str(exc))
        data: TextData | None = None
        try:
            num_labels = teacher.num_labels if teacher else 10**9  # unknown: skip the range check
            label2id = teacher.label2id if teacher else {}
            data = load_text_data(space.dataset, num_labels, label2id, space.train_examples())
        except DataError as exc:
            problems.append(str(exc))
        if data is not None and space.dataset.unlabeled:
            try:
                data.unlabeled = load_unlabeled(space.dataset.unlabeled, space.dataset.text_column)
            except DataError as exc:
                problems.append(str(exc))
        if data is not None and space.teacher:
            problems += _holdout_leaks(space, data)
        if problems or teacher is None or data is None:
            return None, problems
        facts = {
            "teacher_labels": teacher.num_labels,
            "dataset.text_column": data.text_column,
            "dataset.label_column": data.label_column,
            "dataset.validation": data.validation_source,
            "dataset.train_examples": len(data.train.texts),
            "dataset.validation_examples": len(data.validation.texts),
            "dataset.test": data.test_source,
            "dataset.test_examples": len(data.test.texts),
            **({"dataset.unlabeled_examples": len(data.unlabeled)} if data.unlabeled else {}),
        }
        summary = {
            "teacher": f"{space.teacher} ({teacher.num_labels} labels)",
            "dataset": f"{space.dataset.path}: text '{data.text_column}', label '{data.label_column}', "
            f"{len(data.train.texts)} train examples per trial budget, {len(data.validation.texts)} validation "
            f"({data.validation_source}), {len(data.test.texts)} test ({data.test_source})",
        }
        inputs = TaskInputs(
            teacher_config=teacher.config,
            examples=data,
            train_examples=len(data.train.texts),
            fingerprint=data.fingerprint,
            facts=facts,
            summary=summary,
        )
        return inputs, []

    def load_teacher(self, space: SpaceConfig, device: str = "cpu") -> tuple[Any, Any]:
        assert space.teacher is not None  # inspect checked it
        return load_teacher(space.teacher, space.trust_remote_code, space.allow_pickle)

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
        data: TextData = inputs.examples
        max_length = space.train.max_length
        train = encode(data.train, tokenizer, max_length, cache_dir)
        validation = encode(data.validation, tokenizer, max_length, cache_dir)
        test = encode(data.test, tokenizer, max_length, cache_dir)
        key = [teacher_fingerprint(str(space.teacher)), data.fingerprint, max_length]

        def compute() -> torch.Tensor:
            log(f"teacher: computing logits on {len(train)} training examples (once, cached) on {device}")
            return predict_logits(teacher, train, space.train.eval_batch_size, device)

        logits = cached("teacher-logits", cache_dir, key, compute, log=log)
        if transfer and space.transfer.enabled(space.dataset.unlabeled):
            extra = transfer_set(space, data, train, teacher, tokenizer, cache_dir, device, log)
            train, logits = joined([train, extra.tokens]), torch.cat([logits, extra.logits])
            key = [*key, extra.key]  # the hidden states' cache covers the transfer set too
        return TaskData(
            train=LabelledBatches(train, logits),
            train_tokens=train,
            validation=validation,
            test=test,
            key=key,
            evaluation_key=[key[0], fingerprint(data.validation, data.test), max_length],
        )

    def forward(self, model: Any, batch: dict[str, Any], output_hidden_states: bool) -> Any:
        return plain_forward(model, batch, output_hidden_states)

    def loss(self, outputs: Any, batch: dict[str, Any], lam: float, temperature: float) -> LossParts:
        return distillation_loss(outputs.logits, batch["teacher_logits"], batch["labels"], lam, temperature)

    def measure_latency(self, model: Any, spec: LatencySpec) -> Latency:
        return measure_latency(model, spec)  # one forward pass over the input, torch or onnxruntime

    def evaluate(self, model: Any, data: Any, batch_size: int, device: str) -> float:
        score = macro_f1 if self.metric == "macro_f1" else accuracy
        return score(model, data, batch_size, device)

    def samples(self, model: Any, tokenizer: Any) -> dict[str, str]:
        return {}  # a label is shown by the metrics already

    def model_card(
        self, title: str, settings: dict[str, Any], metrics: dict[str, Any], facts: dict[str, Any]
    ) -> str:
        return model_card(CARD, title, settings, metrics, facts)


def _holdout_leaks(space: SpaceConfig, data: TextData) -> list[str]:
    """A teacher from `autodistill teacher` must not have trained on the search's validation holdout."""
    card_path = Path(str(space.teacher)) / "teacher_card.json"
    if not card_path.is_file() or not data.validation_source.startswith("holdout"):
        return []
    taught = json.loads(card_path.read_text()).get("recipe", {}).get("dataset", {})
    same_data = (
        taught.get("path") and Path(taught["path"]).resolve() == Path(str(space.dataset.path)).resolve()
    )
    if not same_data:
        return []
    fraction, seed = taught.get("holdout_fraction"), taught.get("split_seed", 0)
    if seed != space.dataset.split_seed or (
        fraction is not None and space.dataset.holdout_fraction > fraction
    ):
        return [
            f"dataset.holdout_fraction/split_seed: the teacher held out {fraction} with split_seed {seed}, so it "
            f"trained on part of this holdout ({space.dataset.holdout_fraction}, seed {space.dataset.split_seed}); "
            f"set dataset.holdout_fraction ≤ {fraction} and dataset.split_seed: {seed}"
        ]
    return []
