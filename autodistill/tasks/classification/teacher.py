"""The classification teacher: check from its config that it is a usable classifier, and load it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from autodistill.tasks.teachers import (
    FLOAT32,
    TeacherError,
    dtype_kwarg,
    load_pretrained,
    read_teacher_config,
)

__all__ = ["FLOAT32", "TeacherError", "TeacherInfo", "dtype_kwarg", "inspect_teacher", "load_teacher"]


@dataclass
class TeacherInfo:
    """What validation needs to know, read from the config alone (no weights loaded)."""

    config: Any
    num_labels: int
    label2id: dict[str, int]


def inspect_teacher(
    ref: str | None, trust_remote_code: bool = False, allow_pickle: bool = False
) -> TeacherInfo:
    """Read the teacher's config and check that it is a sequence classifier with loadable weights.

    Raises:
        TeacherError: no teacher given, path missing, no config, not a sequence classifier, weights
            only in pickle form (which can run code when loaded) without ``allow_pickle``, or a regression
            or multi-label head (the loss and accuracy are those of one class per example).
    """
    config = read_teacher_config(
        ref,
        trust_remote_code,
        allow_pickle,
        ("ForSequenceClassification",),
        "fine-tune a *ForSequenceClassification model first",
    )
    problem_type = getattr(config, "problem_type", None)
    if problem_type == "regression" or int(config.num_labels) == 1:
        why = "problem_type 'regression'" if problem_type == "regression" else "num_labels 1"
        raise TeacherError(
            f"--teacher {ref}: it is a regression model ({why}, {config.num_labels} output); "
            "autodistill distils classifiers with 2 or more classes"
        )
    if problem_type == "multi_label_classification":
        raise TeacherError(
            f"--teacher {ref}: it is a multi-label classifier (problem_type {problem_type!r}); autodistill "
            "distils single-label classifiers (one class per example)"
        )
    # id2label names the teacher's outputs (label2id is often left at its default beside it)
    id2label = getattr(config, "id2label", None) or {}
    label2id = {str(name): int(i) for i, name in id2label.items()}
    return TeacherInfo(config=config, num_labels=int(config.num_labels), label2id=label2id)


def load_teacher(
    ref: str, trust_remote_code: bool = False, allow_pickle: bool = False, dtype: str = FLOAT32
) -> tuple[Any, Any]:
    """The teacher classifier (float32 unless ``dtype`` says otherwise) and its tokenizer."""
    from transformers import AutoModelForSequenceClassification

    return load_pretrained(AutoModelForSequenceClassification, ref, trust_remote_code, allow_pickle, dtype)
