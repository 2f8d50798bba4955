"""The test split: examples nothing is stopped, selected or tuned on, and the teacher never trained on.

It is the dataset's labelled test split, else a seeded part of the validation examples (of the
holdout, when there is no validation split); only front students are scored on it.
"""

from __future__ import annotations

from pathlib import Path

import optuna
import pandas as pd
import pytest
from mlflow import MlflowClient

from autodistill.config import DatasetSpec
from autodistill.data.sources import DataError
from autodistill.tasks.classification.data import load_text_data

LABELS = {"negative": 0, "positive": 1}


def load(spec: DatasetSpec, n: int = 50):
    return load_text_data(spec, 2, LABELS, n)


def test_a_seeded_part_of_validation_disjoint_from_what_the_search_sees(sst2_slice: Path) -> None:
    spec = DatasetSpec(path=str(sst2_slice), test_fraction=0.25, max_eval_examples=100)
    a, b = load(spec), load(spec)
    assert a.test_source == "0.25 of validation" and len(a.test.texts) == 50
    assert len(a.validation.texts) == 100  # max_eval_examples caps validation, not test
    assert a.test.texts == b.test.texts  # seeded: the same examples every run
    assert not set(a.test.texts) & set(a.validation.texts)
    assert not set(a.test.texts) & set(a.train.texts)
    other = load(spec.model_copy(update={"split_seed": 3}))
    assert other.test.texts != a.test.texts


def test_a_holdout_test_part_never_overlaps_the_training_rows(sst2_slice: Path) -> None:
    spec = DatasetSpec(path=str(sst2_slice / "train.tsv"), holdout_fraction=0.2)
    data = load(spec, n=10_000)  # every training row
    assert data.validation_source.startswith("holdout") and data.test_source.startswith("0.5 of holdout")
    assert not set(data.test.texts) & set(data.train.texts)
    assert len(data.test.texts) + len(data.validation.texts) == 120


def write_split(folder: Path, name: str, rows: list[tuple[str, int]]) -> None:
    folder.mkdir(exist_ok=True)
    pd.DataFrame(rows, columns=["sentence", "label"]).to_csv(folder / f"{name}.csv", index=False)


def test_a_labelled_test_split_is_used_as_it_is(tmp_path: Path) -> None:
    rows = [(f"sentence {i}", i % 2) for i in range(60)]
    write_split(tmp_path / "d", "train", rows[:40])
    write_split(tmp_path / "d", "validation", rows[40:50])
    write_split(tmp_path / "d", "test", rows[50:])
    data = load(DatasetSpec(path=str(tmp_path / "d")))
    assert data.test_source == "test" and data.test.texts == [r[0] for r in rows[50:]]
    assert len(data.validation.texts) == 10  # all of validation stays for the search


def test_an_unlabelled_test_split_falls_back_and_a_named_one_is_refused(tmp_path: Path) -> None:
    rows = [(f"sentence {i}", i % 2) for i in range(60)]
    write_split(tmp_path / "d", "train", rows[:40])
    write_split(tmp_path / "d", "validation", rows[40:50])
    write_split(tmp_path / "d", "test", [(s, -1) for s, _ in rows[50:]])  # GLUE's hidden test labels
    assert load(DatasetSpec(path=str(tmp_path / "d"))).test_source == "0.5 of validation"
    with pytest.raises(DataError, match=r"dataset.test_split: split 'test' has no labels"):
        load(DatasetSpec(path=str(tmp_path / "d"), test_split="test"))
    with pytest.raises(DataError, match=r"dataset.test_split: no split 'heldout'"):
        load(DatasetSpec(path=str(tmp_path / "d"), test_split="heldout"))


@pytest.mark.slow
def test_front_students_carry_a_test_score_everywhere(tiny_study: Path, tmp_path: Path) -> None:
    from tests.test_export_train import cli

    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tiny_study / 'optuna.db'}")
    front = pd.read_csv(tiny_study / "pareto.csv")
    assert "test_accuracy" in front.columns and front["test_accuracy"].notna().all()
    assert 0.0 <= front["test_accuracy"].min() <= front["test_accuracy"].max() <= 1.0
    client = MlflowClient(f"sqlite:///{tiny_study / 'mlflow.db'}")
    tested = {int(k.split(":")[1]) for k in study.user_attrs if k.startswith("test_metrics:")}
    assert set(front["trial"]) <= tested  # a trial is scored when it joins the front (and may leave it)
    for trial in study.trials:
        run = client.get_run(trial.user_attrs["mlflow_run_id"])
        assert ("test_accuracy" in run.data.metrics) == (trial.number in tested)
    assert "test_accuracy" in study.user_attrs["teacher_reference"]
    html = (tiny_study / "report.html").read_text()
    assert "test_accuracy" in html
    to = tmp_path / "exported"
    number = int(front["trial"][0])
    done = cli("export", str(number), "--out", str(tiny_study), "--to", str(to))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "| test_accuracy |" in (to / "README.md").read_text()
