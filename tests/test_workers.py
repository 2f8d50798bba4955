"""``autodistill search --workers N``: N worker processes on one study on this machine, no server.

The end-to-end tests run the real command on the CPU (the same flag on a GPU machine only adds
``CUDA_VISIBLE_DEVICES`` per worker): a study finished by two workers, one worker killed mid-trial, and
Ctrl-C. They check what a user relies on: no trial lost or run twice, one MLflow parent run, every run
closed.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
from mlflow import MlflowClient
from optuna.trial import TrialState

from autodistill.cli import main
from autodistill.cli.main import _worker_problems
from autodistill.cli.workers import cpu_threads, visible_gpus, worker_command, worker_env
from autodistill.search.callbacks import finished_trials
from autodistill.search.workers import WORKER_INDEX_ENV, fail_dead_workers_trials, worker_devices
from autodistill.store.locations import check_database, default_storage, optuna_storage
from autodistill.store.studies import open_existing
from tests.conftest import search_args, search_command

# --- the pieces ----------------------------------------------------------------------------------------


def test_workers_take_the_gpus_in_turn() -> None:
    assert worker_devices(4, ["0", "1"]) == ["0", "1", "0", "1"]
    assert worker_devices(3, ["7"]) == ["7", "7", "7"]  # several workers share one GPU
    assert worker_devices(2, []) == [None, None]  # no GPU: the CPU cores


def test_which_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    assert visible_gpus("0, 2") == ["0", "2"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    assert visible_gpus(None) == ["3", "5"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")  # CUDA's way to hide every GPU
    assert visible_gpus(None) == []
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")  # a scheduler's choice: --gpus counts within it
    assert visible_gpus("1") == ["3"]
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert len(visible_gpus(None)) == torch.cuda.device_count()


def test_gpus_that_this_machine_lacks_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    args = argparse.Namespace(workers=2, gpu_memory_fraction=None, gpus="0,7")
    assert _worker_problems(args) == ["--gpus 0,7: no GPU 7 here; this process sees 2 (indices 0 to 1)"]
    args.gpus = "1,0"
    assert _worker_problems(args) == []


def test_a_path_given_as_storage_must_be_a_journal_file(tmp_path: Path) -> None:
    database = tmp_path / "optuna.db"
    optuna.create_study(storage=f"sqlite:///{database}")
    problem = check_database("--storage", str(database))
    assert problem and "a SQLite database, not a journal file; give it as a URL: sqlite:///" in problem
    (tmp_path / "notes.txt").write_text("not a journal\n")
    problem = check_database("--storage", str(tmp_path / "notes.txt"))
    assert problem and "not an Optuna journal file" in problem
    journal = tmp_path / "optuna.journal"
    optuna.create_study(storage=optuna_storage(str(journal)))
    assert check_database("--storage", str(journal)) is None  # an existing journal, to resume
    assert check_database("--storage", str(tmp_path / "new.journal")) is None


def test_each_worker_knows_its_index_gpu_and_share_of_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    env = worker_env(1, "0", 3)
    assert (env[WORKER_INDEX_ENV], env["CUDA_VISIBLE_DEVICES"], env["OMP_NUM_THREADS"]) == ("1", "0", "3")
    # without a GPU of its own a worker sees what the supervisor sees
    assert worker_env(0, None, 1).get("CUDA_VISIBLE_DEVICES") == os.environ.get("CUDA_VISIBLE_DEVICES")
    assert cpu_threads(1000) == 1
    command = worker_command(["search", "s.yaml", "--workers", "4"], "/o/optuna.journal", False)
    assert command[-4:] == ["--workers", "1", "--storage", "/o/optuna.journal"]  # the last flag wins
    assert worker_command(["search", "s.yaml"], "postgresql://db", True)[-2:] == ["--workers", "1"]


def test_a_new_study_of_several_workers_gets_a_journal_file(tmp_path: Path) -> None:
    assert default_storage(tmp_path, 1) == f"sqlite:///{tmp_path / 'optuna.db'}"
    assert default_storage(tmp_path, 2) == str(tmp_path / "optuna.journal")
    (tmp_path / "optuna.db").touch()  # a study begun by one worker stays in its SQLite file
    assert default_storage(tmp_path, 2).startswith("sqlite:///")
    (tmp_path / "optuna.journal").touch()  # and one begun with several workers in its journal
    assert default_storage(tmp_path, 1) == str(tmp_path / "optuna.journal")


@pytest.mark.parametrize(
    ("flags", "error"),
    [
        (["--workers", "0"], "--workers 0: must be at least 1"),
        (["--gpu-memory-fraction", "1.5"], "--gpu-memory-fraction 1.5: must be in (0, 1]"),
        (
            ["--workers", "2", "--storage", "sqlite:///{out}/own.db"],
            "--workers 2: the study's storage is SQLite",
        ),
        (["--gpus", "0"], "--gpus 0: torch finds no CUDA device on this machine"),
    ],
)
def test_worker_flags_that_cannot_work_are_one_line_before_any_compute(
    flags: list[str],
    error: str,
    tiny_space: Path,
    tiny_teacher: Path,
    sst2_slice: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "study"
    flags = [f.format(out=out) for f in flags]
    assert main(search_args(tiny_space, tiny_teacher, sst2_slice, out, *flags)) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith(f"autodistill: error: {error}"), errors
    assert not out.exists()


def test_several_workers_refuse_a_study_kept_in_sqlite(
    tiny_space: Path, tiny_teacher: Path, sst2_slice: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "study"
    out.mkdir()
    optuna.create_study(storage=f"sqlite:///{out / 'optuna.db'}", study_name="tiny")
    assert main(search_args(tiny_space, tiny_teacher, sst2_slice, out, "--workers", "2")) == 2
    assert "run this study with one worker, or start one in a new --out directory" in capsys.readouterr().err


def test_a_dead_workers_trial_is_failed_and_queued_once(tmp_path: Path) -> None:
    study = optuna.create_study(storage=optuna_storage(str(tmp_path / "optuna.journal")))
    gone = subprocess.Popen(["true"])
    gone.wait()  # a process id that no longer runs
    host = os.uname().nodename
    workers = [
        {"host": host, "pid": gone.pid},  # dead, on this host
        {"host": host, "pid": os.getpid()},  # alive
        {"host": "another-machine", "pid": gone.pid},  # not ours to judge: only its heartbeat can
    ]
    for worker in workers:
        trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
        trial.set_user_attr("worker", worker)
    assert fail_dead_workers_trials(study) == [0]
    states = [t.state for t in study.trials]
    assert states == [TrialState.FAIL, TrialState.RUNNING, TrialState.RUNNING, TrialState.WAITING]
    assert study.trials[3].params == study.trials[0].params
    assert study.trials[3].system_attrs["failed_trial"] == 0
    assert fail_dead_workers_trials(study) == []  # once


def test_a_trial_cut_by_ctrl_c_then_killed_is_not_queued_twice(tmp_path: Path) -> None:
    study = optuna.create_study(storage=optuna_storage(str(tmp_path / "optuna.journal")))
    gone = subprocess.Popen(["true"])
    gone.wait()
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    trial.set_user_attr("worker", {"host": os.uname().nodename, "pid": gone.pid})
    trial.set_user_attr("interrupted", True)  # as the objective does on Ctrl-C, with its own retry:
    study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
    assert fail_dead_workers_trials(study) == []  # failed, and not queued a second time
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.WAITING]


# --- the real command ------------------------------------------------------------------------------------


def _load(out: Path) -> Any:
    return optuna.load_study(study_name="tiny", storage=optuna_storage(str(out / "optuna.journal")))


def _runs(out: Path) -> tuple[list[Any], list[Any]]:
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    parents = [r for r in runs if r.data.tags.get("autodistill.role") == "study"]
    return parents, [r for r in runs if r.data.tags.get("autodistill.role") == "trial"]


def _wait_for(condition: Callable[[], Any], process: subprocess.Popen[str], timeout: float = 300) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the search ended ({process.returncode}) first:\n{process.communicate()[0][-3000:]}")
        found = condition()
        if found:
            return found
        time.sleep(0.5)
    process.kill()
    pytest.fail(f"not seen within {timeout} s:\n{process.communicate()[0][-3000:]}")


def _running_trials(out: Path) -> list[Any]:
    if not (out / "optuna.journal").is_file():
        return []
    try:
        return _load(out).get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    except KeyError:  # the study is not created yet
        return []


@pytest.mark.slow
def test_three_workers_sharing_out_finish_twelve_trials_none_lost_repeated_or_dead(
    tiny_space: Path, tiny_teacher: Path, sst2_slice: Path, tmp_path: Path
) -> None:
    """One --out for all (its students folder, its report): the upkeep of one never ends another."""
    out = tmp_path / "study"
    cmd = search_command(tiny_space, tiny_teacher, sst2_slice, out, "--trials", "12", "--workers", "3")
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "3 workers (the CPU cores" in done.stdout
    assert " died (" not in done.stdout + done.stderr
    assert done.stdout.count("Pareto front") == 1  # printed once, by the supervisor
    assert (out / "optuna.journal").is_file() and not (out / "optuna.db").exists()

    study = _load(out)
    assert {t.state for t in study.trials} == {TrialState.COMPLETE}  # none lost, none left running
    assert finished_trials(study) == 12  # a worker counts the trials others run before starting one more
    assert {t.user_attrs["worker"]["index"] for t in study.trials} == {0, 1, 2}  # all worked
    params = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(set(params)) == len(params)  # no parameter set proposed twice

    parents, trial_runs = _runs(out)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert sorted(int(r.data.tags["optuna.trial_number"]) for r in trial_runs) == list(range(12))
    assert all(r.info.status == "FINISHED" for r in trial_runs)
    assert {t.user_attrs["mlflow_run_id"] for t in study.trials} == {r.info.run_id for r in trial_runs}

    # the commands that read a finished study find it in its journal file
    assert open_existing(str(out), None, None).study_name == "tiny"
    front = (out / "pareto.csv").read_text().splitlines()
    assert len(front) >= 2
    number = front[1].split(",")[0]
    export = subprocess.run(
        [cmd[0], "-m", "autodistill", "export", number, "--out", str(out), "--to", str(tmp_path / "x")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert export.returncode == 0, export.stderr[-2000:]


@pytest.mark.slow
def test_a_killed_worker_is_reported_its_trial_retried_and_the_study_finished(
    tiny_space: Path, tiny_teacher: Path, sst2_slice: Path, tmp_path: Path
) -> None:
    out = tmp_path / "study"
    cmd = search_command(tiny_space, tiny_teacher, sst2_slice, out, "--trials", "3", "--workers", "2")
    cmd += ["--set", "train.steps=250"]  # long enough to be killed mid-trial
    search = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def training() -> list[Any]:  # past its start: its MLflow run exists (killed before, it would have none)
        return [t for t in _running_trials(out) if "mlflow_run_id" in t.user_attrs]

    victim = _wait_for(training, search)[0]
    pid = victim.user_attrs["worker"]["pid"]
    os.kill(pid, signal.SIGKILL)
    output, _ = search.communicate(timeout=600)
    assert search.returncode == 0, output[-3000:]
    assert f"(pid {pid}) died (killed by SIGKILL); trial {victim.number} failed and queued again" in output
    assert "started again" in output

    study = _load(out)
    assert study.trials[victim.number].state == TrialState.FAIL
    retries = [t for t in study.trials if t.system_attrs.get("failed_trial") == victim.number]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert retries[0].params == victim.params
    assert finished_trials(study) == 3 and not study.get_trials(states=(TrialState.RUNNING,))
    parents, trial_runs = _runs(out)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    status = {int(r.data.tags["optuna.trial_number"]): r.info.status for r in trial_runs}
    assert status.pop(victim.number) == "KILLED"
    assert set(status.values()) == {"FINISHED"}


@pytest.mark.slow
def test_ctrl_c_stops_every_worker_and_queues_their_trials(
    tiny_space: Path, tiny_teacher: Path, sst2_slice: Path, tmp_path: Path
) -> None:
    out = tmp_path / "study"
    cmd = search_command(tiny_space, tiny_teacher, sst2_slice, out, "--trials", "20", "--workers", "2")
    cmd += ["--set", "train.steps=5000"]
    search = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: len(_running_trials(out)) == 2, search)
    search.send_signal(signal.SIGINT)
    stdout, stderr = search.communicate(timeout=300)
    assert search.returncode == 130, stdout[-2000:] + stderr[-2000:]
    assert stderr.count("interrupted: finished trials are saved; rerun the same command to resume") == 1

    study = _load(out)
    interrupted = [t for t in study.trials if t.user_attrs.get("interrupted")]
    assert len(interrupted) == 2 and all(t.state == TrialState.FAIL for t in interrupted)
    queued = study.get_trials(states=(TrialState.WAITING,))
    assert sorted(t.user_attrs["retry_of"] for t in queued) == sorted(t.number for t in interrupted)
    assert not study.get_trials(states=(TrialState.RUNNING,))
    parents, trial_runs = _runs(out)
    assert [p.info.status for p in parents] == ["KILLED"]
    assert {r.info.status for r in trial_runs} == {"FAILED"}
