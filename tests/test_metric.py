"""The quality metric: accuracy by default, macro-F1 for imbalanced data (``dataset.metric``), named in
every table; a metric of another task is refused."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

from autodistill.config import SpaceConfig
from autodistill.tasks.classification.encoding import Encoded
from autodistill.tasks.classification.evaluation import macro_f1, predict_logits
from tests.conftest import search_command

BASE = {
    "student": {"depth": 1, "width": 64},
    "distill": {"lambda": 0.5, "temperature": 2, "learning_rate": 1e-3},
}


def test_macro_f1_is_the_mean_of_per_class_f1() -> None:
    torch.manual_seed(0)
    model = BertForSequenceClassification(
        BertConfig(
            vocab_size=60,
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            num_labels=3,
        )
    ).eval()
    ids = torch.randint(1, 60, (40, 8))
    labels = torch.tensor([0] * 30 + [1] * 8 + [2] * 2)  # imbalanced
    data = Encoded(input_ids=ids, lengths=torch.full((40,), 8), labels=labels)
    predicted = predict_logits(model, data, 16, "cpu").argmax(-1)
    expected = []
    for c in sorted(set(labels.tolist()) | set(predicted.tolist())):
        tp = int(((predicted == c) & (labels == c)).sum())
        precision = tp / max(1, int((predicted == c).sum()))
        recall = tp / max(1, int((labels == c).sum()))
        expected.append(0.0 if tp == 0 else 2 * precision * recall / (precision + recall))
    assert macro_f1(model, data, 16, "cpu") == pytest.approx(sum(expected) / len(expected))


def test_objectives_follow_the_metric_and_refuse_another_tasks() -> None:
    assert SpaceConfig.model_validate(BASE).search.objectives == ["accuracy", "latency_ms", "size_mb"]
    f1 = SpaceConfig.model_validate({**BASE, "dataset": {"metric": "macro_f1"}})
    assert f1.search.objectives[0] == "macro_f1" and f1.quality_metric() == "macro_f1"
    with pytest.raises(ValueError, match="perplexity is not this study's quality metric"):
        SpaceConfig.model_validate({**BASE, "search": {"objectives": ["perplexity", "size_mb"]}})
    with pytest.raises(ValueError, match="accuracy is not this study's quality metric"):
        SpaceConfig.model_validate(
            {**BASE, "dataset": {"metric": "macro_f1"}, "search": {"objectives": ["accuracy", "size_mb"]}}
        )


@pytest.mark.slow
def test_a_macro_f1_search_names_its_metric_everywhere(
    tiny_space: Path, tiny_teacher: Path, sst2_slice: Path, tmp_path: Path
) -> None:
    import subprocess

    out = tmp_path / "study"
    cmd = search_command(
        tiny_space, tiny_teacher, sst2_slice, out, "--trials", "2", "--set", "dataset.metric=macro_f1"
    )
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "macro_f1" in done.stdout and "test macro_f1" in done.stdout
    front = pd.read_csv(out / "pareto.csv")
    assert {"macro_f1", "test_macro_f1"} <= set(front.columns) and "accuracy" not in front.columns
    assert front["test_macro_f1"].notna().all()
