"""Trials per hour on one GPU with 1, 2, 4 and 8 workers (``search --workers N``), against the HF Trainer peer.

What it runs (the default, sized for one H200 and check.sh's 240 s limit on an extra section):

- ``search_spaces/bert.yaml`` with the SST-2 teacher (``../shared/models/minilm-sst2-teacher``) on
  ``../shared/data/sst2`` (``--teacher`` / ``--dataset`` override), and ``--set train.steps=300
  train.batch_size=32 search.early_stopping.enabled=false``, so that every trial pays its full 300 steps.
- ``distill.hidden_weight=0`` and ``distill.attention_weight=0`` are held fixed: bert.yaml searches the
  hidden-state weight in [0, 2], and a trial with it pays a projection, a second loss and the cached states
  per step while one without does not. Held at 0, every trial does the same kind of work, the same as the
  4.9 s baseline (``trial_cost.py``, which sets ``hidden_weight=0``) and as the peer (Hinton's loss only).
  The students' depth, width, init, λ, T and learning rate are still searched as bert.yaml says, so the
  shapes (and the cost of each trial) differ between worker counts: ``s/trial`` shows the mean.
- The teacher's caches (tokens, logits, reference metrics) are prepared once, by a 1-trial warm-up search
  that is not counted, in one ``--cache-dir`` that every later study reads.
- Then, for each worker count N in ``--workers-list``, a fresh study (its own ``--out``) runs
  ``autodistill search ... --workers N --timeout S --trials N × M`` (``--seconds-per-count`` S, default
  20; ``--max-trials-per-worker`` M, default 40, only a cap): every worker keeps starting trials until
  S seconds after its own start, so all N stay busy; a trial running at the deadline is finished. On a GPU
  every worker sees the same one (``CUDA_VISIBLE_DEVICES``, ``--gpu``); N = 1 runs in-process on
  SQLite, N > 1 on the study's journal file.
- Trials per hour = completed trials / (last ``datetime_complete`` − first ``datetime_start``) × 3600,
  read from the study: process start-up, loading the caches and writing the report are left out (``wall
  s``, printed beside it, includes them). The tail where the last workers finish their final trials
  while others are done is inside the window, so short windows slightly understate many workers.
- GPU utilisation: ``nvidia-smi --query-gpu=utilization.gpu -lms 250`` sampled during each run; the
  mean over the same window, in percent (null without nvidia-smi).
- The peer: ``benchmarks/hf_trainer_peer.py``'s ``run`` (a ``transformers.Trainer`` that runs the teacher
  on every batch, searched by ``hyperparameter_search``) for ``--peer-seconds`` (default 15) of the same
  300-step trials, same space and settings, on the same GPU, with its own ``bf16=True`` where the GPU
  supports bfloat16 (float32 on a CPU). hf_trainer_peer.py is unchanged: bf16 is passed by giving its
  ``run`` a subclass of its ``DistillationArguments`` whose ``bf16`` defaults to True. Peer trials per
  hour are computed from its study the same way. The peer needs ``accelerate`` (and ``psutil``), which
  the venv here has and the accelerator machine lacks unless carried as wheels (below); without it the
  peer is reported as null with the reason and everything else still runs.
- ``--time-limit`` (default 228 s, for check.sh's 240): each count's ``--timeout`` is at most an equal
  share of the time left after the peer's planned time, less the start-up and report time the previous
  count took (``budget_s`` in the JSON says what each got: on a slow machine the last counts get less
  than 20 s). Each phase is stopped (SIGTERM, then SIGKILL by process id) when it would eat the least
  time kept for the phases after it, and skipped when less than that is left, so the last line is always
  printed; trials completed before a stop still count.

``--quick`` runs the same code on a CPU: a tiny BERT teacher built from a config (random weights, 2 layers
× 32, the MiniLM tokenizer), the first 600 train and 200 validation rows of SST-2, a tiny space (as
tests/conftest.py's), 8 steps a trial, worker counts 1 and 2 (2 trials per worker) and a 1-trial peer;
1.5 to 2.5 minutes on 2 cores (more when other work shares them), nearly all of it process start-up.
Its figures check the mechanics only: windows of about a second.

``--cpu`` runs the default setup (the real teacher, ``bert.yaml``) on a machine without a GPU, the workers
sharing the cores; give it fewer ``--steps`` and a smaller ``--dataset`` (docs/figures.md says which).

Last line of stdout: one JSON object (``trials_per_hour`` and ``wall_s`` per worker count,
``peer_trials_per_hour``, ``gpu_utilisation`` per worker count in percent or null, ``best_vs_baseline``
= best trials/hour ÷ 735, the 4.9 s trial of one worker before this work, null on a CPU, and
``peer_slowdown`` = best ÷ peer). Targets on an H200: best_vs_baseline ≥ 10, peer_slowdown ≥ 3.

    .venv/bin/python benchmarks/gpu_throughput.py [--workers-list 1 2 4 8] [--seconds-per-count 20]
        [--peer-seconds 15] [--time-limit 228] [--teacher DIR] [--dataset DIR] [--set KEY=VALUE] [--quick | --cpu]

On the lent H200, from the repository root here (check.sh copies ``git ls-files`` only: this file must be
committed or ``git add``-ed first). prepare.sh fills .whl/ and .devdata/; the second command adds the
peer's accelerate and psutil wheels to .whl/ (prepare.sh empties it, so run it after):

    bash ../shared/tools/device/prepare.sh && python3 -m pip download -q --no-deps --only-binary=:all: \\
        --python-version 3.12 --implementation cp --platform manylinux_2_17_x86_64 -d .whl \\
        "accelerate==$(.venv/bin/python -c 'import accelerate; print(accelerate.__version__)')" \\
        "psutil==$(.venv/bin/python -c 'import psutil; print(psutil.__version__)')"

then the device tool's ``run`` with carry ``[".whl", ".devdata"]`` and the command

    CHECK_EXTRA='python3 benchmarks/gpu_throughput.py' bash .devdata/check.sh

(check.sh trains a MiniLM-shaped teacher from scratch at /tmp/w/shared/models/minilm-sst2-teacher, so the
default paths resolve as ../shared from /tmp/w/main; it keeps the last 40 lines of this section, which
hold the table and the JSON). Where ``$OUT`` is set, as on that machine, each phase's log is copied to
``$OUT/gpu_throughput/``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SPACE = ROOT / "search_spaces" / "bert.yaml"
BASELINE_TRIALS_PER_HOUR = 735.0  # 4.9 s per 300-step trial, one worker, before this work (3600 / 4.9)
PEER_STUDY = "hf-trainer"  # hf_trainer_peer.STUDY, without importing transformers here
# Every trial pays the same kind of work: full length, Hinton's loss only (see the docstring).
COMMON_SETS = [
    "search.early_stopping.enabled=false",
    "distill.hidden_weight=0",
    "distill.attention_weight=0",
]
# The quick run's space: tests/conftest.py's TINY_SPACE (a benchmark does not import the tests).
TINY_SPACE = """
student:
  depth: {type: int, low: 1, high: 2}
  width: {type: categorical, choices: [32, 64]}
  head_size: 16
  ffn_ratio: 2
