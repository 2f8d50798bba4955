"""Workers sharing one study and one --out never end each other: upkeep of the shared student folders
tolerates a folder another worker removed, an exception in a callback is reported and the worker goes
on, and workers that share a study draw different sampler seeds, recorded on their trials."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from autodistill.search.callbacks import Guarded, keep_front_students, remove_student
from autodistill.search.study import sampler_seed
from autodistill.search.test_scores import load_student
from autodistill.search.workers import SAMPLER_SEED_ATTR, this_worker


def saved_student(path: Path) -> Path:
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(
        vocab_size=30, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16
    )
    BertForSequenceClassification(config).save_pretrained(path, safe_serialization=True)
    return path


class ClassificationJob:
    """What ``load_student`` reads of a job: its task's model class."""

    class task:
        @staticmethod
        def auto_class() -> type:
            from transformers import AutoModelForSequenceClassification

            return AutoModelForSequenceClassification


def test_a_removed_student_leaves_in_one_step_and_twice_is_harmless(tmp_path: Path) -> None:
    student = saved_student(tmp_path / "trial-3")
    remove_student(student)
    assert list(tmp_path.iterdir()) == []  # neither the folder nor its aside copy is left
    remove_student(student)  # another worker removed it first: nothing to do, nothing raised


def test_students_off_the_front_are_removed_and_the_front_kept(tmp_path: Path) -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    for number, values in enumerate([(0.9, 2.0), (0.8, 3.0), (0.95, 1.0)]):
        trial = study.ask()
        trial.set_user_attr("student_dir", str(saved_student(tmp_path / f"trial-{number}")))
        study.tell(trial, values)
    finished = study.get_trials(deepcopy=False)
    (tmp_path / "trial-1").rename(tmp_path / "elsewhere")  # trial 1 (dominated) already gone
    keep_front_students(finished, study.best_trials)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere", "trial-2"]


def test_a_student_removed_by_another_worker_is_skipped_and_a_broken_one_still_fails(tmp_path: Path) -> None:
    job = ClassificationJob()
    assert load_student(job, str(tmp_path / "gone")) is None  # type: ignore[arg-type]
    assert load_student(job, str(saved_student(tmp_path / "whole"))) is not None  # type: ignore[arg-type]
    broken = saved_student(tmp_path / "broken")
    (broken / "model.safetensors").unlink()  # a folder that is there, without its weights
    with pytest.raises(OSError):
        load_student(job, str(broken))  # type: ignore[arg-type]


def test_an_exception_in_a_callback_is_reported_and_the_worker_goes_on() -> None:
    lines: list[str] = []

    def upset_upkeep(_study: optuna.Study, _trial: optuna.trial.FrozenTrial) -> None:
        raise FileNotFoundError("students/trial-0: removed by another worker")

    study = optuna.create_study()
    study.optimize(
        lambda t: t.suggest_float("x", 0, 1),
        n_trials=3,
        callbacks=[Guarded(upset_upkeep, "front upkeep", lines.append)],
    )
    assert len(study.trials) == 3
    assert lines[0] == (
        "warning: after trial 0, front upkeep failed (students/trial-0: removed by another worker); "
        "retried after the next trial"
    )
    assert len(lines) == 3


def test_workers_that_share_a_study_draw_their_seeds_and_one_process_keeps_its_seed() -> None:
    drawn = {sampler_seed(7, 0, shared=True) for _ in range(20)}
    assert len(drawn) == 20  # 32 random bits each: equal draws would be a broken source
    assert sampler_seed(7, 0, shared=False) == 7
    assert sampler_seed(7, 5, shared=False) == 12  # a resumed study does not replay its first proposals


def test_each_trial_records_the_seed_of_the_sampler_that_proposed_it() -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=11))
    setattr(study.sampler, SAMPLER_SEED_ATTR, 11)  # as open_study sets it
    assert this_worker(study)["sampler_seed"] == 11
    assert "sampler_seed" not in this_worker()


def test_registering_a_name_another_worker_just_created_adds_a_version(tmp_path: Path) -> None:
    """Registration creates the registered model and takes 'already exists' as done: a check first
    would let two workers both see it missing, and the second create would fail."""
    from mlflow import MlflowClient

    from autodistill.store.tracking import Tracker

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = Tracker(uri, "race", (tmp_path / "mlartifacts").as_uri())
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    MlflowClient(uri).create_registered_model("student")  # another worker, a moment before
    versions = []
    for _ in range(2):
        tracker.start_study({})
        versions.append(tracker.register_model(tracker.start_trial(0, {}), model, "student", {}))
    assert versions == ["1", "2"]
