"""Data loading through datasets.load_dataset: files, directories, columns, splits, labels, token cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autodistill.config import DatasetSpec
from autodistill.data.sources import DataError
from autodistill.tasks.classification.data import load_text_data
from autodistill.tasks.classification.encoding import encode

LABELS = {"negative": 0, "positive": 1}


def load(spec: DatasetSpec, n: int = 50):
    return load_text_data(spec, 2, LABELS, n)


def test_directory_with_validation_split(sst2_slice: Path) -> None:
    data = load(DatasetSpec(path=str(sst2_slice)))
    assert data.text_column == "sentence" and data.label_column == "label"
    assert data.validation_source == "validation" and len(data.validation.texts) == 100  # half is test
    assert len(data.train.texts) == 50 and set(data.train.labels) <= {0, 1}


def test_single_tsv_gets_a_seeded_stable_holdout(sst2_slice: Path) -> None:
    spec = DatasetSpec(path=str(sst2_slice / "train.tsv"), holdout_fraction=0.2)
    a, b, c = load(spec), load(spec), load(spec.model_copy(update={"split_seed": 1}))
    assert a.validation_source.startswith("holdout 0.2") and len(a.validation.texts) == 60  # half is test
    assert a.validation.texts == b.validation.texts and a.train.texts == b.train.texts
    assert a.validation.texts != c.validation.texts
    assert not set(a.validation.texts) & set(a.train.texts) - set(a.validation.texts[:0])  # disjoint rows


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_other_file_formats_and_named_columns(tmp_path: Path, fmt: str) -> None:
    import pandas as pd

    frame = pd.DataFrame({"review": [f"text {i}" for i in range(40)], "stars": ["positive", "negative"] * 20})
    path = tmp_path / f"data.{fmt}"
    if fmt == "csv":
        frame.to_csv(path, index=False)
    elif fmt == "jsonl":
        path.write_text("\n".join(json.dumps(r) for r in frame.to_dict("records")))
    else:
        frame.to_parquet(path)
    data = load(DatasetSpec(path=str(path), text_column="review", label_column="stars"), n=10)
    assert data.train.labels and set(data.train.labels) <= {0, 1}  # string labels mapped by label2id


def test_missing_column_names_the_key(sst2_slice: Path) -> None:
    with pytest.raises(
        DataError, match=r"dataset.text_column: column 'review' not found; columns are sentence, label"
    ):
        load(DatasetSpec(path=str(sst2_slice), text_column="review"))


def test_labels_outside_the_teachers_range(sst2_slice: Path) -> None:
    with pytest.raises(DataError, match=r"outside the teacher's 1 classes"):
        load_text_data(DatasetSpec(path=str(sst2_slice)), 1, {}, 50)


def test_missing_dataset_and_split(sst2_slice: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file or directory"):
        load(DatasetSpec(path=str(tmp_path / "nope")))
    with pytest.raises(DataError, match=r"dataset\.validation_split: no split 'test'"):
        load(DatasetSpec(path=str(sst2_slice), validation_split="test"))
    with pytest.raises(DataError, match="no dataset given"):
        load(DatasetSpec())


def test_tokenised_once_and_cached(sst2_slice: Path, tiny_teacher: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_teacher)
    data = load(DatasetSpec(path=str(sst2_slice)))
    first = encode(data.train, tokenizer, 32, tmp_path)
    assert len(list(tmp_path.glob("tokens-*.pt"))) == 1
    again = encode(data.train, tokenizer, 32, tmp_path)
    assert (again.input_ids == first.input_ids).all() and len(first) == 50
    batch = first.batch(first.lengths.argsort()[:4])
    assert batch["input_ids"].shape[1] == int(batch["attention_mask"].sum(1).max())  # dynamic padding