distill:
  lambda: {type: float, low: 0.0, high: 1.0}
  temperature: {type: float, low: 1.0, high: 4.0}
  learning_rate: {type: float, low: 1.0e-4, high: 1.0e-3, log: true}
train:
  steps: 8
  batch_size: 16
  max_length: 32
latency:
  sequence_length: 32
  warmup: 2
  repeats: 5
search:
  early_stopping: {enabled: false}
"""
# Seconds a phase needs beyond its trial budget (process start-up, caches, the report), a guess for an
# H200 machine's 16 cores; a count's own figure (wall − window) replaces it for the counts after it.
OVERHEAD_S = {"count": 20.0, "peer": 25.0}
# The least time kept for each later phase: a phase left less than this is skipped.
MIN_PHASE_S = {"count": 20.0, "peer": 25.0}
MIN_BUDGET_S = 3.0  # a search's --timeout floor: each worker still runs at least one trial
STOP_GRACE_S = 15.0  # after SIGTERM, how long a supervisor gets to stop its workers before SIGKILL


# --- settings --------------------------------------------------------------------------------------------


@dataclass
class Plan:
    """What to run, resolved from the flags and the mode (default GPU run, or --quick)."""

    space: Path
    teacher: str
    dataset: str
    sets: list[str]
    workers: list[int]
    seconds_per_count: float
    trials_per_worker: int
    peer_seconds: float
    peer_trials: int
    peer_bf16: str
    steps: int
    gpu: str | None  # the one GPU every process sees; None on a CPU
    work: Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny teacher and steps, on a CPU")
    parser.add_argument(
        "--cpu",
        action="store_true",
        help="the real teacher on a machine without a GPU (workers on the cores)",
    )
    parser.add_argument(
        "--workers-list", type=int, nargs="+", help="worker counts (default 1 2 4 8; quick 1 2)"
    )
    parser.add_argument(
        "--seconds-per-count", type=float, help="--timeout of each count's search (default 20)"
    )
    parser.add_argument(
        "--max-trials-per-worker", type=int, help="--trials cap per worker (default 40; quick 2)"
    )
    parser.add_argument("--peer-seconds", type=float, help="the peer's search budget (default 15; quick 20)")
    parser.add_argument("--peer-trials", type=int, help="the peer's trial cap (default 40; quick 1)")
    parser.add_argument(
        "--peer-bf16", choices=["auto", "on", "off"], default="auto", help="auto: on a GPU with bfloat16"
    )
    parser.add_argument("--steps", type=int, help="train.steps of every trial (default 300; quick 8)")
    parser.add_argument("--time-limit", type=float, help="seconds for the whole run (default 228; quick 600)")
    parser.add_argument("--teacher", help="default ../shared/models/minilm-sst2-teacher (quick: a tiny one)")
    parser.add_argument("--dataset", help="default ../shared/data/sst2 (quick: a 600/200-row slice of it)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="more overrides")
    parser.add_argument("--gpu", help="the GPU to use (default: the first of CUDA_VISIBLE_DEVICES, else 0)")
    parser.add_argument("--out", type=Path, help="keep the studies and logs here (default: a temporary dir)")
    # The peer runs in a child process of this script (a clean GPU and clock, as the searches get).
    parser.add_argument("--peer-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--space", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def make_plan(args: argparse.Namespace, gpu: str | None, work: Path) -> Plan:
    quick = args.quick

    def pick(value: Any, default: Any, quick_default: Any) -> Any:
        return value if value is not None else (quick_default if quick else default)

    steps = pick(args.steps, 300, 8)
    if quick:
        space, teacher, dataset = quick_inputs(work, args.teacher, args.dataset)
    else:
        space = SPACE
        teacher = args.teacher or str(SHARED / "models" / "minilm-sst2-teacher")
        dataset = args.dataset or str(SHARED / "data" / "sst2")
    return Plan(
        space=space,
        teacher=teacher,
        dataset=dataset,
        sets=[f"train.steps={steps}", "train.batch_size=32", *COMMON_SETS, *args.set],
        workers=pick(args.workers_list, [1, 2, 4, 8], [1, 2]),
        seconds_per_count=pick(args.seconds_per_count, 20.0, 20.0),
        trials_per_worker=pick(args.max_trials_per_worker, 40, 2),
        peer_seconds=pick(args.peer_seconds, 15.0, 20.0),
        peer_trials=pick(args.peer_trials, 40, 1),
        peer_bf16=args.peer_bf16,
        steps=steps,
        gpu=gpu,
        work=work,
    )


def quick_inputs(work: Path, teacher: str | None, dataset: str | None) -> tuple[Path, str, str]:
    """The quick run's space file, tiny teacher and SST-2 slice (the flags win over the last two)."""
    space = work / "tiny.yaml"
    space.write_text(TINY_SPACE)
    if dataset is None:
        dataset = str(work / "sst2-slice")
        slice_sst2(SHARED / "data" / "sst2", Path(dataset), {"train.tsv": 600, "validation.tsv": 200})
    if teacher is None:
        teacher = str(work / "tiny-teacher")
        tiny_teacher(Path(teacher))
    return space, teacher, dataset


