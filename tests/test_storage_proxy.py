"""Many workers, few database connections: `autodistill storage-proxy` serves one Optuna database to
every worker (`--storage grpc://HOST:PORT`, Optuna's gRPC proxy), and each worker's own pools are bounded
(real proxy process, real workers, real database)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import optuna
import pytest

from autodistill.cli import main
from autodistill.store.locations import WORKER_POOL, bound_tracking_pool, engine_kwargs, optuna_storage
from tests.conftest import POSTGRES, free_port, postgres_databases, search_command


@contextmanager
def storage_proxy(database: str, log: Path) -> Iterator[str]:
    """A running `autodistill storage-proxy` in front of ``database``; its grpc:// address."""
    port = free_port()
    cmd = [sys.executable, "-m", "autodistill", "storage-proxy", "--storage", database, "--port", str(port)]
    with log.open("w") as sink:
        proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        optuna.storages.GrpcStorageProxy(host="127.0.0.1", port=port).wait_server_ready(timeout=120)
        assert proc.poll() is None, log.read_text()
        yield f"grpc://127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # as a service manager stops it: cleanly, exit 0
        assert proc.wait(timeout=30) == 0, log.read_text()[-2000:]


def test_two_workers_share_a_study_through_the_proxy(
    tiny_space: Path, tiny_teacher: Path, sst2_slice: Path, tmp_path: Path
) -> None:
    database = f"sqlite:///{tmp_path / 'optuna.db'}"  # the proxy alone writes it: safe for many workers
    with storage_proxy(database, tmp_path / "proxy.log") as address:
        cmd = search_command(
            tiny_space, tiny_teacher, sst2_slice, tmp_path / "study", "--trials", "4", "--workers", "2",
            "--storage", address, "--study", "proxied",
        )  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stderr[-3000:]
        assert main(["report", "--storage", address, "--study", "proxied"]) == 0  # read through it too
    assert "served at " + address in (tmp_path / "proxy.log").read_text()

    study = optuna.load_study(study_name="proxied", storage=database)  # the database behind it
    finished = [t for t in study.trials if t.state.is_finished()]
    assert len(finished) == 4
    assert len({t.user_attrs["worker"]["pid"] for t in finished}) == 2  # both workers ran trials
    assert len({t.user_attrs["worker"]["sampler_seed"] for t in finished}) == 2


def running_pids(database: str, study_name: str) -> set[int]:
    """Process ids of the workers with a trial running in the study now (none before it exists)."""
    try:
        study = optuna.load_study(study_name=study_name, storage=database)
    except KeyError:
        return set()
    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    return {t.user_attrs["worker"]["pid"] for t in running if "worker" in t.user_attrs}


def test_a_worker_killed_mid_trial_is_retried_by_the_worker_beside_it(
    tiny_space: Path, tiny_teacher: Path, sst2_slice: Path, tmp_path: Path
) -> None:
    """The proxy keeps no heartbeat: the survivor finds the dead worker by its process id after its own
    trial, fails that trial and runs it again, and the study ends with all its trials. Each worker keeps
    its own MLflow store (its --out): the dead run is in the other's, and is left alone."""
    database = f"sqlite:///{tmp_path / 'optuna.db'}"
    with storage_proxy(database, tmp_path / "proxy.log") as address:
        flags = ["--storage", address, "--study", "chaos", "--trials", "5", "--set", "train.steps=150"]
        workers = [
            subprocess.Popen(
                search_command(tiny_space, tiny_teacher, sst2_slice, tmp_path / name, *flags),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for name in ("victim", "survivor")
        ]
        victim, survivor = workers
        deadline = time.monotonic() + 600
        while {victim.pid, survivor.pid} - running_pids(database, "chaos"):  # both mid-trial
            assert time.monotonic() < deadline and survivor.poll() is None and victim.poll() is None
            time.sleep(0.2)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        output, _ = survivor.communicate(timeout=900)
        assert survivor.returncode == 0, output[-3000:]

    study = optuna.load_study(study_name="chaos", storage=database)
    failed = [t for t in study.trials if t.state == optuna.trial.TrialState.FAIL]
    assert [t.user_attrs["worker"]["pid"] for t in failed] == [victim.pid]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        retry_of = optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number
        retries = [t for t in study.trials if retry_of(t) == failed[0].number]
    assert len(retries) == 1 and retries[0].params == failed[0].params
    assert retries[0].state == optuna.trial.TrialState.COMPLETE
    assert retries[0].user_attrs["worker"]["pid"] == survivor.pid
    assert sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials) >= 5


def test_the_proxy_and_its_address_are_checked_before_any_compute(
    tiny_space: Path, tiny_teacher: Path, sst2_slice: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nobody = f"grpc://127.0.0.1:{free_port()}"
    assert main(["report", "--storage", nobody]) == 2
    assert "no storage proxy answers" in capsys.readouterr().err
    assert main(["report", "--storage", "grpc://somewhere"]) == 2
    assert "give the storage proxy as grpc://HOST:PORT" in capsys.readouterr().err
    assert main(["storage-proxy", "--storage", str(tmp_path / "study.journal")]) == 2
    assert "does not take a journal file" in capsys.readouterr().err
    assert main(["storage-proxy", "--storage", "sqlite:///x.db", "--threads", "0", "--port", "0"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and "--port 0" in err[0] and "--threads 0" in err[1]
    args = [*search_command(tiny_space, tiny_teacher, sst2_slice, tmp_path / "s", "--storage", nobody)[3:]]
    assert main(args) == 2
    assert "no storage proxy answers" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_each_worker_holds_a_bounded_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    assert engine_kwargs("sqlite:///x.db") == {}  # one file per process: SQLAlchemy's own pool
    assert engine_kwargs("postgresql://u:p@db/optuna") == WORKER_POOL
    assert WORKER_POOL["pool_size"] + WORKER_POOL["max_overflow"] == 2  # trials + heartbeat thread
    for name in ("MLFLOW_SQLALCHEMYSTORE_POOL_SIZE", "MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW"):
        monkeypatch.setenv(name, "-")  # recorded, so that what bound_tracking_pool sets is undone after:
        monkeypatch.delenv(name)  # an mlflow server a later test starts would inherit a pool of two
    bound_tracking_pool("sqlite:///mlflow.db")
    assert "MLFLOW_SQLALCHEMYSTORE_POOL_SIZE" not in os.environ
    bound_tracking_pool("postgresql://u:p@db/mlflow")
    assert os.environ["MLFLOW_SQLALCHEMYSTORE_POOL_SIZE"] == "1"
    assert os.environ["MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW"] == "1"


@pytest.mark.skipif(not POSTGRES and not os.environ.get("CI"), reason="needs AUTODISTILL_TEST_PG")
def test_a_postgresql_storage_opens_with_the_bounded_pool() -> None:
    with postgres_databases("pool") as (url,):
        storage = optuna_storage(url)
        pool = storage.engine.pool
        assert (pool.size(), pool._max_overflow) == (WORKER_POOL["pool_size"], WORKER_POOL["max_overflow"])
        storage.engine.dispose()
