"""`autodistill retime`: a finished study's students and teacher timed again on another machine, the
measurement recorded in the study, and the front recomputed on it (real study, real timing, real MLflow)."""

from __future__ import annotations

import shutil
from pathlib import Path

import optuna
import pandas as pd
import pytest
from mlflow import MlflowClient

from autodistill.cli import main
from autodistill.deliver.export import study_space
from autodistill.deliver.retime import RETIMED_PREFIX, Measurement, parse_trials, retimed_front
from autodistill.measure.machine import MACHINE_ENV


def copied(tiny_study: Path, tmp_path: Path) -> Path:
    """The session's study, copied: retiming writes to it (and the copy shows a moved study is found)."""
    out = tmp_path / "moved-study"
    shutil.copytree(tiny_study, out)
    return out


def load(out: Path) -> optuna.Study:
    return optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'optuna.db'}")


def test_retime_all_records_a_measurement_and_writes_the_front_of_this_machine(
    tiny_study: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = copied(tiny_study, tmp_path)
    monkeypatch.setenv(MACHINE_ENV, "deploy box")
    assert main(["retime", "--out", str(out), "--trials", "all"]) == 0
    printed = capsys.readouterr().out

    study = load(out)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    measured = study.user_attrs[RETIMED_PREFIX + "deploy box"]
    assert measured["machine"] == "deploy box" and measured["teacher"]["latency_ms"] > 0
    assert set(measured["trials"]) == {str(t.number) for t in complete}
    for figures in measured["trials"].values():
        assert figures["latency_ms"] > 0 and figures["latency_fraction"] > 0
    # trials of one shape share one timing, as in the search
    shapes: dict[tuple[int, int], set[float]] = {}
    for t in complete:
        key = (t.user_attrs["settings"]["depth"], t.user_attrs["settings"]["width"])
        shapes.setdefault(key, set()).add(measured["trials"][str(t.number)]["latency_ms"])
    assert all(len(times) == 1 for times in shapes.values())

    csv = pd.read_csv(out / "pareto-deploy-box.csv")
    assert len(csv) and set(csv["latency_machine"]) == {"deploy box"}
    for row in csv.itertuples():  # the new latencies, the search's accuracy
        assert row.latency_ms == measured["trials"][str(row.trial)]["latency_ms"]
        assert row.accuracy == study.trials[row.trial].user_attrs["metrics"]["accuracy"]
    # no retimed trial dominates one on the recomputed front (objectives: accuracy ↑, latency ↓, size ↓)
    retimed = [
        (
            t.user_attrs["metrics"]["accuracy"],
            measured["trials"][str(t.number)]["latency_ms"],
            t.user_attrs["metrics"]["size_mb"],
        )
        for t in complete
    ]
    for row in csv.itertuples():
        mine = (row.accuracy, row.latency_ms, row.size_mb)
        assert not any(o[0] >= mine[0] and o[1] <= mine[1] and o[2] <= mine[2] and o != mine for o in retimed)
    assert "Pareto front on deploy box" in printed and "latencies timed on deploy box" in printed

    # the moved study's own MLflow store holds the front, on the study's parent run
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    parent = client.get_run(study.user_attrs["mlflow_parent_run_id"])
    assert "pareto-deploy-box.csv" in [a.path for a in client.list_artifacts(parent.info.run_id)]
    assert parent.data.tags["autodistill.retimed.deploy-box"] == measured["when"]

    # retiming the front again on the same machine keeps the other trials' figures
    first_front = int(csv["trial"].iloc[0])
    assert main(["retime", "--out", str(out), "--trials", str(first_front)]) == 0
    again = load(out).user_attrs[RETIMED_PREFIX + "deploy box"]
    assert set(again["trials"]) == set(measured["trials"])
    others = [n for n in measured["trials"] if n != str(first_front)]
    assert all(again["trials"][n] == measured["trials"][n] for n in others)


def test_the_front_is_judged_again_on_the_new_latencies(tiny_study: Path, tmp_path: Path) -> None:
    study = load(copied(tiny_study, tmp_path))
    space = study_space(study)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    slowest = max(complete, key=lambda t: t.user_attrs["metrics"]["accuracy"])
    # here the most accurate student is the fastest of all by far: it alone is on the front
    figures = {
        t.number: {"latency_ms": 0.01 if t is slowest else 100.0 + t.number, "latency_fraction": 0.5}
        for t in complete
    }
    best = [
        t
        for t in complete
        if t.user_attrs["metrics"]["accuracy"] == slowest.user_attrs["metrics"]["accuracy"]
    ]
    measurement = Measurement("m", "now", {}, {"latency_ms": 1.0}, figures)
    front = retimed_front(study, measurement, space)
    assert slowest.number in {t.number for t in front}
    assert all(
        t.user_attrs["metrics"]["latency_ms"] in (0.01, *(100.0 + b.number for b in best)) for t in front
    )
    assert all(t.user_attrs["latency_measured_with"]["machine"] == "m" for t in front)


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--trials", "three"], "--trials three: give front, all, or trial numbers"),
        (["--trials", "99"], "--trials: 99 not completed trial(s)"),
        (["--teacher", "{elsewhere}"], "not the teacher study 'tiny' was searched with"),
    ],
)
def test_bad_input_is_one_line_and_records_nothing(
    tiny_study: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    says: str,
) -> None:
    out = copied(tiny_study, tmp_path)
    other = tmp_path / "other-teacher"
    other.mkdir()
    (other / "config.json").write_text("{}")
    argv = [a.replace("{elsewhere}", str(other)) for a in argv]
    assert main(["retime", "--out", str(out), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0]
    assert not any(k.startswith(RETIMED_PREFIX) for k in load(out).user_attrs)
    assert not list(out.glob("pareto-*.csv"))


def test_trial_numbers_are_parsed() -> None:
    assert parse_trials("front") == "front" and parse_trials("all") == "all"
    assert parse_trials("7,3,7") == [3, 7]
    with pytest.raises(ValueError, match="--trials -1"):
        parse_trials("-1")