def slice_sst2(src: Path, dst: Path, rows: dict[str, int]) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for name, count in rows.items():
        lines = (src / name).read_text(encoding="utf-8").splitlines(keepends=True)
        (dst / name).write_text("".join(lines[: count + 1]), encoding="utf-8")  # + the header


def tiny_teacher(out: Path) -> None:
    """A 2-layer × 32 BERT classifier from a config (random weights) with the MiniLM tokenizer."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(SHARED / "models" / "minilm-sst2-teacher")
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        num_labels=2,
        id2label={0: "negative", 1: "positive"},
        label2id={"negative": 0, "positive": 1},
    )
    config.architectures = ["BertForSequenceClassification"]
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(out)
    tokenizer.save_pretrained(out)


# --- running a phase -------------------------------------------------------------------------------------


class Clock:
    """The run's deadline, and what each phase may take so that the phases after it still fit."""

    def __init__(self, limit_s: float):
        self.start = time.monotonic()
        self.deadline = self.start + limit_s

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def cap(self, reserve_s: float) -> float:
        """Seconds the next phase may run, keeping ``reserve_s`` for the later ones."""
        return self.deadline - time.monotonic() - reserve_s


def child_env(gpu: str | None) -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for name, value in (
        ("HF_HUB_OFFLINE", "1"),
        ("HF_DATASETS_OFFLINE", "1"),
        ("TOKENIZERS_PARALLELISM", "false"),
    ):
        env.setdefault(name, value)
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu  # one GPU: the supervisor gives it to every worker
    return env


