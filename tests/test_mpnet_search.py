"""A real short search from a tiny MPNet teacher: weight-select students (heads, dimensions within heads
and the relative attention bias selected from the teacher), the hidden-state loss, real Optuna and MLflow."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from autodistill.cli import main
from tests.conftest import MINILM_TEACHER, search_args

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_mpnet_teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer × 64 MPNet classifier (4 heads of 16) built from a config, with the MiniLM tokenizer."""
    import torch
    from transformers import AutoTokenizer, MPNetConfig, MPNetForSequenceClassification

    out = tmp_path_factory.mktemp("tiny-mpnet-teacher")
    tokenizer = AutoTokenizer.from_pretrained(MINILM_TEACHER)
    config = MPNetConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=128,
        # MPNet numbers positions from its padding id on: it must be the tokenizer's
        pad_token_id=tokenizer.pad_token_id,
        num_labels=2,
        id2label={0: "negative", 1: "positive"},
        label2id={"negative": 0, "positive": 1},
    )
    config.architectures = ["MPNetForSequenceClassification"]
    torch.manual_seed(0)
    MPNetForSequenceClassification(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def test_weight_select_students_of_an_mpnet_teacher_complete_their_trials(
    tiny_space: Path, tiny_mpnet_teacher: Path, sst2_slice: Path, tmp_path: Path
) -> None:
    out = tmp_path / "study"
    # width 32 of the teacher's 64: 2 of its 4 heads, so head selection is exercised in every trial
    settings = ["--set", "student.init=weight-select", "--set", "student.width=32"]
    settings += ["--set", "distill.hidden_weight=1.0"]
    args = search_args(tiny_space, tiny_mpnet_teacher, sst2_slice, out, "--trials", "2", "--seed", "0")
    assert main([*args, *settings]) == 0

    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'optuna.db'}")
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"], [
        t.user_attrs.get("fail_reason") for t in study.trials
    ]
    for trial in study.trials:
        assert 0.0 <= trial.user_attrs["metrics"]["accuracy"] <= 1.0
