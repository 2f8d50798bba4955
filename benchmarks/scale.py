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
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import queue
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
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


def stand_in_runner(sleep: float) -> Any:
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
        for step in checkpoints:
            time.sleep(sleep / (len(checkpoints) + 1))
            if on_checkpoint:
                on_checkpoint(step, accuracy * (0.6 + 0.4 * step / steps), metrics)
        time.sleep(sleep / (len(checkpoints) + 1))
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


def worker(index: int, run: dict[str, Any], barrier: Any, results: Any) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import logging
    import warnings

    import optuna
    import optuna.study._optimize as optimize_module
    from transformers import BertConfig

    from autodistill.config.schema import SpaceConfig
    from autodistill.search.callbacks import (
        FrontTags,
        close_dead_runs,
        finished_trials,
        front_snapshot,
        keep_front_students,
    )
    from autodistill.search.objective import make_objective
    from autodistill.search.preparation import Job
    from autodistill.search.study import open_study
    from autodistill.store.locations import Locations
    from autodistill.store.tracking import Tracker, quiet
    from autodistill.tasks import TaskInputs, get_task

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    quiet()
    logging.getLogger("optuna").setLevel(logging.ERROR)
    warnings.simplefilter("ignore")
    space = SpaceConfig.model_validate(SPACE)
    out = Path(run["out"]) / f"worker-{index}"
    loc = Locations(
        out=out,
        storage=run["storage"],
        tracking_uri=run["tracking_uri"],
        study_name=run["study"],
        cache_dir=out / "cache",
        artifact_root=out / "mlartifacts",
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
        device="cpu",
        teacher=None,
        tokenizer=None,
    )

    clock = Clock()
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

    objective = make_objective(job, tracker, out / "students", stand_in_runner(run["sleep"]))
    tags = FrontTags(tracker)

    def after_trial(study: Any, _trial: Any) -> None:  # the controller's report_trial, test scores aside
        finished_trials(study)
        finished, front = front_snapshot(study)
        keep_front_students(finished, front)
        tags(finished, front)
        close_dead_runs(study, tracker)

    barrier.wait()
    clock.statements = {"optuna": 0, "mlflow": 0}
    began = time.time()
    with clock.timing("loop"):
        study.optimize(
            objective, n_trials=run["trials_per_worker"], catch=(Exception,), callbacks=[after_trial]
        )
    results.put(
        {
            "worker": index,
            "began": began,
            "ended": time.time(),
            "trials": run["trials_per_worker"],
            "seconds": clock.seconds,
            "statements": clock.statements,
        }
    )


# ---------------------------------------------------------------- the study afterwards


def concurrent_duplicates(trials: list[Any]) -> tuple[int, int]:
    """(trials whose parameters equal those of another trial running at the same time, trials whose
    parameters equal an earlier trial's at any time)."""
    now = datetime.now()
    spans = [
        (t.params, t.datetime_start or now, t.datetime_complete or now) for t in trials if t.datetime_start
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


def measure(args: argparse.Namespace, workers: int, liar: bool, out: Path) -> dict[str, Any]:
    import optuna
    from optuna.trial import TrialState

    with databases(args.server, args.storage, args.tracking_uri) as (storage, tracking_uri):
        run = {
            "storage": storage,
            "tracking_uri": tracking_uri,
            "study": f"scale-n{workers}-liar-{'on' if liar else 'off'}-{uuid.uuid4().hex[:6]}",
            "out": str(out),
            "sleep": args.sleep,
            "trials_per_worker": args.trials_per_worker,
            "liar": liar,
        }
        context = mp.get_context("spawn")
        barrier, results = context.Barrier(workers), context.Queue()
        processes = [context.Process(target=worker, args=(i, run, barrier, results)) for i in range(workers)]
        for p in processes:
            p.start()
        reports: list[dict[str, Any]] = []
        deadline = time.monotonic() + args.timeout
        while len(reports) < workers:
            try:
                reports.append(results.get(timeout=2))
            except queue.Empty:
                dead = [p for p in processes if p.exitcode not in (None, 0)]
                if dead or time.monotonic() > deadline:
                    for p in processes:
                        p.terminate()
                    raise RuntimeError(
                        f"{len(dead)} worker(s) died (see their traceback above) or timed out"
                    ) from None
        for p in processes:
            p.join()
        trials = optuna.load_study(study_name=run["study"], storage=storage).get_trials(deepcopy=False)
    states = [t.state for t in trials]
    total = sum(r["trials"] for r in reports)
    wall = max(r["ended"] for r in reports) - min(r["began"] for r in reports)

    def per_trial(kind: str) -> float:
        return sum(r["seconds"].get(kind, 0.0) for r in reports) / total

    mlflow = per_trial("mlflow")
    concurrent, repeats = concurrent_duplicates(trials)
    return {
        "workers": workers,
        "constant_liar": liar,
        "trials": len(trials),
        "complete": states.count(TrialState.COMPLETE),
        "pruned": states.count(TrialState.PRUNED),
        "lost": sum(s in (TrialState.RUNNING, TrialState.FAIL) for s in states),
        "wall_s": wall,
        "trials_per_s": total / wall,
        "s_per_trial_loop": per_trial("loop"),
        "s_per_trial_ask_tell": per_trial("ask") + per_trial("tell") + per_trial("stale"),
        "s_per_trial_optuna_all": per_trial("loop") - mlflow - args.sleep,
        "s_per_trial_mlflow": mlflow,
        "sql_per_trial_optuna": sum(r["statements"]["optuna"] for r in reports) / total,
        "sql_per_trial_mlflow": sum(r["statements"]["mlflow"] for r in reports) / total,
        "concurrent_duplicates": concurrent,
        "repeated_params": repeats,
    }


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| workers | constant liar | trials/s | s/trial ask+tell | s/trial Optuna (all) | s/trial MLflow "
        "| SQL/trial Optuna | SQL/trial MLflow | concurrent duplicates | repeated params | pruned | lost |\n"
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    )
    lines = [
        f"| {r['workers']} | {'on' if r['constant_liar'] else 'off'} | {r['trials_per_s']:.2f} "
        f"| {r['s_per_trial_ask_tell']:.3f} | {r['s_per_trial_optuna_all']:.3f} | {r['s_per_trial_mlflow']:.3f} "
        f"| {r['sql_per_trial_optuna']:.0f} | {r['sql_per_trial_mlflow']:.0f} "
        f"| {r['concurrent_duplicates']}/{r['trials']} | {r['repeated_params']} | {r['pruned']} | {r['lost']} |"
        for r in rows
    ]
    return "\n".join([head, *lines])


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