def descendants(pid: int) -> list[int]:
    """The process ids below ``pid``: the workers a supervisor started (in sessions of their own, so a
    signal to the supervisor's group would miss them)."""
    found: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                found += [int(child), *descendants(int(child))]
    except OSError:
        pass
    return found


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (a supervisor stops its workers as on Ctrl-C), then SIGKILL to it and whatever it started."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(STOP_GRACE_S)
        return
    except subprocess.TimeoutExpired:
        pass
    for pid in [*descendants(process.pid), process.pid]:  # children first: they lose their parent next
        with contextlib.suppress(ProcessLookupError):  # ended meanwhile
            os.kill(pid, signal.SIGKILL)
    process.wait()


@dataclass
class Ran:
    wall_s: float
    returncode: int
    stopped: bool  # ran out of its time and was stopped
    log: Path


def run_logged(command: list[str], log: Path, env: dict[str, str], cap_s: float) -> Ran:
    """Run ``command`` with its output in ``log``; stopped after ``cap_s`` seconds."""
    start = time.perf_counter()
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        stopped = False
        try:
            process.wait(timeout=max(1.0, cap_s))
        except subprocess.TimeoutExpired:
            stopped = True
            stop(process)
    return Ran(time.perf_counter() - start, process.returncode, stopped, log)


def log_tail(log: Path, lines: int = 3) -> str:
    text = log.read_text(errors="replace").strip().splitlines() if log.is_file() else []
    return " | ".join(line.strip()[-200:] for line in text[-lines:])


