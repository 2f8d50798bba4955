"""Many workers on one PostgreSQL study, measured: what the storage and the tracking store cost per trial.

N worker processes (``--workers 2 4 8``) share one Optuna study on PostgreSQL and one MLflow tracking
store. Each runs autodistill's own trial plumbing: the study opened by ``search/study.open_study`` (its
TPE sampler, heartbeat and stale-trial retry), Optuna's ``study.optimize`` loop, the real objective of
``search/objective.make_objective`` (sampling, user attributes, the shape-latency memo, early-stopping
checkpoints, constraints, the MLflow run with its parameters, tags, metrics and loss curves) and the
per-trial callbacks the controller runs (progress count, front snapshot and ``on_front`` tags, dead runs)
except the front's test scores (they need a real model). Only the training is replaced: a stand-in
``TrialRunner`` sleeps ``--sleep`` seconds and computes the objectives from the sampled parameters, so
the sampler has a smooth landscape to model.

Per N and per constant-liar setting it reports trials per second; seconds per trial in Optuna (ask+tell
alone, and everything that is not MLflow or the sleep: ask, tell, suggests, user attributes, the
callbacks' reads, the sampler's own work); seconds per trial in MLflow (every ``Tracker`` call); SQL
statements per trial, counted by a SQLAlchemy ``before_cursor_execute`` listener on the engine of
Optuna's ``RDBStorage`` and on MLflow's ``SqlAlchemyStore`` engine (heartbeat thread included);
concurrent duplicates (trials whose sampled parameters equal those of another trial that was running at
the same time) and lost trials (left RUNNING or FAIL). A Markdown table, then one JSON line.

Needs a PostgreSQL server and a role allowed to create databases (each run gets two fresh databases,
dropped after)::

    python benchmarks/scale.py --server "$AUTODISTILL_TEST_PG" --workers 2 4 8 --trials-per-worker 10

or two existing databases (each run uses a fresh study and experiment name in them)::

    python benchmarks/scale.py --storage postgresql://…/optuna --tracking-uri postgresql://…/mlflow

A hundred workers (``--proxy``): the workers reach the study through ``autodistill storage-proxy``
(Optuna's gRPC proxy, ``--storage grpc://…``) and MLflow through an ``mlflow server`` (``--tracking-uri
http://…``), as the guide's recipe runs them, so that they hold no database connection themselves; the
peak number of connections to the two databases (``pg_stat_activity``, polled every 0.2 s) is reported
in every mode. Chaos (``--chaos``): once a third of the trials have finished, a random quarter of the
workers are killed with SIGKILL in the middle of a trial (when that many are mid-trial at once) and
started again; every worker then stops when
the study holds the total (workers × trials per worker, as ``--trials`` does it), and the table counts
the trials recovered from the dead (failed and queued again, by heartbeat on a database, by process id
through the proxy) and the trials lost (left running or queued, or failed with no retry: must be 0)::

    python benchmarks/scale.py --workers 8 32 64 --liar on --proxy
    python benchmarks/scale.py --workers 32 --liar on --proxy --chaos
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import queue
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

SPACE: dict[str, Any] = {
    "teacher": "stand-in/minilm-6x384",  # a hub id: fingerprinted by name, never loaded
    "student": {
        "depth": {"type": "int", "low": 1, "high": 6},
        "width": {"type": "categorical", "choices": [64, 128, 192, 256, 384]},
        "head_size": 32,
        "ffn_ratio": 4,
    },
    # A stepped space, as a coarse real one: concurrent proposals can coincide exactly (floats never would).
    "distill": {
        "lambda": {"type": "float", "low": 0.0, "high": 1.0, "step": 0.25},
        "temperature": {"type": "categorical", "choices": [1.0, 2.0, 4.0, 8.0]},
        "learning_rate": {"type": "categorical", "choices": [3.0e-4, 1.0e-3, 3.0e-3]},
    },
    "train": {"steps": 150},
    "search": {"sampler": "tpe"},  # early stopping on (the default): three checkpoints per trial
}
MONITOR = "autodistill-scale-monitor"  # the application_name of this script's own connections


# ---------------------------------------------------------------- the stand-in trial


def synthetic_metrics(params: dict[str, Any]) -> tuple[float, dict[str, float]]:
    """(accuracy, latency figures and size) of a student, from its parameters alone: smooth, with an
    optimum in learning rate, λ and T and a capacity curve in depth × width."""
    depth, width = params["depth"], params["width"]
    capacity = 1 - math.exp(-depth * width / 384)
    accuracy = (
        0.55
        + 0.35 * capacity
        - 0.04 * (math.log10(params["learning_rate"]) + 3) ** 2
        + 0.04 * params["lambda"] * (1 - params["lambda"]) * 4
        - 0.01 * abs(math.log2(params["temperature"]) - 1)
    )
    latency = 0.05 + 0.4 * depth * (width / 128) ** 1.5
    figures = {
        "latency_ms": latency,
        "latency_p95_ms": latency * 1.1,
        "latency_threads": 1.0,
        "latency_sequence_length": 64.0,
        "peak_memory_mb": 4.0 * depth * width / 64,
    }
    params_count = 30522 * width + depth * 12 * width * width
    sizes = {"params": float(params_count), "params_no_embeddings": float(depth * 12 * width * width)}
    return accuracy, figures | sizes | {"size_mb": params_count * 4 / 1e6}


class StandInStudent:
    def save_pretrained(self, directory: Path, safe_serialization: bool = True) -> None:
        Path(directory).mkdir(parents=True, exist_ok=True)


def stand_in_runner(sleep: float, slept: Any = None) -> Any:
    """A ``search.trial.TrialRunner`` that sleeps instead of training (split over its checkpoints)."""
    from autodistill.search.trial import TrialOutcome

    def run(
        settings: Any,
        job: Any,
        on_step: Any,
        on_checkpoint: Any,
        checkpoint_steps: Iterable[int],
        memo: Any,
    ) -> TrialOutcome:
        params = settings.as_params()
        accuracy, metrics = synthetic_metrics(params)
        known = memo.recall() if memo else None  # the shape-latency memo: a study attribute per shape
        if known is None and memo:
            known = memo.keep({k: v for k, v in metrics.items() if k.startswith(("latency", "peak"))})
        metrics |= known or {}
        steps = job.space.train.steps
        checkpoints = sorted(checkpoint_steps)
        nap = slept.wrap("sleep", time.sleep) if slept else time.sleep  # pruned trials sleep less
        for step in checkpoints:
            nap(sleep / (len(checkpoints) + 1))
            if on_checkpoint:
                on_checkpoint(step, accuracy * (0.6 + 0.4 * step / steps), metrics)
        nap(sleep / (len(checkpoints) + 1))
        losses = [2.0 / (1 + 0.05 * i) for i in range(steps)]
        return TrialOutcome(
            metrics={"accuracy": accuracy, **metrics},
            losses=losses,
            loss_parts={"hard": losses, "soft": [v / 2 for v in losses]},
            timings={"train": sleep},
            student=StandInStudent(),
        )

    return run


# ---------------------------------------------------------------- one worker


class Clock:
    """Seconds and SQL statements spent, per kind, in one worker."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.statements: dict[str, int] = {"optuna": 0, "mlflow": 0}
        self.depth = 0

    def add(self, kind: str, seconds: float) -> None:
        self.seconds[kind] = self.seconds.get(kind, 0.0) + seconds

    @contextmanager
    def timing(self, kind: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(kind, time.perf_counter() - start)

    def wrap(self, kind: str, function: Any, outermost: bool = False) -> Any:
        def timed(*args: Any, **kwargs: Any) -> Any:
            if outermost and self.depth:  # a Tracker method calling another: timed once
                return function(*args, **kwargs)
            self.depth += outermost
            try:
                with self.timing(kind):
                    return function(*args, **kwargs)
            finally:
                self.depth -= outermost

        return timed

    def count_statements(self, engine: Any, kind: str) -> None:
        from sqlalchemy import event

        def count(*_: Any) -> None:
            self.statements[kind] += 1

        event.listen(engine, "before_cursor_execute", count)


def storage_engine(storage: Any) -> Any:
    """The SQLAlchemy engine under Optuna's (possibly cached) RDBStorage."""
    while not hasattr(storage, "engine"):
        storage = storage._backend
    return storage.engine


def worker(index: int, run: dict[str, Any], barrier: Any | None, results: Any) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import logging
    import warnings

    import optuna
    import optuna.study._optimize as optimize_module
    from transformers import BertConfig

    from autodistill.config.schema import SpaceConfig
    from autodistill.measure.machine import machine_name
    from autodistill.search.callbacks import (
        FrontTags,
        StopAtTotal,
        close_dead_runs,
        finished_trials,
        front_snapshot,
        keep_front_students,
    )
    from autodistill.search.objective import make_objective
    from autodistill.search.preparation import Job
    from autodistill.search.study import open_study
    from autodistill.search.workers import fail_dead_workers_trials
    from autodistill.store.locations import Locations
    from autodistill.store.tracking import Tracker, quiet
    from autodistill.tasks import TaskInputs, get_task

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    quiet()
    logging.getLogger("optuna").setLevel(logging.ERROR)
    warnings.simplefilter("ignore")
    space = SpaceConfig.model_validate(
        SPACE | {"search": SPACE["search"] | {"heartbeat_seconds": run["heartbeat"]}}
    )
    out = Path(run["out"]) / f"worker-{index}"
    loc = Locations(
        out=out,
        storage=run["storage"],
        tracking_uri=run["tracking_uri"],
        study_name=run["study"],
        cache_dir=out / "cache",
        artifact_root=(out / "mlartifacts").as_uri(),
        storage_is_local=False,
    )
    study = open_study(loc, space, 0, "stand-in-examples")
    if not run["liar"]:  # make_sampler's TPE, salted the same way, with constant_liar off
        study.sampler = optuna.samplers.TPESampler(
            seed=(os.getpid() * 7919) % 2**32,
            multivariate=True,
            group=True,
            constant_liar=False,
            n_startup_trials=8,
        )
    tracker = Tracker(loc.tracking_uri, loc.study_name, loc.artifact_root)
    tracker.start_study({"teacher": str(space.teacher)})
    teacher_config = BertConfig(
        hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536, num_labels=5
    )
    inputs = TaskInputs(teacher_config=teacher_config, examples=None, train_examples=0, fingerprint="-")
    job = Job(
        space=space,
        task=get_task(space),
        inputs=inputs,
        data=None,  # type: ignore[arg-type]
        reference={},
        machine=machine_name(space.latency.device),
        device="cpu",
        teacher=None,
        tokenizer=None,
    )

    clock = Clock()
    if not run[
        "proxy"
    ]:  # through the proxy, this worker has no engine: the proxy's statements are not counted
        clock.count_statements(storage_engine(study._storage), "optuna")
    mlflow_store = getattr(getattr(tracker.client, "_tracking_client", None), "store", None)
    if getattr(mlflow_store, "engine", None) is not None:
        clock.count_statements(mlflow_store.engine, "mlflow")
    for name in (
        "start_trial",
        "end_trial",
        "log_metrics",
        "log_curve",
        "log_params",
        "set_tag",
        "is_running",
    ):
        setattr(tracker, name, clock.wrap("mlflow", getattr(tracker, name), outermost=True))
    study.ask = clock.wrap("ask", study.ask)
    tell = optimize_module._tell_with_warning
    optimize_module._tell_with_warning = clock.wrap("tell", tell)  # type: ignore[attr-defined]
    stale = optuna.storages.fail_stale_trials
    optuna.storages.fail_stale_trials = clock.wrap("stale", stale)

    objective = make_objective(job, tracker, out / "students", stand_in_runner(run["sleep"], clock))
    tags = FrontTags(tracker)

    ran = 0

    def after_trial(study: Any, _trial: Any) -> None:  # the controller's callbacks, test scores aside
        nonlocal ran
        ran += 1
        finished_trials(study)
        finished, front = front_snapshot(study)
        keep_front_students(finished, front)
        tags(finished, front)
        if not loc.has_heartbeat:
            fail_dead_workers_trials(study)
        close_dead_runs(study, tracker)

    callbacks: list[Any] = [after_trial]
    if run["chaos"]:  # workers die and restart: the study's total stops them, as --trials does
        callbacks.append(StopAtTotal(run["total"]))
    if barrier is not None:  # a worker started again after the kill does not wait for the others
        barrier.wait()
    clock.statements = {"optuna": 0, "mlflow": 0}
    began = time.time()
    with clock.timing("loop"):
        if not loc.has_heartbeat:  # the controller's start: a dead worker's trial here is retried
            fail_dead_workers_trials(study)
        study.optimize(
            objective,
            n_trials=None if run["chaos"] else run["trials_per_worker"],
            catch=(Exception,),
            callbacks=callbacks,
        )
    results.put(
        {
            "worker": index,
            "began": began,
            "ended": time.time(),
            "trials": ran,
            "seconds": clock.seconds,
            "statements": clock.statements,
        }
    )


# ---------------------------------------------------------------- the study afterwards


def retries(trials: list[Any]) -> dict[int, int]:
    """{number of a trial failed because its worker died: number of the trial that ran it again}."""
    import warnings

    from optuna.storages import RetryHeartbeatStaleTrialCallback

    with warnings.catch_warnings():  # marked experimental since Optuna 2.8
        warnings.simplefilter("ignore")
        found = {t.number: RetryHeartbeatStaleTrialCallback.retried_trial_number(t) for t in trials}
    return {failed: retry for retry, failed in found.items() if failed is not None}


def recovery(trials: list[Any]) -> tuple[int, int]:
    """(trials of dead workers failed and run again to the end, trials lost: left running or queued, or
    failed with no finished retry)."""
    from optuna.trial import TrialState

    retried = retries(trials)
    state = {t.number: t.state for t in trials}
    finished = (TrialState.COMPLETE, TrialState.PRUNED)
    recovered = sum(state.get(retry) in finished for retry in retried.values())
    lost = sum(s in (TrialState.RUNNING, TrialState.WAITING) for s in state.values())
    lost += sum(1 for n, s in state.items() if s == TrialState.FAIL and n not in retried)
    return recovered, lost


def lost_reasons(trials: list[Any]) -> dict[str, int]:
    """Why the lost trials were lost: their fail reason (first line), or their state."""
    from collections import Counter

    from optuna.trial import TrialState

    retried = retries(trials)
    reasons: Counter[str] = Counter()
    for t in trials:
        if t.state in (TrialState.RUNNING, TrialState.WAITING):
            reasons[t.state.name] += 1
        elif t.state == TrialState.FAIL and t.number not in retried:
            reasons[str(t.user_attrs.get("fail_reason", "no reason recorded"))[:200]] += 1
    return dict(reasons)


def concurrent_duplicates(trials: list[Any]) -> tuple[int, int]:
    """(trials whose parameters equal those of another trial running at the same time, trials whose
    parameters equal an earlier trial's at any time). A dead worker's trial and its retry share their
    parameters by design: only the retry is counted."""
    now = datetime.now()
    failed_and_retried = set(retries(trials))
    spans = [
        (t.params, t.datetime_start or now, t.datetime_complete or now)
        for t in trials
        if t.datetime_start and t.number not in failed_and_retried
    ]
    concurrent = sum(
        1
        for i, (params, start, end) in enumerate(spans)
        if any(j != i and p == params and s < end and start < e for j, (p, s, e) in enumerate(spans))
    )
    seen: list[dict[str, Any]] = []
    repeats = 0
    for params, _, _ in spans:
        repeats += params in seen
        seen.append(params)
    return concurrent, repeats


@contextmanager
def databases(server: str | None, storage: str | None, tracking_uri: str | None) -> Iterator[tuple[str, str]]:
    if storage and tracking_uri:
        yield storage, tracking_uri
        return
    import sqlalchemy

    assert server, "--server or both --storage and --tracking-uri"
    names = [f"autodistill_scale_{kind}_{uuid.uuid4().hex[:8]}" for kind in ("optuna", "mlflow")]
    engine = sqlalchemy.create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        for name in names:
            connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{server}/{names[0]}", f"{server}/{names[1]}"
    finally:
        with engine.connect() as connection:
            for name in names:
                connection.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


class ConnectionPeak(threading.Thread):
    """The most connections PostgreSQL held at once to the given databases, polled every 0.2 s (this
    script's own connections, named ``MONITOR``, left out)."""

    def __init__(self, *urls: str):
        super().__init__(daemon=True)
        import sqlalchemy

        self.names = [sqlalchemy.engine.make_url(u).database for u in urls]
        self.engine = sqlalchemy.create_engine(
            urls[0],
            poolclass=sqlalchemy.pool.NullPool,
            connect_args={"application_name": MONITOR},
            isolation_level="AUTOCOMMIT",  # pg_stat_activity is read once per transaction: one per poll
        )
        self.peak, self.stopping = 0, threading.Event()

    def run(self) -> None:
        import sqlalchemy

        query = sqlalchemy.text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = ANY(:names) AND application_name <> :me"
        )
        with self.engine.connect() as connection:
            while not self.stopping.wait(0.2):
                count = connection.execute(query, {"names": self.names, "me": MONITOR}).scalar_one()
                self.peak = max(self.peak, int(count))

    def stop(self) -> int:
        self.stopping.set()
        self.join(timeout=10)
        self.engine.dispose()
        return self.peak


