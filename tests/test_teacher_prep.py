"""`autodistill teacher` and class-folder data: a real fine-tune, reload with the same predictions, reuse."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from autodistill.config import DatasetSpec
from autodistill.data.sources import is_class_folders
from autodistill.tasks.classification.data import discover_labels, load_text_data

pytestmark = pytest.mark.slow


@pytest.fixture
def class_folders(tmp_path: Path) -> Path:
    """Three classes of small documents, one file each, in the load_files layout."""
    root = tmp_path / "topics"
    words = {
        "sport": "match goal team win",
        "tech": "chip software phone data",
        "politics": "vote party election",
    }
    for label, text in words.items():
        (root / label).mkdir(parents=True)
        for i in range(20):
            (root / label / f"{i:03d}.txt").write_text(f"{text} story {i}\n")
    (root / "tech" / "latin1.txt").write_bytes("price in \xa3 pounds".encode("latin-1"))
    return root


def test_class_folders_labels_counts_and_split_are_stable(class_folders: Path) -> None:
    assert is_class_folders(class_folders)
    spec = DatasetSpec(path=str(class_folders), holdout_fraction=0.25)
    labels = discover_labels(spec)
    assert labels == ["politics", "sport", "tech"]
    label2id = {n: i for i, n in enumerate(labels)}
    a = load_text_data(spec, 3, label2id, 10**9)
    b = load_text_data(spec, 3, label2id, 10**9)
    held_out = len(a.validation.texts) + len(a.test.texts)  # the test examples are half of the holdout
    assert len(a.train.texts) + held_out == 61 and held_out == 15 and len(a.test.texts) == 8
    assert a.validation.texts == b.validation.texts and a.train.labels == b.train.labels
    assert a.text_column == "text" and sorted(set(a.train.labels)) == [0, 1, 2]
    all_texts = a.train.texts + a.validation.texts + a.test.texts
    assert "price in £ pounds" in all_texts


def test_split_named_class_folders(class_folders: Path, tmp_path: Path) -> None:
    root = tmp_path / "splits"
    for split in ("train", "validation"):
        (root / split).mkdir(parents=True)
        for label_dir in class_folders.iterdir():
            (root / split / label_dir.name).symlink_to(label_dir, target_is_directory=True)
    data = load_text_data(DatasetSpec(path=str(root)), 3, {"politics": 0, "sport": 1, "tech": 2}, 10**9)
    assert data.validation_source == "validation" and len(data.validation.texts) + len(data.test.texts) == 61


def teacher_cmd(base: Path, data: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [
        sys.executable,
        "-m",
        "autodistill",
        "teacher",
        "--base",
        str(base),
        "--dataset",
        str(data),
        "--out",
        str(out),
        *extra,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def test_teacher_from_a_config_reloads_with_the_same_predictions(
    tmp_path: Path, sst2_slice: Path, tiny_teacher: Path
) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {
                "model_type": "bert",
                "vocab_size": 30522,
                "hidden_size": 32,
                "num_hidden_layers": 1,
                "num_attention_heads": 2,
                "intermediate_size": 64,
            }
        )
    )
    out = tmp_path / "teacher"
    recipe = ["--tokenizer", str(tiny_teacher), "--max-steps", "15", "--batch-size", "16", "--lr", "1e-3"]
    done = teacher_cmd(config, sst2_slice, out, *recipe)
    assert done.returncode == 0, done.stderr[-3000:]
    card = json.loads((out / "teacher_card.json").read_text())
    assert card["labels"] == ["0", "1"] and card["steps"] == 15
    assert card["validation_examples"] + card["test_examples"] == 200  # SST-2's validation, halved for test
    assert 0.0 <= card["validation_accuracy"] <= 1.0
    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert model.config.id2label == {0: "0", 1: "1"}
    tokenizer = AutoTokenizer.from_pretrained(out)
    batch = tokenizer(["a gorgeous film", "dull and lifeless"], return_tensors="pt", padding=True)
    first = model.eval()(**batch).logits
    again = AutoModelForSequenceClassification.from_pretrained(out).eval()(**batch).logits
    assert torch.allclose(first, again)

    # the same inputs reuse the result; the MLflow store beside --out holds the run
    reused = teacher_cmd(config, sst2_slice, out, *recipe)
    assert reused.returncode == 0 and "reusing" in reused.stdout
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("teachers").experiment_id])
    assert len(runs) == 1 and runs[0].data.metrics["validation_accuracy"] == card["validation_accuracy"]


def test_teacher_bad_input(tmp_path: Path, sst2_slice: Path) -> None:
    done = teacher_cmd(tmp_path / "missing", sst2_slice, tmp_path / "t", "--epochs", "0")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 2 and "--epochs 0" in lines[0] and "--base" in lines[1]
    assert not (tmp_path / "t").exists()