class GpuSampler:
    """``nvidia-smi``'s utilisation of one GPU every 250 ms, timestamped here, while the context is open."""

    def __init__(self, gpu: str | None):
        self.gpu = gpu
        self.samples: list[tuple[float, float]] = []
        self.process: subprocess.Popen[str] | None = None
        self.reader: threading.Thread | None = None

    def __enter__(self) -> GpuSampler:
        smi = shutil.which("nvidia-smi")
        if smi is None or self.gpu is None:
            return self
        query = [
            "--query-gpu=utilization.gpu",
            "--format=csv,noheader,nounits",
            "-lms",
            "250",
            "-i",
            self.gpu,
        ]
        self.process = subprocess.Popen(
            [smi, *query], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        return self

    def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            try:
                self.samples.append((time.time(), float(line.strip())))
            except ValueError:  # "[N/A]" or a message: not a sample
                continue

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait()
        if self.reader is not None:
            self.reader.join(timeout=5)

    def mean(self, window: tuple[float, float] | None) -> float | None:
        """Mean utilisation in percent over ``window`` (epoch seconds), else over the whole run; None
        without nvidia-smi."""
        if self.process is None:
            return None
        inside = [u for t, u in self.samples if window and window[0] <= t <= window[1]]
        chosen = inside or [u for _, u in self.samples]
        return round(statistics.fmean(chosen), 1) if chosen else None


# --- reading a study -------------------------------------------------------------------------------------


@dataclass
class Throughput:
    completed: int = 0
    failed: int = 0
    window_s: float | None = None
    trials_per_hour: float = 0.0
    seconds_per_trial: float | None = None  # mean start-to-complete of a completed trial
    workers_seen: int = 0  # distinct worker processes that completed a trial
    window: tuple[float, float] | None = None  # epoch seconds, for the GPU samples


def load_trials(out: Path, study_name: str) -> list[Any]:
    """The study's trials: in OUT/optuna.journal (several workers) or OUT/optuna.db (one)."""
    import optuna

    from autodistill.store.locations import JOURNAL_FILE, SQLITE_FILE, optuna_storage

    journal = out / JOURNAL_FILE
    if journal.is_file():
        storage: Any = optuna_storage(str(journal))
    elif (out / SQLITE_FILE).is_file():
        storage = f"sqlite:///{(out / SQLITE_FILE).resolve()}"
    else:
        return []
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        return optuna.load_study(study_name=study_name, storage=storage).get_trials(deepcopy=False)
    except KeyError:  # the process ended before it created the study
        return []


def throughput(trials: list[Any]) -> Throughput:
    """Completed trials per hour between the first trial's start and the last completion."""
    from optuna.trial import TrialState

    done = [t for t in trials if t.state == TrialState.COMPLETE and t.datetime_complete is not None]
    failed = sum(t.state == TrialState.FAIL for t in trials)
    if not done:
        return Throughput(failed=failed)
    # Optuna stamps trials with naive local times; .timestamp() reads them as local, like time.time().
    first = min(t.datetime_start for t in trials if t.datetime_start is not None)
    last = max(t.datetime_complete for t in done)
    window = max((last - first).total_seconds(), 1e-9)
    workers = {(w.get("host"), w.get("pid")) for t in done if (w := t.user_attrs.get("worker"))}
    return Throughput(
        completed=len(done),
        failed=failed,
        window_s=window,
        trials_per_hour=len(done) / window * 3600,
        seconds_per_trial=statistics.fmean(
            (t.datetime_complete - t.datetime_start).total_seconds() for t in done
        ),
        workers_seen=len(workers),
        window=(first.timestamp(), last.timestamp()),
    )


# --- the phases ------------------------------------------------------------------------------------------


def search_command(plan: Plan, out: Path, workers: int, trials: int, timeout_s: float | None) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "autodistill",
        "search",
        str(plan.space),
        "--teacher",
        plan.teacher,
        "--dataset",
        plan.dataset,
        "--out",
        str(out),
        "--cache-dir",
        str(plan.work / "cache"),  # shared: the warm-up computes, every count reads
        "--trials",
        str(trials),
        "--seed",
        "0",
        "--workers",
        str(workers),
    ]
    if timeout_s is not None:
        command += ["--timeout", f"{timeout_s:.1f}"]
    return [*command, *(flag for value in plan.sets for flag in ("--set", value))]


def warm_up(plan: Plan, clock: Clock, reserve_s: float) -> Ran:
    """A 1-trial search that computes the teacher's caches once; not counted."""
    command = search_command(plan, plan.work / "warmup", 1, 1, None)
    return run_logged(command, plan.work / "warmup.log", child_env(plan.gpu), clock.cap(reserve_s))


