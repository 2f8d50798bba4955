"""Build a student from the teacher's config family with depth and width changed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from autodistill.space import StudentArch


@dataclass(frozen=True)
class ArchFields:
    """What a config family calls depth, width, heads and feed-forward size."""

    depth: str
    width: str
    heads: str
    ffn: str


BERT_FIELDS = ArchFields("num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size")

# Families whose configs name the four sizes differently from BERT. BERT, RoBERTa, XLM-R, ELECTRA
# (without a separate embedding size), MiniLM, DeBERTa and others use the BERT names.
ARCH_FIELDS: dict[str, ArchFields] = {
    "distilbert": ArchFields("n_layers", "dim", "n_heads", "hidden_dim"),
}


class StudentBuildError(ValueError):
    """The teacher's config family cannot be resized the way the trial asks."""


def arch_fields(config: Any) -> ArchFields:
    fields = ARCH_FIELDS.get(config.model_type, BERT_FIELDS)
    missing = [name for name in vars(fields).values() if not hasattr(config, name)]
    if missing:
        raise StudentBuildError(
            f"teacher model_type '{config.model_type}' has no {', '.join(missing)} in its config; "
            "autodistill resizes BERT-, RoBERTa- and DistilBERT-style encoders"
        )
    return fields


def teacher_arch(config: Any) -> StudentArch:
    """The teacher's own depth, width, heads and feed-forward size."""
    f = arch_fields(config)
    return StudentArch(
        depth=getattr(config, f.depth),
        width=getattr(config, f.width),
        heads=getattr(config, f.heads),
        ffn=getattr(config, f.ffn),
    )


def student_config(teacher_config: Any, arch: StudentArch) -> Any:
    """A copy of the teacher's config with the student's sizes; labels and vocabulary are kept."""
    config = teacher_config.__class__.from_dict(teacher_config.to_dict())
    fields = arch_fields(config)
    for field, value in zip(
        vars(fields).values(), (arch.depth, arch.width, arch.heads, arch.ffn), strict=True
    ):
        setattr(config, field, value)
    if hasattr(config, "embedding_size") and config.embedding_size != arch.width:
        config.embedding_size = arch.width  # ELECTRA-style factorised embeddings follow the width
    return config


def build_student(teacher_config: Any, arch: StudentArch, seed: int) -> Any:
    """A randomly initialised ``AutoModelForSequenceClassification`` of the student's shape.

    Raises:
        StudentBuildError: the family cannot take this shape (e.g. width not divisible by heads).
    """
    import torch
    from transformers import AutoModelForSequenceClassification

    if arch.width % arch.heads:
        raise StudentBuildError(f"width {arch.width} is not divisible by {arch.heads} heads")
    torch.manual_seed(seed)
    return AutoModelForSequenceClassification.from_config(student_config(teacher_config, arch))
