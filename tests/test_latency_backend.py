"""Latency in torch eager or onnxruntime: sane figures, recorded settings, torch's threads left alone.

No wall-clock assertions: this machine is shared, so only what holds on any load is checked.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from pydantic import ValidationError
from transformers import AutoModelForSequenceClassification, BertConfig

from autodistill.config import LatencySpec
from autodistill.measure.latency import latency, measure_latency, round_sizes

BACKENDS = ["torch", "onnxruntime"]


@pytest.fixture(scope="module")
def tiny() -> Any:
    config = BertConfig(
        vocab_size=200,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
    )
    config.num_labels = 2  # set after: transformers' typed config does not declare it
    torch.manual_seed(0)
    return AutoModelForSequenceClassification.from_config(config).eval()


@pytest.mark.parametrize("backend", BACKENDS)
def test_measure_latency_is_finite_and_records_its_settings(
    tiny: Any, backend: str, capfd: pytest.CaptureFixture[str]
) -> None:
    spec = LatencySpec(backend=backend, sequence_length=16, threads=2, warmup=1, repeats=7, rounds=3)
    timed = measure_latency(tiny, spec)
    assert math.isfinite(timed.p50_ms) and math.isfinite(timed.p95_ms)
    assert 0 < timed.p50_ms <= timed.p95_ms
    assert (timed.backend, timed.threads, timed.sequence_length) == (backend, 2, 16)
    assert (timed.repeats, timed.rounds) == (7, 3)
    assert timed.peak_memory_mb > 0
    out, err = capfd.readouterr()
    assert out == ""  # the exporter's narration is silenced
    assert "torchvision" not in err and "Evaluation failed" not in err


@pytest.mark.parametrize("backend", BACKENDS)
def test_torch_threads_are_restored(tiny: Any, backend: str) -> None:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        measure_latency(tiny, LatencySpec(backend=backend, sequence_length=8, threads=2, warmup=0, repeats=2))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(previous)


def test_unknown_backend_is_rejected() -> None:
    with pytest.raises(ValidationError) as caught:
        LatencySpec(backend="tensorrt")
    assert caught.value.errors()[0]["loc"] == ("backend",)


def test_default_backend_is_torch() -> None:
    assert LatencySpec().backend == "torch"


def test_rounds_split_repeats_evenly_and_never_run_empty(tiny: Any) -> None:
    assert round_sizes(75, 5) == [15] * 5
    assert round_sizes(7, 3) == [3, 2, 2]
    assert round_sizes(2, 5) == [1, 1]  # more rounds than passes: one pass per round
    timed = measure_latency(tiny, LatencySpec(sequence_length=8, warmup=0, repeats=2, rounds=5))
    assert timed.rounds == 2 and timed.p50_ms <= timed.p95_ms


def test_positional_latency_still_times_torch(tiny: Any) -> None:
    """The earlier five-argument call keeps working: one round, torch eager."""
    timed = latency(tiny, 8, 1, 1, 5)
    assert timed.backend == "torch" and timed.rounds == 1 and 0 < timed.p50_ms <= timed.p95_ms
