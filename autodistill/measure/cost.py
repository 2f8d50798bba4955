"""What a student's shape costs, whatever its weights: size, batch-1 CPU latency and peak memory."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from autodistill.config.schema import LatencySpec
from autodistill.measure.latency import Latency, measure_beside, measure_latency
from autodistill.measure.size import model_size


def measure_cost(
    model: Any,
    spec: LatencySpec,
    latency: Callable[[Any, LatencySpec], Latency] = measure_latency,
    beside: Any = None,
) -> tuple[dict[str, float], dict[str, float]]:
    """Size and latency (``latency``: the task's way to time a model; by default a batch-1 forward
    pass in torch eager or onnxruntime, as ``spec`` says); returns (metrics, seconds per phase).

    With a ``beside`` model (the teacher) the two are timed in turns and ``latency_fraction`` is the
    model's latency over the teacher's (``measure_beside``)."""
    timings: dict[str, float] = {}
    start = time.perf_counter()
    size = model_size(model)
    timings["size"] = time.perf_counter() - start
    start = time.perf_counter()
    fraction = None
    if beside is None:
        timed = latency(model, spec)
    else:
        timed, fraction = measure_beside(model, beside, spec, latency)
    timings["latency"] = time.perf_counter() - start
    metrics = {
        "latency_ms": timed.p50_ms,
        "latency_p95_ms": timed.p95_ms,
        "latency_threads": float(timed.threads),
        "latency_sequence_length": float(timed.sequence_length),
        "peak_memory_mb": timed.peak_memory_mb,
        "params": float(size.params),
        "params_no_embeddings": float(size.params_no_embeddings),
        "size_mb": size.size_bytes / 1e6,
    }
    if fraction is not None:
        metrics["latency_fraction"] = fraction
    if timed.prefill_ms is not None:
        metrics["prefill_ms"] = timed.prefill_ms
    return metrics, timings
