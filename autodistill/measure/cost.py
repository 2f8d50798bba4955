"""What a student's shape costs, whatever its weights: size, batch-1 CPU latency and peak memory."""

from __future__ import annotations

import time
from typing import Any

from autodistill.config.schema import LatencySpec
from autodistill.measure.latency import measure_latency
from autodistill.measure.size import model_size


def measure_cost(model: Any, spec: LatencySpec) -> tuple[dict[str, float], dict[str, float]]:
    """Size and latency (torch eager or onnxruntime, as ``spec`` says); returns (metrics, seconds per phase)."""
    timings: dict[str, float] = {}
    start = time.perf_counter()
    size = model_size(model)
    timings["size"] = time.perf_counter() - start
    start = time.perf_counter()
    timed = measure_latency(model, spec)
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
    return metrics, timings
