"""``autodistill teacher``: fine-tune a teacher from a pretrained checkpoint (or a config) on a dataset.

Fine-tuning is the distillation loop with λ = 0 (plain cross-entropy): one loop to read, not two.
The result is a ``save_pretrained`` directory with ``id2label``, the tokenizer, and a card
(``teacher_card.json``) with its validation accuracy, data and settings. The same inputs reuse it.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from autodistill import __version__
from autodistill.config.schema import DatasetSpec
from autodistill.store.caches import teacher_fingerprint
from autodistill.util.devices import default_device
from autodistill.util.errors import first_line
from autodistill.util.files import swap_into_place, temporary_sibling
from autodistill.util.hashing import short_hash

CARD = "teacher_card.json"


@dataclass
class TeacherRecipe:
    base: str  # pretrained checkpoint (directory or hub id), or a config.json for a from-scratch model
    dataset: DatasetSpec = field(default_factory=DatasetSpec)
    tokenizer: str | None = None  # default: the base's own
    epochs: float = 2.0
    max_steps: int | None = None  # wins over epochs
    batch_size: int = 32
    learning_rate: float = 5e-5
    max_length: int = 64
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    seed: int = 0

    def from_config(self) -> bool:
        return self.base.endswith(".json")

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["dataset"] = self.dataset.model_dump()
        return d


def recipe_key(recipe: TeacherRecipe, data_fingerprint: str) -> str:
    base = recipe.base if recipe.from_config() else teacher_fingerprint(recipe.base)
    parts = [recipe.as_dict(), base, data_fingerprint]
    if recipe.from_config():
        parts.append(Path(recipe.base).read_text())
    return short_hash(parts)


def existing_card(out: Path, key: str) -> dict[str, Any] | None:
    """The card of a teacher already trained from the same inputs in ``out``, if any."""
    path = out / CARD
    if not path.is_file():
        return None
    card = json.loads(path.read_text())
    return card if card.get("inputs_key") == key else None


def _base_model(recipe: TeacherRecipe, labels: list[str]) -> tuple[Any, Any]:
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    from autodistill.tasks.teachers import dtype_kwarg

    id2label = dict(enumerate(labels))
    label2id = {name: i for i, name in id2label.items()}
    torch.manual_seed(recipe.seed)  # the new classification head (or the whole model) starts seeded
    # float32 whatever the base was saved in: fine-tuning a float16/bfloat16 model on CPU ends in
    # non-finite losses, and transformers 5 would keep the saved dtype (from_config reads it too)
    float32 = dtype_kwarg()
    if recipe.from_config():
        raw = json.loads(Path(recipe.base).read_text())
        config = AutoConfig.for_model(**raw)
        config.num_labels, config.id2label, config.label2id = len(labels), id2label, label2id
        model = AutoModelForSequenceClassification.from_config(config, **float32)
    else:
        model = AutoModelForSequenceClassification.from_pretrained(
            recipe.base,
            num_labels=len(labels),
            id2label=id2label,
            label2id=label2id,
            use_safetensors=True,
            **float32,
        )
    model.config.architectures = [type(model).__name__]
    # a regression or multi-label base is trained here as a single-label classifier, which the search
    # needs (it refuses teachers whose config says otherwise)
    model.config.problem_type = "single_label_classification"
    tokenizer = AutoTokenizer.from_pretrained(recipe.tokenizer or recipe.base)
    return model, tokenizer


def train_teacher(
    recipe: TeacherRecipe,
    labels: list[str],
    data: Any,
    out: Path,
    key: str,
    log: Callable[[str], None],
    on_step: Callable[[int, float], None] | None = None,
) -> tuple[dict[str, Any], list[float]]:
    """Fine-tune, evaluate, and write ``out`` atomically (a half-written teacher is never left there).

    Returns:
        (card, training losses per step).
    """
    import torch

    from autodistill.distill.loop import DistillRecipe, distill
    from autodistill.tasks.classification import LabelledBatches, SequenceClassification, accuracy, encode

    try:
        model, tokenizer = _base_model(recipe, labels)
    except Exception as exc:  # an unreachable hub id, a broken config.json, a missing tokenizer, ...
        raise ValueError(f"--base {recipe.base}: cannot load it ({first_line(exc)})") from None
    train = encode(data.train, tokenizer, recipe.max_length, cache_dir=None)
    validation = encode(data.validation, tokenizer, recipe.max_length, cache_dir=None)
    test = encode(data.test, tokenizer, recipe.max_length, cache_dir=None)
    steps = recipe.max_steps or max(1, math.ceil(recipe.epochs * len(train) / recipe.batch_size))
    device = default_device()
    log(
        f"teacher: fine-tuning {recipe.base} on {len(train)} examples, {len(labels)} classes, "
        f"{steps} steps of batch {recipe.batch_size} on {device}"
    )
    no_teacher = torch.zeros(len(train), len(labels))  # λ = 0: the soft term is not used
    loop = DistillRecipe(
        steps=steps,
        batch_size=recipe.batch_size,
        learning_rate=recipe.learning_rate,
        lam=0.0,
        temperature=1.0,
        warmup_ratio=recipe.warmup_ratio,
        weight_decay=recipe.weight_decay,
        seed=recipe.seed,
    )
    task = SequenceClassification()
    result = distill(model, LabelledBatches(train, no_teacher), task.loss, loop, device, on_step)
    start = time.perf_counter()
    val_accuracy = accuracy(model, validation, 64, device)
    test_accuracy = accuracy(model, test, 64, device)  # the students' test examples, never trained on
    card = {
        "base": recipe.base,
        "recipe": recipe.as_dict(),
        "labels": labels,
        "train_examples": len(train),
        "validation_examples": len(validation),
        "validation_source": data.validation_source,
        "steps": steps,
        "validation_accuracy": round(val_accuracy, 4),
        "test_examples": len(test),
        "test_source": data.test_source,
        "test_accuracy": round(test_accuracy, 4),
        "train_seconds": round(result.seconds, 1),
        "eval_seconds": round(time.perf_counter() - start, 1),
        "device": device,
        "autodistill_version": __version__,
        "inputs_key": key,
    }
    tmp = temporary_sibling(out)
    model.to("cpu").save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    (tmp / CARD).write_text(json.dumps(card, indent=2))
    swap_into_place(tmp, out, CARD, "an autodistill teacher")
    return card, result.losses
