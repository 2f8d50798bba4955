"""The real fine-tuned MiniLM teacher reaches its stated SST-2 accuracy through our own data and evaluation code."""

from __future__ import annotations

import json

import pytest

from autodistill.config.spacefile import load_space
from autodistill.search.inputs import inspect_inputs
from autodistill.tasks.classification.data import Split
from autodistill.tasks.classification.encoding import encode
from autodistill.tasks.classification.evaluation import accuracy
from autodistill.tasks.classification.teacher import load_teacher
from tests.conftest import MINILM_TEACHER, REPO, SST2

pytestmark = pytest.mark.slow


def test_minilm_teacher_accuracy_on_sst2_validation() -> None:
    card = json.loads((MINILM_TEACHER / "teacher_card.json").read_text())
    space = load_space(
        REPO / "search_spaces" / "bert.yaml",
        [f"train.max_length={card['max_length']}", "train.steps=1"],
        teacher=str(MINILM_TEACHER),
        dataset=str(SST2),
    ).config
    inputs, problems = inspect_inputs(space)
    assert inputs is not None, problems
    data = inputs.examples
    assert data.validation_source == "validation" and len(data.validation.texts) + len(data.test.texts) == 872
    model, tokenizer = load_teacher(str(MINILM_TEACHER))
    # the card's figure is on all of SST-2's validation split: the search's validation and test halves
    whole = Split(data.validation.texts + data.test.texts, data.validation.labels + data.test.labels)
    validation = encode(whole, tokenizer, space.train.max_length, cache_dir=None)
    measured = accuracy(model, validation, batch_size=64, device="cpu")
    assert measured == pytest.approx(card["validation_accuracy"], abs=0.01)
