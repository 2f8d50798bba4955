"""Every latency says which machine timed it: a shape timed on one machine is timed again on another,
the teacher is set beside the students of its own machine, and pareto.csv, the console, the report and
MLflow name the machine of each latency."""

from __future__ import annotations

from pathlib import Path

import optuna
import pandas as pd
import pytest
from mlflow import MlflowClient
from transformers import BertConfig

from autodistill.cli import main
from autodistill.config.schema import LatencySpec
from autodistill.distill.student import StudentArch
from autodistill.measure.machine import MACHINE_ENV, machine_facts, machine_name
from autodistill.report import console_table, front_frame
from autodistill.search.shape_cost import ATTR_PREFIX, shape_key
from autodistill.store.studies import teacher_reference
from tests.conftest import search_args

ONE_SHAPE = ["--set", "student.depth=1", "--set", "student.width=32"]


def test_a_machine_is_named_by_what_decides_its_speed_or_by_the_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MACHINE_ENV, raising=False)
    facts = machine_facts()
    assert facts["cores"] >= 1 and facts["torch"] and facts["cpu"]
    name = machine_name()
    assert f"{facts['cores']} cores [" in name and name == machine_name()  # stable within a process
    monkeypatch.setenv(MACHINE_ENV, "build-box-3")
    assert machine_name() == "build-box-3"


def test_the_same_shape_on_two_machines_has_two_keys() -> None:
    arch, spec, bert = StudentArch(depth=2, width=64, heads=2, ffn=256), LatencySpec(), BertConfig()
    assert shape_key(arch, spec, bert, "a") != shape_key(arch, spec, bert, "b")
    assert shape_key(arch, spec, bert, "a") == shape_key(arch, spec, bert, "a")


def test_a_study_searched_from_two_machines_keeps_their_latencies_apart(
    tiny_space: Path,
    tiny_teacher: Path,
    sst2_slice: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "study"
    for machine, total in (("machine-a", 2), ("machine-b", 4)):  # the same study, resumed elsewhere
        monkeypatch.setenv(MACHINE_ENV, machine)
        assert (
            main(search_args(tiny_space, tiny_teacher, sst2_slice, out, "--trials", str(total), *ONE_SHAPE))
            == 0
        )
    printed = capsys.readouterr().out

    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'optuna.db'}")
    trials = study.get_trials(deepcopy=False)
    machines = [t.user_attrs["latency_measured_with"]["machine"] for t in trials]
    assert machines == ["machine-a", "machine-a", "machine-b", "machine-b"]
    # one shape, timed once per machine: machine-b did not reuse machine-a's figure
    stored = {v["trial"] for k, v in study.user_attrs.items() if k.startswith(ATTR_PREFIX)}
    assert stored == {0, 2}
    assert (
        trials[1].user_attrs["latency_reused_from"] == 0 and trials[3].user_attrs["latency_reused_from"] == 2
    )
    assert [t.user_attrs["metrics"]["latency_ms"] for t in trials[2:]] == [
        trials[2].user_attrs["metrics"]["latency_ms"]
    ] * 2

    # the teacher was timed on each machine, and each front is set beside the teacher of its machine
    assert teacher_reference(study, {"machine-a"})["machine"] == "machine-a"
    assert teacher_reference(study, {"machine-b"})["machine"] == "machine-b"
    assert teacher_reference(study, {"machine-a", "machine-b"})["machine"] == "machine-b"  # the latest

    csv = pd.read_csv(out / "pareto.csv")
    assert set(csv["latency_machine"]) <= {"machine-a", "machine-b"} and len(csv)
    front = front_frame(study)
    one_machine = len(set(front["latency_machine"])) == 1
    table = console_table(front, teacher_reference(study, set(front["latency_machine"])))
    # one machine for the front and its teacher: named under the table; two: a column says each row's
    assert ("latencies timed on machine-" in table.splitlines()[-1]) == one_machine
    assert ("timed on" in table.splitlines()[0]) == (not one_machine)
    assert "timed on" in printed
    report = (out / "report.html").read_text()
    assert "Latencies timed on" in report and "latency_machine" in report

    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    tags = [client.get_run(t.user_attrs["mlflow_run_id"]).data.tags for t in trials]
    assert [t["autodistill.latency_machine"] for t in tags] == machines
    assert tags[0]["autodistill.latency"].endswith("on machine-a")


def test_one_machine_is_named_once_under_the_table() -> None:
    front = pd.DataFrame(
        {
            "trial": [3],
            "depth": [1],
            "width": [32],
            "init": ["random"],
            "lambda": [0.5],
            "temperature": [2.0],
            "accuracy": [0.8],
            "test_accuracy": [None],
            "latency_ms": [1.5],
            "size_mb": [1.0],
            "params": [2e5],
            "latency_machine": ["box"],
        }
    )
    table = console_table(
        front, {"accuracy": 0.9, "latency_ms": 4.0, "size_mb": 9.0, "params": 1e6, "machine": "box"}
    )
    assert table.splitlines()[-1] == "latencies timed on box" and "timed on  " not in table
    two = console_table(
        front, {"accuracy": 0.9, "latency_ms": 4.0, "size_mb": 9.0, "params": 1e6, "machine": "other"}
    )
    assert "timed on" in two.splitlines()[0] and "other" in two.splitlines()[-1]
