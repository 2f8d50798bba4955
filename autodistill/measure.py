"""Measure a model: validation accuracy, size, batch-1 CPU latency and peak inference memory.

Latency is measured like a benchmark: fixed thread count, warm-up, timed repeats, then median and p95.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from autodistill.data import Encoded


@torch.no_grad()
def predict_logits(model: Any, data: Encoded, batch_size: int, device: str) -> torch.Tensor:
    """Logits [N, classes] for every example, batched by similar length to cut padding."""
    model.eval().to(device)
    order = torch.argsort(data.lengths, descending=True)
    out = torch.empty(len(data), model.config.num_labels)
    for start in range(0, len(data), batch_size):
        index = order[start : start + batch_size]
        batch = data.batch(index)
        logits = model(
            input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device)
        ).logits
        out[index] = logits.float().cpu()
    return out


def accuracy(model: Any, data: Encoded, batch_size: int, device: str) -> float:
    logits = predict_logits(model, data, batch_size, device)
    return float((logits.argmax(dim=-1) == data.labels).float().mean())


@dataclass
class Size:
    params: int
    params_no_embeddings: int
    size_bytes: int  # of model.safetensors as save_pretrained writes it


def model_size(model: Any) -> Size:
    params = sum(p.numel() for p in model.parameters())
    embeddings = getattr(model.base_model, "embeddings", None)
    emb = sum(p.numel() for p in embeddings.parameters()) if embeddings is not None else 0
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        size_bytes = sum(f.stat().st_size for f in Path(tmp).glob("*.safetensors"))
    return Size(params=params, params_no_embeddings=params - emb, size_bytes=size_bytes)


@dataclass
class Latency:
    p50_ms: float
    p95_ms: float
    threads: int
    sequence_length: int
    repeats: int
    peak_memory_mb: float  # parameters plus the peak of activations allocated during one forward pass


def _dummy_input(model: Any, sequence_length: int) -> dict[str, torch.Tensor]:
    vocab = model.config.vocab_size
    ids = torch.randint(
        low=min(1000, vocab - 1),
        high=vocab,
        size=(1, sequence_length),
        generator=torch.Generator().manual_seed(0),
    )
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


@torch.no_grad()
def latency(model: Any, sequence_length: int, threads: int, warmup: int, repeats: int) -> Latency:
    """Batch-1 CPU latency of ``model`` on a ``sequence_length``-token input.

    The model is moved to the CPU; ``threads`` intra-op threads are used while timing and the
    previous setting is restored after.
    """
    model.eval().to("cpu")
    inputs = _dummy_input(model, sequence_length)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for _ in range(warmup):
            model(**inputs)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model(**inputs)
            times.append((time.perf_counter() - start) * 1000)
        peak = peak_memory_mb(model, inputs)
    finally:
        torch.set_num_threads(previous)
    quantiles = statistics.quantiles(times, n=20, method="inclusive") if len(times) > 1 else times * 19
    return Latency(
        p50_ms=statistics.median(times),
        p95_ms=quantiles[18],
        threads=threads,
        sequence_length=sequence_length,
        repeats=repeats,
        peak_memory_mb=peak,
    )


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
