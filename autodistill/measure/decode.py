"""Causal LMs' latency as deployed: batch-1 decoding, one new token at a time with the KV cache.

After a prompt of ``sequence_length`` tokens (its forward pass is the prefill, timed separately), each
timed pass generates one token from the cache. Like ``latency``: fixed threads, warm-up, rounds with
the garbage collector paused, p50 = median of the rounds' medians; a round starts with a fresh prefill,
so the cache grows by one round's passes at most.
"""

from __future__ import annotations

import inspect
import statistics
import time
from typing import Any

import torch

from autodistill.config.schema import LatencySpec
from autodistill.measure.latency import (
    Latency,
    dummy_input,
    gc_paused,
    moved_to,
    p95,
    peak_memory_mb,
    round_sizes,
)


def _elapsed_ms(start: int) -> float:
    return (time.perf_counter_ns() - start) / 1e6


@torch.no_grad()
def decode_latency(model: Any, spec: LatencySpec) -> Latency:
    """Per-token decode latency (p50, p95) and prefill latency of ``model`` on the CPU, batch 1 (the model
    goes back to its device after).

    The total length, ``sequence_length`` plus the largest round plus the warm-up, must fit the
    model's positions (``validate`` checks it).
    """
    model.eval()
    with moved_to(model, "cpu"):  # and back: a student training on a GPU goes on there
        return _decode_latency(model, spec)


def _decode_latency(model: Any, spec: LatencySpec) -> Latency:
    prompt = dummy_input(model, spec.sequence_length)
    # transformers 5 names the KV cache ``cache``; 4.x called it ``past_key_values``.
    name = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"

    def prefill() -> tuple[Any, torch.Tensor]:
        out = model(**prompt, use_cache=True)
        return out.get(name), out.logits[:, -1:].argmax(dim=-1)

    def step(past: Any, token: torch.Tensor) -> tuple[Any, torch.Tensor]:
        out = model(input_ids=token, use_cache=True, **{name: past})
        return out.get(name), out.logits[:, -1:].argmax(dim=-1)

    previous = torch.get_num_threads()
    torch.set_num_threads(spec.threads)
    try:
        past, token = prefill()
        for _ in range(spec.warmup):
            past, token = step(past, token)
        medians, tails, prefills = [], [], []
        with gc_paused():
            for size in round_sizes(spec.repeats, spec.rounds):
                start = time.perf_counter_ns()
                past, token = prefill()
                prefills.append(_elapsed_ms(start))
                times = []
                for _ in range(size):
                    start = time.perf_counter_ns()
                    past, token = step(past, token)
                    times.append(_elapsed_ms(start))
                medians.append(statistics.median(times))
                tails.append(p95(times))
        peak = peak_memory_mb(model, prompt)
    finally:
        torch.set_num_threads(previous)
    return Latency(
        p50_ms=statistics.median(medians),
        p95_ms=statistics.median(tails),
        threads=spec.threads,
        sequence_length=spec.sequence_length,
        repeats=spec.repeats,
        peak_memory_mb=peak,
        backend="torch",
        rounds=len(medians),
        prefill_ms=statistics.median(prefills),
    )


def positions_needed(spec: LatencySpec) -> int:
    """How many positions a decode-latency measurement uses: prompt, warm-up and the largest round."""
    return spec.sequence_length + spec.warmup + max(round_sizes(spec.repeats, spec.rounds))
