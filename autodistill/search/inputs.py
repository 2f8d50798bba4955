"""Checking a search's inputs without compute: the task's teacher and data, and whether the space's
students fit the teacher. ``validate`` runs this, and ``search`` runs it before anything heavy; every
problem is collected, so a user with three mistakes hears of three.
"""

from __future__ import annotations

from pathlib import Path

from autodistill.config.schema import SpaceConfig, upper_bound
from autodistill.distill.student import (
    StudentArch,
    StudentBuildError,
    arch_fields,
    check_teacher_init,
    kv_heads_for,
    teacher_arch,
)
from autodistill.tasks import TaskInputs, get_task


def inspect_inputs(space: SpaceConfig, cache_dir: Path | None = None) -> tuple[TaskInputs | None, list[str]]:
    """Read the teacher's config and the dataset (through the space's task), and check they fit each
    other, the space and this machine; what earlier runs cached under ``cache_dir`` is read, not written."""
    device = latency_device_problem(space)
    inputs, problems = _inspect_inputs(space, cache_dir)
    return (None, [device, *problems]) if device else (inputs, problems)


def latency_device_problem(space: SpaceConfig) -> str | None:
    """``latency.device: cuda`` needs a GPU on this machine (the default, cpu, runs anywhere)."""
    import torch

    if space.latency.device == "cuda" and not torch.cuda.is_available():
        return (
            "latency.device: cuda, but torch finds no CUDA device on this machine; "
            "use latency.device: cpu (the default) or run on a GPU machine"
        )
    return None


def _inspect_inputs(space: SpaceConfig, cache_dir: Path | None) -> tuple[TaskInputs | None, list[str]]:
    inputs, problems = get_task(space).inspect(space, cache_dir)
    if inputs is None:
        return None, problems
    try:
        arch_fields(inputs.teacher_config)
    except StudentBuildError as exc:
        return None, [str(exc)]
    problems = _students_fit(space, inputs.teacher_config)
    return (None, problems) if problems else (inputs, [])


def _students_fit(space: SpaceConfig, teacher_config: object) -> list[str]:
    """Inputs must fit the teacher's positions; teacher-based inits need students no larger than it."""
    limit = getattr(teacher_config, "max_position_embeddings", None)
    teacher = teacher_arch(teacher_config)
    problems = _teacher_init_fits(space, teacher)
    heads = space.distill.relation_heads
    if space.distill.uses_attention_relations() and teacher.width % heads:
        problems.append(
            f"distill.relation_heads: the teacher's width {teacher.width} is not a multiple of {heads}; "
            "choose relation_heads that divides it and every student width"
        )
    for key, length in (
        ("train.max_length", space.train.max_length),
        ("latency.sequence_length", space.latency.sequence_length),
    ):
        if limit and length > limit:
            problems.append(
                f"{key}: {length} exceeds the teacher's max_position_embeddings {limit}; lower it"
            )
    return problems


def _teacher_init_fits(space: SpaceConfig, teacher: StudentArch) -> list[str]:
    """Teacher-based inits select from the teacher's weights and the hidden-state loss matches each
    student layer to a teacher layer, so neither works for a student larger than the teacher."""
    student = space.student
    inits = sorted(set(student.init_choices()) - {"random"})
    uses = inits + (["the hidden-state loss"] if space.distill.uses_hidden_states() else [])
    problems = []
    max_depth = int(upper_bound(student.depth))
    if uses and max_depth > teacher.depth:
        problems.append(
            f"student.depth: up to {max_depth}, but {' and '.join(uses)} needs a teacher layer per student "
            f"layer and the teacher has {teacher.depth}; lower depth to ≤ {teacher.depth}"
        )
    if "weight-select" in inits:
        width = int(upper_bound(student.width))
        heads = student.heads_for(width)
        ffn = student.ffn_for(width, upper_bound(student.ffn_ratio))
        largest = StudentArch(min(max_depth, teacher.depth), width, heads, ffn, kv_heads_for(teacher, heads))
        try:
            check_teacher_init(teacher, largest, "weight-select")
        except StudentBuildError as exc:
            problems.append(
                f"student.width/head_size/ffn_ratio: {exc} (the teacher has width {teacher.width}, "
                f"{teacher.heads} heads of {teacher.head_size}, feed-forward {teacher.ffn})"
            )
    return problems