@contextmanager
def process(
    cmd: list[str], log: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A server command in its own process group, stopped with SIGINT (then SIGKILL) afterwards."""
    with log.open("w") as sink:
        proc = subprocess.Popen(
            cmd, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True, env=env or os.environ.copy()
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def served(storage: str, tracking_uri: str, threads: int, out: Path) -> Iterator[tuple[str, str]]:
    """``autodistill storage-proxy`` in front of the Optuna database and an ``mlflow server`` in front of
    MLflow's: (grpc://…, http://…) for the workers, as the guide's recipe for a hundred workers has it."""
    import urllib.request

    import optuna

    out.mkdir(parents=True, exist_ok=True)
    proxy_port, mlflow_port = free_port(), free_port()
    proxy = [sys.executable, "-m", "autodistill", "storage-proxy", "--storage", storage]
    proxy += ["--port", str(proxy_port), "--threads", str(threads)]
    server = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", tracking_uri, "--workers", "1"]
    server += [
        "--host",
        "127.0.0.1",
        "--port",
        str(mlflow_port),
        "--artifacts-destination",
        str(out / "artifacts"),
    ]
    # the server's one process: its pool bounded as the proxy's is
    env = os.environ | {
        "MLFLOW_SQLALCHEMYSTORE_POOL_SIZE": str(threads),
        "MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW": "0",
    }
    with process(proxy, out / "proxy.log"), process(server, out / "mlflow-server.log", env):
        optuna.storages.GrpcStorageProxy(host="127.0.0.1", port=proxy_port).wait_server_ready(timeout=120)
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{mlflow_port}/health", timeout=5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError((out / "mlflow-server.log").read_text()[-2000:]) from None
                time.sleep(0.5)
        yield f"grpc://127.0.0.1:{proxy_port}", f"http://127.0.0.1:{mlflow_port}"


def running_pids(study: Any) -> set[int]:
    """Process ids of the workers running a trial now."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    return {int(t.user_attrs["worker"]["pid"]) for t in trials if "worker" in t.user_attrs}


def run_workers(
    args: argparse.Namespace, run: dict[str, Any], workers: int, storage: str
) -> tuple[list[dict[str, Any]], int]:
    """Start the workers, kill a quarter of them mid-trial and start them again (chaos), wait for all:
    (the reports of those that ended, the number killed)."""
    import optuna
    import sqlalchemy
    from optuna.trial import TrialState

    context = mp.get_context("spawn")
    barrier, results = context.Barrier(workers), context.Queue()

    def start(index: int, barrier: Any | None) -> Any:
        p = context.Process(target=worker, args=(index, run, barrier, results))
        p.start()
        return p

    processes = [start(i, barrier) for i in range(workers)]
    # this script's view of the study for the chaos: straight on the database, named to be left uncounted
    monitor = optuna.storages.RDBStorage(
        storage,
        engine_kwargs={"poolclass": sqlalchemy.pool.NullPool, "connect_args": {"application_name": MONITOR}},
    )
    killed: list[Any] = []
    chaos_due, rng = run["chaos"], random.Random(args.chaos_seed)
    reports: list[dict[str, Any]] = []
    deadline = time.monotonic() + args.timeout
    while True:
        try:
            reports.append(results.get(timeout=1))
            continue
        except queue.Empty:
            pass
        live = [p for p in processes if p not in killed]
        if all(p.exitcode is not None for p in live):
            break
        if any(p.exitcode not in (None, 0) for p in live) or time.monotonic() > deadline:
            for p in processes:
                p.terminate()
            raise RuntimeError("a worker died (see its traceback above) or the run timed out")
        if chaos_due and run["study"] in {s.study_name for s in optuna.get_all_study_summaries(monitor)}:
            study = optuna.load_study(study_name=run["study"], storage=monitor)
            done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))
            busy = running_pids(study)
            candidates = [p for p in live if p.pid in busy and p.exitcode is None]
            quarter = max(1, workers // 4)
            # Workers that start together finish their trials together: wait, past a third of the trials,
            # until a quarter of them are mid-trial at once (or, past two thirds, kill those that are).
            if (done >= run["total"] // 3 and len(candidates) >= quarter) or done >= 2 * run["total"] // 3:
                victims = rng.sample(candidates, min(len(candidates), quarter))
                for p in victims:
                    os.kill(p.pid, signal.SIGKILL)  # mid-trial: it holds a running trial
                for p in victims:
                    p.join()
                killed += victims
                processes += [start(len(processes) + i, None) for i in range(len(victims))]
                chaos_due = False
    while True:  # what the last workers sent just before they ended
        try:
            reports.append(results.get(timeout=1))
        except queue.Empty:
            break
    monitor.engine.dispose()
    return reports, len(killed)


def measure(args: argparse.Namespace, workers: int, liar: bool, out: Path) -> dict[str, Any]:
    import optuna
    from optuna.trial import TrialState

    with databases(args.server, args.storage, args.tracking_uri) as (storage, tracking_uri):
        peak = ConnectionPeak(storage, tracking_uri)
        peak.start()
        with ExitStack() as stack:
            reach = (storage, tracking_uri)
            if args.proxy:
                reach = stack.enter_context(
                    served(storage, tracking_uri, args.proxy_threads, out / "servers")
                )
            run = {
                "storage": reach[0],
                "tracking_uri": reach[1],
                "study": f"scale-n{workers}-liar-{'on' if liar else 'off'}-{uuid.uuid4().hex[:6]}",
                "out": str(out),
                "sleep": args.sleep,
                "trials_per_worker": args.trials_per_worker,
                "total": workers * args.trials_per_worker,
                "liar": liar,
                "proxy": args.proxy,
                "chaos": args.chaos,
                "heartbeat": args.heartbeat,
            }
            reports, killed = run_workers(args, run, workers, storage)
        connections = peak.stop()
        trials = optuna.load_study(study_name=run["study"], storage=storage).get_trials(deepcopy=False)
    states = [t.state for t in trials]
    total = sum(r["trials"] for r in reports)  # the trials of the workers that ended (not of the killed)
    wall = max(r["ended"] for r in reports) - min(r["began"] for r in reports)

    def per_trial(kind: str) -> float:
        return sum(r["seconds"].get(kind, 0.0) for r in reports) / total

    mlflow = per_trial("mlflow")
    concurrent, repeats = concurrent_duplicates(trials)
    recovered, lost = recovery(trials)
    finished = sum(s in (TrialState.COMPLETE, TrialState.PRUNED) for s in states)
    return {
        "workers": workers,
        "constant_liar": liar,
        "storage": "proxy" if args.proxy else "direct",
        "killed": killed,
        "trials": len(trials),
        "complete": states.count(TrialState.COMPLETE),
        "pruned": states.count(TrialState.PRUNED),
        "recovered": recovered,
        "lost": lost,
        "peak_connections": connections,
        "wall_s": wall,
        "trials_per_s": finished / wall,
        "s_per_trial_loop": per_trial("loop"),
        "s_per_trial_ask_tell": per_trial("ask") + per_trial("tell") + per_trial("stale"),
        "s_per_trial_optuna_all": per_trial("loop") - mlflow - per_trial("sleep"),
        "s_per_trial_mlflow": mlflow,
        "sql_per_trial_optuna": sum(r["statements"]["optuna"] for r in reports) / total,
        "sql_per_trial_mlflow": sum(r["statements"]["mlflow"] for r in reports) / total,
        "concurrent_duplicates": concurrent,
        "repeated_params": repeats,
        "lost_reasons": lost_reasons(trials),
    }


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| workers | storage | constant liar | killed | trials/s | s/trial ask+tell | s/trial Optuna (all) "
        "| s/trial MLflow | SQL/trial Optuna | SQL/trial MLflow | peak PG connections | concurrent duplicates "
        "| repeated params | pruned | recovered | lost |\n"
        "| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    )
    lines = [
        f"| {r['workers']} | {r['storage']} | {'on' if r['constant_liar'] else 'off'} | {r['killed']} "
        f"| {r['trials_per_s']:.2f} | {r['s_per_trial_ask_tell']:.3f} | {r['s_per_trial_optuna_all']:.3f} "
        f"| {r['s_per_trial_mlflow']:.3f} | {sql(r, 'optuna')} | {sql(r, 'mlflow')} | {r['peak_connections']} "
        f"| {r['concurrent_duplicates']}/{r['trials']} | {r['repeated_params']} | {r['pruned']} "
        f"| {r['recovered']} | {r['lost']} |"
        for r in rows
    ]
    return "\n".join([head, *lines])


def sql(row: dict[str, Any], kind: str) -> str:
    """Statements per trial, where this worker could count them (through the servers, it cannot)."""
    return "–" if row["storage"] == "proxy" else f"{row[f'sql_per_trial_{kind}']:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--trials-per-worker", type=int, default=10)
    parser.add_argument("--sleep", type=float, default=0.5, help="seconds the stand-in trial sleeps")
    parser.add_argument("--liar", choices=["on", "off", "both"], default="both", help="TPE's constant_liar")
    parser.add_argument(
        "--server",
        default=os.environ.get("AUTODISTILL_TEST_PG"),
        help="PostgreSQL server URL of a role allowed to create databases (default $AUTODISTILL_TEST_PG)",
    )
    parser.add_argument("--storage", help="an existing database for the Optuna studies (with --tracking-uri)")
    parser.add_argument("--tracking-uri", help="an existing database for MLflow (with --storage)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds to wait for one worker")
    parser.add_argument(
        "--proxy",
        action="store_true",
        help="workers reach Optuna through autodistill storage-proxy and MLflow through an mlflow server",
    )
    parser.add_argument("--proxy-threads", type=int, default=8, help="the proxy's (and server's) connections")
    parser.add_argument(
        "--chaos",
        action="store_true",
        help="kill a quarter of the workers mid-trial (SIGKILL), start them again",
    )
    parser.add_argument("--chaos-seed", type=int, default=0, help="which workers the chaos kills")
    parser.add_argument(
        "--heartbeat",
        type=int,
        default=30,
        help="search.heartbeat_seconds on a database (a dead worker's trial is retried after twice that)",
    )
    args = parser.parse_args()
    if not args.server and not (args.storage and args.tracking_uri):
        parser.error("needs --server (or $AUTODISTILL_TEST_PG), or both --storage and --tracking-uri")
    liars = {"on": [True], "off": [False], "both": [True, False]}[args.liar]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for workers in args.workers:
            for liar in liars:
                row = measure(args, workers, liar, Path(tmp) / f"n{workers}-{liar}")
                rows.append(row)
                print(
                    f"{workers} workers, constant_liar={liar}: {row['trials_per_s']:.2f} trials/s",
                    file=sys.stderr,
                )
    print(table(rows))
    for r in rows:
        for reason, count in r["lost_reasons"].items():
            print(f"lost at {r['workers']} workers ({r['storage']}): {count} × {reason}")
    per_trial = statistics.mean(r["sql_per_trial_optuna"] + r["sql_per_trial_mlflow"] for r in rows)
    print(
        json.dumps(
            {
                "sleep_s": args.sleep,
                "trials_per_worker": args.trials_per_worker,
                "rows": rows,
                "mean_sql_per_trial": per_trial,
            }
        )
    )


if __name__ == "__main__":
    main()