@dataclass
class Measured:
    name: str
    ran: Ran | None  # None: skipped, out of time
    speed: Throughput = field(default_factory=Throughput)
    gpu_utilisation: float | None = None
    note: str = ""
    budget_s: float | None = None  # its --timeout (or the peer's budget), after any squeeze for time


def run_count(plan: Plan, workers: int, budget: float, cap: float) -> Measured:
    """One fresh study searched by ``workers`` workers for ``budget`` seconds (--timeout); stopped at ``cap``."""
    if cap < MIN_PHASE_S["count"]:
        return Measured(str(workers), None, note="skipped: out of time")
    budget = max(MIN_BUDGET_S, budget)
    out = plan.work / f"workers-{workers}"
    command = search_command(plan, out, workers, workers * plan.trials_per_worker, budget)
    with GpuSampler(plan.gpu) as gpu:
        ran = run_logged(command, plan.work / f"workers-{workers}.log", child_env(plan.gpu), cap)
    speed = throughput(load_trials(out, plan.space.stem))
    return Measured(str(workers), ran, speed, gpu.mean(speed.window), phase_note(ran, speed), budget)


def run_peer(plan: Plan, clock: Clock) -> Measured:
    """The HF Trainer peer on the same GPU, in a child process of this script."""
    cap = clock.cap(0)
    if cap < MIN_PHASE_S["peer"]:
        return Measured("peer", None, note="skipped: out of time")
    budget = max(MIN_BUDGET_S, min(plan.peer_seconds, cap - OVERHEAD_S["peer"]))
    out = plan.work / "peer"
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--peer-child",
        "--space",
        str(plan.space),
        "--teacher",
        plan.teacher,
        "--dataset",
        plan.dataset,
        "--out",
        str(out),
        "--peer-seconds",
        str(budget),
        "--peer-trials",
        str(plan.peer_trials),
        "--peer-bf16",
        plan.peer_bf16,
        *(flag for value in plan.sets for flag in ("--set", value)),
    ]
    with GpuSampler(plan.gpu) as gpu:
        ran = run_logged(command, plan.work / "peer.log", child_env(plan.gpu), cap)
    speed = throughput(load_trials(out, PEER_STUDY))
    return Measured("peer", ran, speed, gpu.mean(speed.window), phase_note(ran, speed), budget)


def phase_note(ran: Ran, speed: Throughput) -> str:
    notes = []
    if ran.stopped:
        notes.append("stopped at its time cap")
    if ran.returncode not in (0, None) and not ran.stopped:
        notes.append(f"exit {ran.returncode}: {log_tail(ran.log)}")
    if speed.failed:
        notes.append(f"{speed.failed} trial(s) failed")
    return "; ".join(notes)


def peer_child(args: argparse.Namespace) -> None:
    """Run hf_trainer_peer's search (unchanged) with bf16 as asked; the parent reads its study."""
    import dataclasses

    import hf_trainer_peer as peer  # beside this file: sys.path[0] when run as a script
    import optuna
    import torch

    from autodistill.config import load_space

    cuda = torch.cuda.is_available()
    bf16 = args.peer_bf16 == "on" or (args.peer_bf16 == "auto" and cuda and torch.cuda.is_bf16_supported())
    if bf16:
        # run() builds its arguments from the module's DistillationArguments: a subclass whose bf16
        # defaults to True is the peer's own bf16=True, with hf_trainer_peer.py untouched.
        @dataclasses.dataclass
        class Bf16Arguments(peer.DistillationArguments):
            bf16: bool = True
            use_cpu: bool = not cuda  # transformers' condition for bf16 on a CPU (--peer-bf16 on)

        peer.DistillationArguments = Bf16Arguments  # type: ignore[misc]
    print(f"peer: bf16={bf16}, device {'cuda' if cuda else 'cpu'}", flush=True)
    space = load_space(
        args.space, [*args.set, "train.seed=0"], teacher=args.teacher, dataset=args.dataset
    ).config
    optuna.logging.set_verbosity(optuna.logging.INFO)
    peer.run(space, args.out, args.peer_seconds, 0, args.peer_trials)


