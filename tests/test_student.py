"""Students are built from the teacher's config family: BERT, RoBERTa, MPNet and DistilBERT name sizes differently."""

from __future__ import annotations

import pytest
import torch
from transformers import (
    AutoModelForSequenceClassification,
    BertConfig,
    DistilBertConfig,
    MPNetConfig,
    RobertaConfig,
    T5Config,
)

from autodistill.distill.student import (
    StudentArch,
    StudentBuildError,
    build_student,
    student_config,
    teacher_arch,
)

ARCH = StudentArch(depth=1, width=32, heads=2, ffn=64)
COMMON = {"vocab_size": 100, "num_labels": 3}


@pytest.mark.parametrize(
    "teacher",
    [
        BertConfig(
            hidden_size=64, num_hidden_layers=3, num_attention_heads=4, intermediate_size=128, **COMMON
        ),
        RobertaConfig(
            hidden_size=64, num_hidden_layers=3, num_attention_heads=4, intermediate_size=128, **COMMON
        ),
        DistilBertConfig(dim=64, n_layers=3, n_heads=4, hidden_dim=128, **COMMON),
        MPNetConfig(
            hidden_size=64, num_hidden_layers=3, num_attention_heads=4, intermediate_size=128, **COMMON
        ),
    ],
    ids=["bert", "roberta", "distilbert", "mpnet"],
)
def test_student_takes_depth_and_width_and_keeps_labels(teacher) -> None:
    assert teacher_arch(teacher) == StudentArch(depth=3, width=64, heads=4, ffn=128)
    model = build_student(teacher, ARCH, 0, AutoModelForSequenceClassification)
    assert teacher_arch(model.config) == ARCH
    assert model.config.num_labels == 3 and model.config.model_type == teacher.model_type
    out = model(input_ids=torch.tensor([[5, 6, 7]])).logits
    assert out.shape == (1, 3)
    assert teacher_arch(teacher).depth == 3  # the teacher's config is not changed


def test_same_seed_same_student() -> None:
    teacher = BertConfig(
        hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, **COMMON
    )
    a, b = (build_student(teacher, ARCH, 7, AutoModelForSequenceClassification) for _ in range(2))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def test_unsupported_family_is_a_clear_error() -> None:
    with pytest.raises(StudentBuildError, match="model_type 't5'"):
        student_config(T5Config(), ARCH)


def test_width_not_divisible_by_heads() -> None:
    teacher = BertConfig(
        hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, **COMMON
    )
    with pytest.raises(StudentBuildError, match="not divisible"):
        build_student(
            teacher, StudentArch(depth=1, width=30, heads=4, ffn=64), 0, AutoModelForSequenceClassification
        )
