"""Delivering a student: export a trial's student, train a chosen one at full length and register it,
and prepare a teacher to distil from (`autodistill teacher`)."""

from autodistill.deliver.export import export_trial, write_export
from autodistill.deliver.full_training import FullLengthResult, train_full_length
from autodistill.deliver.teacher_prep import TeacherRecipe, existing_card, recipe_key, train_teacher

__all__ = [
    "FullLengthResult",
    "TeacherRecipe",
    "existing_card",
    "export_trial",
    "recipe_key",
    "train_full_length",
    "train_teacher",
    "write_export",
]
