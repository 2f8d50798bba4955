"""Batch-1 CPU latency (or, on request, batch latency on the GPU) and peak inference memory of a model.

Latency is measured like a benchmark: fixed thread count, warm-up, then rounds of timed repeats with
the garbage collector paused; p50 is the median of the round medians and p95 the median of the round
p95s, so a burst of load from another process on a shared machine spoils one round, not the figure.
It runs in torch eager or, for the deployment figure, in onnxruntime on the model's ONNX export.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from autodistill.config.schema import LatencySpec
from autodistill.measure.onnx import onnxruntime_run


@dataclass
class Latency:
    p50_ms: float  # median of the round medians
    p95_ms: float  # median of the round p95s
    threads: int
    sequence_length: int
    repeats: int  # timed passes in all
    peak_memory_mb: float  # parameters plus the peak of activations allocated during one torch forward pass
    backend: str  # "torch" or "onnxruntime": what ran the timed passes
    rounds: int  # the timed passes were split into this many rounds
    prefill_ms: float | None = None  # causal LMs: the prompt's forward pass (p50 and p95 are per new token)
    device: str = "cpu"  # where the timed passes ran
    batch_size: int = 1  # inputs per timed pass


def dummy_input(model: Any, sequence_length: int, batch_size: int = 1) -> dict[str, torch.Tensor]:
    vocab = model.config.vocab_size
    ids = torch.randint(
        low=min(1000, vocab - 1),
        high=vocab,
        size=(batch_size, sequence_length),
        generator=torch.Generator().manual_seed(0),
    )
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


@contextlib.contextmanager
def moved_to(model: Any, device: str) -> Iterator[None]:
    """``model`` on ``device`` for the block, then back where it was (a student training on a GPU is
    timed on the CPU, its deployment target, and goes on training on the GPU)."""
    first = next(model.parameters(), None)
    home = first.device if first is not None else torch.device("cpu")
    model.to(device)
    try:
        yield
    finally:
        model.to(home)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """A collection landing inside a timed pass adds its milliseconds to that pass alone.

    Not collected first: a full collection of a process holding torch and transformers takes ~0.2 s,
    more than the timed passes of a small student.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def round_sizes(repeats: int, rounds: int) -> list[int]:
    """``repeats`` split as evenly as possible into ``rounds`` (at most ``repeats``) non-empty rounds."""
    rounds = min(rounds, repeats)
    return [repeats // rounds + (i < repeats % rounds) for i in range(rounds)]


def p95(times: list[float]) -> float:
    return statistics.quantiles(times, n=20, method="inclusive")[18] if len(times) > 1 else times[0]


def _timed(run: Callable[[], object], warmup: int, repeats: int, rounds: int) -> tuple[float, float]:
    """(p50, p95) in ms of ``run``: the medians over rounds of each round's median and p95.

    One round's statistics stand for the machine as it was during that round; taking the median
    over rounds drops the rounds that another process's burst of work slowed down. Since each
    round's p95 is at least its median, the p95 returned is at least the p50.
    """
    for _ in range(warmup):
        run()
    medians, tails = [], []
    with gc_paused():
        for size in round_sizes(repeats, rounds):
            times = []
            for _ in range(size):
                start = time.perf_counter_ns()
                run()
                times.append((time.perf_counter_ns() - start) / 1e6)
            medians.append(statistics.median(times))
            tails.append(p95(times))
    return statistics.median(medians), statistics.median(tails)


@torch.no_grad()
def latency(
    model: Any,
    sequence_length: int,
    threads: int,
    warmup: int,
    repeats: int,
    rounds: int = 1,
    backend: str = "torch",
    device: str = "cpu",
    batch_size: int = 1,
) -> Latency:
    """Batch-1 CPU latency of ``model`` on a ``sequence_length``-token input, in torch eager or in
    onnxruntime (``backend``); with ``device="cuda"``, the latency of a ``batch_size`` batch on the GPU.

    The model is moved to ``device`` for the measurement and back after; ``threads`` intra-op threads
    are used while timing (torch's setting is restored after). ``repeats`` timed passes are split into
    ``rounds``. For onnxruntime the graph timed is the one ``autodistill export --onnx`` ships.
    ``peak_memory_mb`` is torch's figure either way (parameters plus peak activations of one eager
    forward pass): a property of the model. On CUDA every timed pass ends with ``torch.cuda.synchronize()``
    (kernels run asynchronously: unsynchronised, the clock would stop at the launch).
    """
    model.eval()
    with moved_to(model, device):
        inputs = {k: v.to(device) for k, v in dummy_input(model, sequence_length, batch_size).items()}
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            if device == "cuda":
                torch.cuda.synchronize()
                p50, p95 = _timed(lambda: _synchronized(model(**inputs)), warmup, repeats, rounds)
                peak = cuda_peak_memory_mb(model, inputs)
            else:
                run = (
                    onnxruntime_run(model, inputs, threads)
                    if backend == "onnxruntime"
                    else lambda: model(**inputs)
                )
                p50, p95 = _timed(run, warmup, repeats, rounds)
                peak = peak_memory_mb(model, inputs)
        finally:
            torch.set_num_threads(previous)
    return Latency(
        p50_ms=p50,
        p95_ms=p95,
        threads=threads,
        sequence_length=sequence_length,
        repeats=repeats,
        peak_memory_mb=peak,
        backend=backend,
        rounds=len(round_sizes(repeats, rounds)),
        device=device,
        batch_size=batch_size,
    )


def _synchronized(output: object) -> object:
    torch.cuda.synchronize()
    return output


def cuda_peak_memory_mb(model: Any, inputs: dict[str, torch.Tensor]) -> float:
    """Parameter bytes plus the peak of CUDA memory allocated during one forward pass beyond what was
    allocated before it."""
    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    model(**inputs)
    torch.cuda.synchronize()
    return (param_bytes + torch.cuda.max_memory_allocated() - before) / 1e6


def measure_latency(model: Any, spec: LatencySpec) -> Latency:
    """Latency of ``model`` as ``spec`` asks: batch 1 on the CPU in torch eager or in onnxruntime, or a
    batch on the GPU (``spec.device``)."""
    return latency(
        model,
        spec.sequence_length,
        spec.threads,
        spec.warmup,
        spec.repeats,
        spec.rounds,
        spec.backend,
        spec.device,
        spec.batch_size,
    )


def measure_beside(
    model: Any,
    reference: Any,
    spec: LatencySpec,
    measure: Callable[[Any, LatencySpec], Latency] = measure_latency,
) -> tuple[Latency, float]:
    """``model``'s latency as ``spec`` asks, and its fraction of ``reference``'s (the teacher's), the
    two timed in turns: each of ``spec.rounds`` rounds times one, then the other (alternating which goes
    first), so both see the machine at the same speed. The fraction is the median over rounds of each
    round's ratio of medians: on shared cores the speed drifts (one teacher measured 22.3 to 32.6 ms in a
    session), and a ratio taken within a round keeps only what the models themselves cost.

    ``measure`` is the task's way to time a model (``measure_latency``, or per-token decoding). The
    latency returned is ``model``'s: medians over its rounds, as ``measure_latency`` gives them."""
    mine: list[Latency] = []
    theirs: list[Latency] = []
    sizes = round_sizes(spec.repeats, spec.rounds)
    for k, size in enumerate(sizes):
        one_round = spec.model_copy(update={"repeats": size, "rounds": 1})
        turns = [(mine, model), (theirs, reference)]
        for sink, timed_model in turns if k % 2 == 0 else turns[::-1]:
            sink.append(measure(timed_model, one_round))
    fraction = statistics.median(a.p50_ms / b.p50_ms for a, b in zip(mine, theirs, strict=True))
    prefills = [m.prefill_ms for m in mine if m.prefill_ms is not None]
    combined = dataclasses.replace(
        mine[0],
        p50_ms=statistics.median(m.p50_ms for m in mine),
        p95_ms=statistics.median(m.p95_ms for m in mine),
        repeats=spec.repeats,
        rounds=len(sizes),
        prefill_ms=statistics.median(prefills) if prefills else None,
    )
    return combined, fraction


def onnxruntime_latency(
    model: Any, sequence_length: int, threads: int, warmup: int, repeats: int, rounds: int = 1
) -> Latency:
    """``latency`` with the onnxruntime backend: the deployment figure."""
    return latency(model, sequence_length, threads, warmup, repeats, rounds, "onnxruntime")


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Kineto (torch's profiler backend) prints start/stop lines from C++ that no setting turns off."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def peak_memory_mb(model: Any, inputs: dict[str, torch.Tensor]) -> float:
    """Parameter bytes plus the peak of live activation bytes during one forward pass (CPU profiler)."""
    from torch.profiler import ProfilerActivity, profile

    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    with _native_stderr_silenced(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        model(**inputs)
    live = peak = 0
    # Each op's self memory is what it allocated (+) or freed (-) itself; summed in time order, the
    # running total is the live activation memory.
    events = [e for e in prof.events() if e.self_cpu_memory_usage]
    for event in sorted(events, key=lambda e: e.time_range.start):
        live += event.self_cpu_memory_usage
        peak = max(peak, live)
    return (param_bytes + peak) / 1e6