# --- the report ------------------------------------------------------------------------------------------


def device_name(gpu: str | None) -> str:
    if gpu is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        return f"cpu ({cores} cores)"
    done = subprocess.run(
        ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader", "-i", gpu], capture_output=True, text=True
    )
    return done.stdout.strip() or f"cuda:{gpu}"


def summary(
    plan: Plan, device: str, counts: list[Measured], peer: Measured, total_s: float
) -> dict[str, Any]:
    tph = {m.name: round(m.speed.trials_per_hour, 1) if m.ran else None for m in counts}
    measured = {k: v for k, v in tph.items() if v}
    best_name = max(measured, key=lambda k: measured[k]) if measured else None
    best = measured.get(best_name) if best_name else None
    peer_tph = round(peer.speed.trials_per_hour, 1) if peer.ran and peer.speed.completed else None
    on_gpu = plan.gpu is not None
    return {
        "device": device,
        "space": plan.space.name,
        "steps_per_trial": plan.steps,
        "budget_s": {m.name: rounded(m.budget_s, 1) for m in counts},
        "trials_per_hour": tph,
        "trials_completed": {m.name: m.speed.completed for m in counts},
        "seconds_per_trial": {m.name: rounded(m.speed.seconds_per_trial) for m in counts},
        "window_s": {m.name: rounded(m.speed.window_s) for m in counts},
        "wall_s": {m.name: rounded(m.ran.wall_s) if m.ran else None for m in counts},
        "workers_seen": {m.name: m.speed.workers_seen for m in counts},
        "gpu_utilisation": {m.name: m.gpu_utilisation for m in counts} if on_gpu else None,
        "peer_trials_per_hour": peer_tph,
        "peer_trials_completed": peer.speed.completed,
        "peer_seconds_per_trial": rounded(peer.speed.seconds_per_trial),
        "peer_wall_s": rounded(peer.ran.wall_s) if peer.ran else None,
        "peer_budget_s": rounded(peer.budget_s, 1),
        "peer_gpu_utilisation": peer.gpu_utilisation if on_gpu else None,
        "best_workers": int(best_name) if best_name else None,
        "best_vs_baseline": round(best / BASELINE_TRIALS_PER_HOUR, 2) if best and on_gpu else None,
        "peer_slowdown": round(best / peer_tph, 2) if best and peer_tph else None,
        "notes": {m.name: m.note for m in [*counts, peer] if m.note} or None,
        "total_wall_s": round(total_s, 1),
    }


def rounded(value: float | None, digits: int = 2) -> float | None:
    return round(value, digits) if value is not None else None


def print_table(result: dict[str, Any], counts: list[Measured], peer: Measured) -> None:
    def cell(value: Any, spec: str) -> str:
        return format(value, spec) if value is not None else "-"

    print(
        f"{'workers':>7} {'trials':>6} {'window s':>8} {'trials/h':>9} {'s/trial':>7} {'GPU %':>6} {'wall s':>7}"
    )
    for m in [*counts, peer]:
        util = m.gpu_utilisation
        tph = m.speed.trials_per_hour if m.ran else None
        wall = m.ran.wall_s if m.ran else None
        print(
            f"{m.name:>7} {m.speed.completed:6d} {cell(m.speed.window_s, '8.1f')} {cell(tph, '9.0f')} "
            f"{cell(m.speed.seconds_per_trial, '7.2f')} {cell(util, '6.1f')} {cell(wall, '7.1f')}"
            + (f"  ({m.note})" if m.note else "")
        )
    ratio, slowdown = result["best_vs_baseline"], result["peer_slowdown"]
    print(
        f"best: {result['best_workers']} workers; vs the 735 trials/h baseline: "
        f"{cell(ratio, '.2f')}× (target ≥ 10 on an H200); peer slower by {cell(slowdown, '.2f')}× (target ≥ 3)"
    )


