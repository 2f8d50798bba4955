"""``autodistill search --workers N``: N worker processes on one study on this machine.

The supervisor checks the input once, opens the study (so that a study that cannot be resumed is one line
before any compute), then starts each worker as the same ``autodistill search`` command with
``--workers 1``: its GPU in ``CUDA_VISIBLE_DEVICES`` (in turn over ``--gpus``; several workers may share
one) and its share of the CPU cores. It prefixes their output with their index, forwards Ctrl-C to them
(each closes its trial as interrupted and queues it again), fails and queues again the trial of a worker
that died, starts another worker in its place while the study lacks trials, and prints the front once all
have ended. The workers share a journal file (or the database given with ``--storage``) and the MLflow
store: one parent run, one nested run per trial.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import IO, Any

from autodistill.cli.common import EXIT_BAD_INPUT, EXIT_INTERRUPTED
from autodistill.search.workers import WORKER_INDEX_ENV, worker_devices

POLL_S = 0.5  # how often the supervisor looks at its workers
STOP_GRACE_S = 120.0  # how long workers get, after Ctrl-C, to close their trials and runs


def gpu_list(text: str) -> list[str]:
    """The GPUs a comma-separated list names (CUDA's ``-1`` hides every GPU)."""
    return [g.strip() for g in text.split(",") if g.strip() and not g.strip().startswith("-")]


def visible_gpus(flag: str | None) -> list[str]:
    """The GPUs workers are spread over, as ``CUDA_VISIBLE_DEVICES`` names them: ``--gpus``, else
    ``CUDA_VISIBLE_DEVICES``, else every GPU torch finds; empty on a machine without one (the workers then
    share the CPU cores).

    ``--gpus`` counts the GPUs this process sees, as torch does: under ``CUDA_VISIBLE_DEVICES=2,3`` (a
    job scheduler's choice), ``--gpus 0`` is GPU 2.
    """
    inherited = os.environ.get("CUDA_VISIBLE_DEVICES")
    seen = gpu_list(inherited) if inherited is not None else None
    if flag is None:
        if seen is not None:
            return seen
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    chosen = gpu_list(flag)
    if seen is None:
        return chosen
    return [seen[int(g)] if g.isdigit() and int(g) < len(seen) else g for g in chosen]


def cpu_threads(workers: int) -> int:
    """Intra-op threads per worker: the cores this process may use, shared out (at least one each)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // workers)


def worker_env(index: int, device: str | None, threads: int) -> dict[str, str]:
    env = {**os.environ, WORKER_INDEX_ENV: str(index), "PYTHONUNBUFFERED": "1"}
    env.setdefault("OMP_NUM_THREADS", str(threads))  # a user's own setting wins
    if device is not None:
        env["CUDA_VISIBLE_DEVICES"] = device
    return env


def _pump(stream: IO[str], sink: IO[str], prefix: str, lock: threading.Lock) -> None:
    for line in stream:
        with lock:
            sink.write(prefix + line)
            sink.flush()


class Workers:
    """The worker processes of one supervisor, by index."""

    def __init__(self, command: list[str], devices: list[str | None], threads: int):
        self.command, self.devices, self.threads = command, devices, threads
        self.running: dict[int, subprocess.Popen[str]] = {}
        self._pumps: dict[int, list[threading.Thread]] = {}
        self._lock = threading.Lock()

    def start(self, index: int) -> subprocess.Popen[str]:
        # Its own session: a Ctrl-C in the terminal reaches the supervisor alone, which forwards it once.
        process = subprocess.Popen(
            self.command,
            env=worker_env(index, self.devices[index], self.threads),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
            start_new_session=True,
        )
        prefix = f"[worker {index}] "
        self._pumps[index] = []
        for stream, sink in ((process.stdout, sys.stdout), (process.stderr, sys.stderr)):
            assert stream is not None
            pump = threading.Thread(target=_pump, args=(stream, sink, prefix, self._lock), daemon=True)
            pump.start()
            self._pumps[index].append(pump)
        self.running[index] = process
        return process

    def _drain(self, index: int) -> None:
        """Wait until an ended worker's last lines are printed."""
        for pump in self._pumps.pop(index, []):
            pump.join(timeout=10)

    def ended(self) -> list[tuple[int, subprocess.Popen[str]]]:
        """The workers that have exited since the last call, removed from ``running``."""
        done = [(i, p) for i, p in self.running.items() if p.poll() is not None]
        for i, _ in done:
            del self.running[i]
            self._drain(i)
        return done

    def stop(self, grace: float = STOP_GRACE_S) -> None:
        """Ctrl-C to every worker, then wait; a worker still running after ``grace``, or after a second
        Ctrl-C, is killed."""
        for process in self.running.values():
            process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + grace
        try:
            for process in self.running.values():
                try:
                    process.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    process.kill()
        except KeyboardInterrupt:
            for process in self.running.values():
                process.kill()
        for index, process in self.running.items():
            process.wait()
            self._drain(index)
        self.running.clear()


def exit_description(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def worker_command(argv: list[str], storage: str, storage_given: bool) -> list[str]:
    """The worker's command line: the user's own ``search`` arguments, one worker, the same storage
    (the last of a repeated flag wins in argparse)."""
    command = [sys.executable, "-m", "autodistill", *argv, "--workers", "1"]
    return command if storage_given else [*command, "--storage", storage]


def supervise(
    argv: list[str],
    args: argparse.Namespace,
    storage: str,
    open_study: Callable[[], Any],
    total: int,
    log: Callable[[str], None],
) -> tuple[int, Any]:
    """Run ``args.workers`` workers until they end; (exit code, the study).

    ``open_study`` opens the study afresh (the supervisor reads what the workers wrote). Exit codes: 0
    when the workers ended by themselves, ``EXIT_INTERRUPTED`` after Ctrl-C, ``EXIT_BAD_INPUT`` when every
    worker refused its input (each said why), 1 when workers kept dying and the study lacks trials.
    """
    from autodistill.search.callbacks import finished_trials
    from autodistill.search.workers import fail_dead_workers_trials, this_worker

    gpus = visible_gpus(args.gpus)
    devices = worker_devices(args.workers, gpus)
    threads = cpu_threads(args.workers)
    workers = Workers(worker_command(argv, storage, args.storage is not None), devices, threads)
    where = ", ".join(f"{i}: GPU {d}" for i, d in enumerate(devices)) if gpus else "the CPU cores"
    log(f"{args.workers} workers ({where}; {threads} CPU thread(s) each)")
    host = this_worker()["host"]
    replacements = args.workers  # a worker that keeps dying must not be restarted forever
    exits: list[int] = []
    gave_up = False
    # `kill` and a closed terminal stop the workers as Ctrl-C does (they run in sessions of their own)
    stops = [s for s in (signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None]
    previous = {s: signal.signal(s, _interrupt) for s in stops}
    try:
        for index in range(args.workers):
            workers.start(index)
        while workers.running:
            time.sleep(POLL_S)
            for index, process in workers.ended():
                exits.append(process.returncode)
                if process.returncode in (0, EXIT_INTERRUPTED, EXIT_BAD_INPUT):
                    continue  # done, stopped by someone, or refused its input (said so itself)
                study = open_study()
                failed = fail_dead_workers_trials(study, ran_on(host, process.pid))
                queued = f"; trial {', '.join(map(str, failed))} failed and queued again" if failed else ""
                log(
                    f"worker {index} (pid {process.pid}) died ({exit_description(process.returncode)}){queued}"
                )
                if finished_trials(study) >= total:
                    continue
                if replacements:
                    replacements -= 1
                    log(f"worker {index}: started again (pid {workers.start(index).pid})")
                elif not workers.running:
                    gave_up = True
                    log(
                        f"workers died {args.workers + 1} times: not started again; rerun to resume the study"
                    )
    except KeyboardInterrupt:
        log("interrupted: stopping the workers (each closes its trial and queues it again)")
        workers.stop()
        return EXIT_INTERRUPTED, open_study()
    except BaseException:  # the supervisor's own failure: no worker is left running unsupervised
        workers.stop()
        raise
    finally:
        for stop, handler in previous.items():
            signal.signal(stop, handler)
    if exits and all(code == EXIT_BAD_INPUT for code in exits):
        return EXIT_BAD_INPUT, open_study()
    return (1 if gave_up else 0), open_study()


def ran_on(host: str, pid: int) -> Callable[[dict[str, Any]], bool]:
    """Whether a trial's recorded worker is process ``pid`` of ``host``."""
    return lambda worker: worker.get("host") == host and worker.get("pid") == pid


def _interrupt(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt
