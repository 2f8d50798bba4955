"""Build a student from the teacher's config family with depth and width changed, and start it from
the teacher's own weights when asked."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class StudentArch:
    """A student's shape; heads and feed-forward size follow from width by the space's rules."""

    depth: int
    width: int
    heads: int
    ffn: int

    @property
    def head_size(self) -> int:
        return self.width // self.heads


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


def build_student(teacher_config: Any, arch: StudentArch, seed: int, auto_class: Any) -> Any:
    """A randomly initialised model of the student's shape, built by ``auto_class.from_config``
    (the task's Auto class, e.g. ``AutoModelForSequenceClassification``).

    Raises:
        StudentBuildError: the family cannot take this shape (e.g. width not divisible by heads).
    """
    import torch

    if arch.width % arch.heads:
        raise StudentBuildError(f"width {arch.width} is not divisible by {arch.heads} heads")
    torch.manual_seed(seed)
    return auto_class.from_config(student_config(teacher_config, arch))


def select_layers(teacher_depth: int, depth: int, how: str = "even") -> list[int]:
    """Which teacher layers a ``depth``-layer student starts from and is matched to.

    ``even`` spreads them and always ends at the top layer, whose output the teacher's classifier
    reads (6 of 12 → 1, 3, 5, 7, 9, 11; 1 of 6 → 5); ``first``/``last`` take a contiguous block.
    """
    if not 1 <= depth <= teacher_depth:
        raise StudentBuildError(f"a teacher-based student needs 1 ≤ depth ≤ {teacher_depth}; got {depth}")
    if how == "first":
        return list(range(depth))
    if how == "last":
        return list(range(teacher_depth - depth, teacher_depth))
    return [round((i + 1) * teacher_depth / depth) - 1 for i in range(depth)]


def evenly_spaced(total: int, keep: int) -> Any:
    """``keep`` of ``total`` indices spread evenly, as a LongTensor; all of them when keep == total."""
    import torch

    return torch.linspace(0, total - 1, keep).round().long()


# Attention projections: their output rows (query/key/value) or input columns (output projection) are
# ordered head by head, so a narrower student selects heads and dimensions within heads, not units.
_ATTENTION_IN = re.compile(r"attention\.(self\.(query|key|value)(_proj)?|q_lin|k_lin|v_lin)\.")
_ATTENTION_OUT = re.compile(r"attention\.(output\.dense|out_lin)\.weight$")
_LAYER = re.compile(r"\.layer\.(\d+)\.")


def check_teacher_init(teacher: StudentArch, student: StudentArch, init: str) -> None:
    """Raise StudentBuildError when ``student`` cannot start from ``teacher``'s weights."""
    if init == "teacher-layers" and (student.width, student.heads, student.ffn) != (
        teacher.width,
        teacher.heads,
        teacher.ffn,
    ):
        raise StudentBuildError(
            f"teacher-layers copies whole layers: the student needs the teacher's width {teacher.width}, "
            f"{teacher.heads} heads and feed-forward {teacher.ffn}; use weight-select for other shapes"
        )
    too_big = [
        f"{name} {s} > {t}"
        for name, s, t in (
            ("depth", student.depth, teacher.depth),
            ("width", student.width, teacher.width),
            ("heads", student.heads, teacher.heads),
            ("head size", student.head_size, teacher.head_size),
            ("feed-forward", student.ffn, teacher.ffn),
        )
        if s > t
    ]
    if too_big:
        raise StudentBuildError(
            f"{init} selects from the teacher, so the student cannot be larger: {', '.join(too_big)}"
        )


def init_from_teacher(
    student: Any, teacher_state: dict[str, Any], teacher: StudentArch, arch: StudentArch, layers: list[int]
) -> None:
    """Copy into ``student`` a consistent subset of the teacher's weights (Xu et al. 2023, "Initializing
    Models with Larger Ones"): student layer i is teacher layer ``layers[i]``, and every matrix keeps the
    same evenly spaced hidden units, heads, dimensions within heads and feed-forward units, so the
    residual stream stays aligned across layers. At the teacher's width this is DistilBERT's layer copy.
    """
    hidden = evenly_spaced(teacher.width, arch.width)
    ffn = evenly_spaced(teacher.ffn, arch.ffn)
    heads = evenly_spaced(teacher.heads, arch.heads)
    within = evenly_spaced(teacher.head_size, arch.head_size)
    attention = (heads[:, None] * teacher.head_size + within[None, :]).flatten()

    def units(name: str, dim: int, teacher_size: int) -> Any:
        if (dim == 0 and _ATTENTION_IN.search(name)) or (dim == 1 and _ATTENTION_OUT.search(name)):
            return attention
        if teacher_size == teacher.width:
            return hidden
        if teacher_size == teacher.ffn:
            return ffn
        raise StudentBuildError(f"cannot map {name} dimension {dim} ({teacher_size}) onto the student")

    selected = {}
    for name, param in student.state_dict().items():
        source = _LAYER.sub(lambda m: f".layer.{layers[int(m.group(1))]}.", name)
        weight = teacher_state[source]
        for dim, size in enumerate(param.shape):
            if weight.shape[dim] != size:
                weight = weight.index_select(dim, units(name, dim, weight.shape[dim]).to(weight.device))
        selected[name] = weight.clone()
    student.load_state_dict(selected)