# --- main ------------------------------------------------------------------------------------------------


def cuda_gpu(flag: str | None) -> str | None:
    """The GPU to run on, or None without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return None
    listed = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
    return flag or listed or "0"


def copy_logs(work: Path) -> None:
    """Each phase's log into $OUT/gpu_throughput/ where $OUT is set (the device tool's folder)."""
    target = os.environ.get("OUT")
    if not target:
        return
    folder = Path(target) / "gpu_throughput"
    folder.mkdir(parents=True, exist_ok=True)
    for log in work.glob("*.log"):
        shutil.copy(log, folder / log.name)


def measure(plan: Plan, clock: Clock) -> tuple[list[Measured], Measured, Ran]:
    def least(counts_after: int) -> float:  # the time kept for the phases after this one
        return counts_after * MIN_PHASE_S["count"] + MIN_PHASE_S["peer"]

    peer_planned = plan.peer_seconds + OVERHEAD_S["peer"]
    warm = warm_up(plan, clock, least(len(plan.workers)))
    print(
        f"[{clock.elapsed():5.0f} s] warm-up (teacher caches, 1 trial, not counted): {warm.wall_s:.1f} s",
        flush=True,
    )
    if warm.returncode != 0:
        raise RuntimeError(f"warm-up failed (exit {warm.returncode}): {log_tail(warm.log, 8)}")
    counts: list[Measured] = []
    overhead = OVERHEAD_S["count"]
    for i, workers in enumerate(plan.workers):
        after = len(plan.workers) - i - 1
        # An equal share of what is left after the peer's planned time, less start-up and report.
        share = clock.cap(peer_planned) / (after + 1) - overhead
        m = run_count(plan, workers, min(plan.seconds_per_count, share), clock.cap(least(after)))
        counts.append(m)
        if m.ran and m.speed.window_s is not None:
            overhead = m.ran.wall_s - m.speed.window_s  # this machine's figure, for the counts after
        progress(clock, f"{workers} worker(s)", m)
    peer = run_peer(plan, clock)
    progress(clock, "HF Trainer peer", peer)
    return counts, peer, warm


def progress(clock: Clock, what: str, m: Measured) -> None:
    done = f"{m.speed.completed} trials, {m.ran.wall_s:.1f} s with start-up" if m.ran else "not run"
    print(f"[{clock.elapsed():5.0f} s] {what}: {done}" + (f" ({m.note})" if m.note else ""), flush=True)


def main() -> None:
    args = parse_args()
    if args.peer_child:
        peer_child(args)
        return
    gpu = cuda_gpu(args.gpu)
    if gpu is None and not (args.quick or args.cpu):
        raise SystemExit(
            "no CUDA device here: the default run is sized for one GPU; pass --quick (a tiny teacher) or "
            "--cpu with fewer --steps and a smaller --dataset on a CPU"
        )
    limit = args.time_limit or (600.0 if args.quick else 228.0)
    clock = Clock(limit)
    work = args.out or Path(tempfile.mkdtemp(prefix="gpu-throughput-"))
    work.mkdir(parents=True, exist_ok=True)
    plan = make_plan(args, gpu, work.resolve())
    device = device_name(gpu)
    print(
        f"gpu_throughput: {device}; {plan.space.name}, {plan.steps} steps × batch 32 per trial; workers "
        f"{plan.workers}, {plan.seconds_per_count:.0f} s each; peer {plan.peer_seconds:.0f} s; in {work}",
        flush=True,
    )
    try:
        counts, peer, _ = measure(plan, clock)
    except RuntimeError as exc:
        copy_logs(work)
        print(json.dumps({"device": device, "error": str(exc)}))
        raise SystemExit(1) from None
    result = summary(plan, device, counts, peer, clock.elapsed())
    copy_logs(work)
    if args.out is None:
        shutil.rmtree(work, ignore_errors=True)
    print_table(result, counts, peer)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
