"""Several workers on one study: who runs a trial, which GPU each worker gets, and what becomes of the
trials of a worker that died.

Each trial records its worker (host, process id, index among ``--workers``). An RDB storage notices a dead
worker by its missing heartbeat; Optuna's journal file storage, the one several processes on one machine
share without a server, has no heartbeat, so its dead workers' trials are found by process id instead:
a trial still running on this host whose process no longer exists is failed and queued again, once,
exactly as the heartbeat would do it (``RetryHeartbeatStaleTrialCallback``).
"""

from __future__ import annotations

import os
import socket
import warnings
from collections.abc import Callable
from typing import Any

from autodistill.util.leftovers import this_place

WORKER_INDEX_ENV = "AUTODISTILL_WORKER_INDEX"  # set by the supervisor of ``search --workers N``


def supervised_index() -> int | None:
    """This process's index among the workers of ``search --workers N``; None when it runs on its own."""
    index = os.environ.get(WORKER_INDEX_ENV)
    return int(index) if index is not None else None


SAMPLER_SEED_ATTR = "autodistill_seed"  # set on a study's sampler by search/study.py's open_study


def this_worker(study: Any = None) -> dict[str, Any]:
    """The worker running here: host name, process id, index among the supervisor's workers (0 alone),
    and the seed of its sampler (what explains the trials it proposed)."""
    worker = {
        "host": socket.gethostname(),
        "place": this_place(),  # host and process namespace: containers may share a host name
        "pid": os.getpid(),
        "index": supervised_index() or 0,
    }
    if study is not None:
        worker["sampler_seed"] = getattr(study.sampler, SAMPLER_SEED_ATTR, None)
    return worker


def worker_devices(workers: int, gpus: list[str]) -> list[str | None]:
    """The GPU each of ``workers`` workers sees, in turn over ``gpus`` (several workers may share one);
    None for every worker when there is no GPU (they share the CPU cores)."""
    return [gpus[i % len(gpus)] if gpus else None for i in range(workers)]


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: nothing is sent, only whether the process exists is checked
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def fail_dead_workers_trials(study: Any, dead: Callable[[dict[str, Any]], bool] | None = None) -> list[int]:
    """Fail the running trials whose worker is dead and queue each once more; the numbers failed.

    ``dead`` says whether a trial's recorded worker is dead; by default, a worker on this host whose
    process no longer exists. Workers on other hosts are never judged here: only their heartbeat can.
    """
    import optuna
    from optuna.storages import RetryHeartbeatStaleTrialCallback
    from optuna.trial import TrialState

    host, place = socket.gethostname(), this_place()

    def dead_here(worker: dict[str, Any]) -> bool:
        here = worker.get("place") == place if "place" in worker else worker.get("host") == host
        return here and not process_alive(int(worker.get("pid", -1)))

    judge = dead or dead_here
    failed: list[int] = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.user_attrs.get("worker")
        if not worker or not judge(worker):
            continue
        try:
            study.tell(trial.number, state=TrialState.FAIL)
        except (RuntimeError, ValueError):  # finished meanwhile, by its worker or another supervisor
            continue
        if trial.user_attrs.get("interrupted"):  # cut by Ctrl-C, then killed: it queued its retry itself
            continue
        with warnings.catch_warnings():  # the callback is marked experimental, and has been since v2.8
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            RetryHeartbeatStaleTrialCallback(max_retry=1)(study, study.trials[trial.number])
        failed.append(trial.number)
    return failed
