"""Delivering a student: export a trial's student, train a chosen one (or the best few of the front under
a latency bound) at full length and register it, and prepare a teacher to distil from (`autodistill teacher`)."""

from autodistill.deliver.choosing import ChoiceError, best_after_training, select_candidates
from autodistill.deliver.export import export_trial, write_export
from autodistill.deliver.full_training import BestResult, FullLengthResult, train_best, train_full_length
from autodistill.deliver.teacher_prep import TeacherRecipe, existing_card, recipe_key, train_teacher

__all__ = [
    "BestResult",
    "ChoiceError",
    "FullLengthResult",
    "TeacherRecipe",
    "best_after_training",
    "existing_card",
    "export_trial",
    "recipe_key",
    "select_candidates",
    "train_best",
    "train_full_length",
    "train_teacher",
    "write_export",
]
