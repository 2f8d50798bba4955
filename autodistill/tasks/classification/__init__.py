"""Sequence classification: labelled texts, logits per example, Hinton's loss, accuracy."""

from autodistill.tasks.classification.data import Split, TextData, discover_labels, load_text_data
from autodistill.tasks.classification.encoding import Encoded, encode
from autodistill.tasks.classification.evaluation import accuracy, predict_logits
from autodistill.tasks.classification.task import LabelledBatches, SequenceClassification
from autodistill.tasks.classification.teacher import TeacherError, inspect_teacher, load_teacher

__all__ = [
    "Encoded",
    "LabelledBatches",
    "SequenceClassification",
    "Split",
    "TeacherError",
    "TextData",
    "accuracy",
    "discover_labels",
    "encode",
    "inspect_teacher",
    "load_teacher",
    "load_text_data",
    "predict_logits",
]
