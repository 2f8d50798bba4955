"""Distillation itself: students shaped from the teacher's config (and started from its weights), the
loss as a pure function of its parts, the teacher's hidden states, and the one training loop."""

from autodistill.distill.loop import DistillRecipe, HiddenMatch, LossStep, TrainingSet, TrainResult, distill
from autodistill.distill.loss import LossParts, distillation_loss, hidden_state_loss
from autodistill.distill.student import (
    StudentArch,
    StudentBuildError,
    arch_fields,
    build_student,
    check_teacher_init,
    init_from_teacher,
    select_layers,
    teacher_arch,
)
from autodistill.distill.teacher_states import TeacherStates, teacher_states

__all__ = [
    "DistillRecipe",
    "HiddenMatch",
    "LossParts",
    "LossStep",
    "StudentArch",
    "StudentBuildError",
    "TeacherStates",
    "TrainResult",
    "TrainingSet",
    "arch_fields",
    "build_student",
    "check_teacher_init",
    "distill",
    "distillation_loss",
    "hidden_state_loss",
    "init_from_teacher",
    "select_layers",
    "teacher_arch",
    "teacher_states",
]
