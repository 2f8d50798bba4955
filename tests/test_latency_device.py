"""Where latency is timed (``latency.device``): on the CPU by default, the deployment target, even when
the trials train on a GPU; or a batch on the GPU with ``device: cuda``, refused up front without one.

The tests marked for CUDA run only where torch finds a GPU.
"""

from __future__ import annotations

import importlib
import math
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
from pydantic import ValidationError
from transformers import AutoModelForSequenceClassification, BertConfig

from autodistill.cli import main
from autodistill.config.schema import LatencySpec, SpaceConfig
from autodistill.distill.student import StudentArch
from autodistill.measure.latency import measure_latency
from autodistill.search.shape_cost import shape_key
from tests.conftest import search_args

# The module itself: ``autodistill.measure`` re-exports a function named ``latency``, which shadows the
# submodule as an attribute of the package (so ``import autodistill.measure.latency as m`` is that function).
latency_module = importlib.import_module("autodistill.measure.latency")
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
FAST = {"sequence_length": 16, "warmup": 1, "repeats": 5, "rounds": 1}


@pytest.fixture
def tiny() -> Any:
    config = BertConfig(
        vocab_size=200, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64
    )
    config.num_labels = 2
    torch.manual_seed(0)
    return AutoModelForSequenceClassification.from_config(config)


def _device(model: Any) -> str:
    return next(model.parameters()).device.type


def test_the_default_is_batch_one_on_the_cpu(tiny: Any) -> None:
    spec = LatencySpec(**FAST)
    assert (spec.device, spec.batch_size) == ("cpu", 1)
    timed = measure_latency(tiny, spec)
    assert (timed.device, timed.batch_size) == ("cpu", 1)
    assert math.isfinite(timed.p50_ms) and 0 < timed.p50_ms <= timed.p95_ms
    assert _device(tiny) == "cpu"


def test_a_batch_needs_the_gpu_and_the_gpu_needs_torch_eager() -> None:
    with pytest.raises(ValidationError, match="CPU latency is batch 1"):
        LatencySpec(batch_size=8)
    with pytest.raises(ValidationError, match="use backend: torch"):
        LatencySpec(device="cuda", backend="onnxruntime")
    assert LatencySpec(device="cuda", batch_size=8).batch_size == 8


def test_causal_lm_refuses_gpu_latency() -> None:
    space = {
        "task": "causal-lm",
        "student": {"depth": 1, "width": 64},
        "distill": {"lambda": 0.5, "temperature": 2.0, "learning_rate": 1e-3},
        "latency": {"device": "cuda"},
    }
    with pytest.raises(ValidationError, match="not supported for task: causal-lm"):
        SpaceConfig.model_validate(space)
    space["latency"] = {"device": "cpu"}
    assert SpaceConfig.model_validate(space).latency.device == "cpu"


def test_studies_and_shape_figures_from_before_the_device_setting_still_match() -> None:
    spec = LatencySpec()
    # the fingerprint's latency part is what it was before device and batch_size existed
    assert spec.identity() == {
        k: v for k, v in spec.model_dump(mode="json").items() if k not in {"device", "batch_size"}
    }
    arch, bert = StudentArch(depth=2, width=64, heads=2, ffn=256), BertConfig(vocab_size=1000)
    assert shape_key(arch, spec, bert) != shape_key(arch, LatencySpec(device="cuda"), bert)
    assert shape_key(arch, LatencySpec(device="cuda"), bert) != shape_key(
        arch, LatencySpec(device="cuda", batch_size=4), bert
    )


def test_gpu_latency_without_a_gpu_is_refused_up_front(
    tiny_space: Path,
    tiny_teacher: Path,
    sst2_slice: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "study"
    args = search_args(tiny_space, tiny_teacher, sst2_slice, out, "--set", "latency.device=cuda")
    assert main(args) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert errors == [
        "autodistill: error: latency.device: cuda, but torch finds no CUDA device on this machine; "
        "use latency.device: cpu (the default) or run on a GPU machine"
    ]
    assert not (out / "optuna.db").exists()


@CUDA
def test_a_student_on_the_gpu_is_timed_on_the_cpu_and_goes_back(tiny: Any) -> None:
    tiny.to("cuda")
    timed = measure_latency(tiny, LatencySpec(**FAST))
    assert timed.device == "cpu"
    assert _device(tiny) == "cuda"


@CUDA
def test_gpu_latency_is_a_batch_on_the_gpu(tiny: Any) -> None:
    timed = measure_latency(tiny, LatencySpec(**FAST, device="cuda", batch_size=8))
    assert (timed.device, timed.batch_size) == ("cuda", 8)
    assert math.isfinite(timed.p50_ms) and 0 < timed.p50_ms <= timed.p95_ms
    assert timed.peak_memory_mb > 0
    assert _device(tiny) == "cpu"  # back where it was


@CUDA
@pytest.mark.slow
def test_a_search_training_on_the_gpu_measures_latency_on_the_cpu(
    tiny_space: Path, tiny_teacher: Path, sst2_slice: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    timed_on: list[str] = []
    peak = latency_module.peak_memory_mb  # the CPU path's memory figure, taken right after the timed passes

    def spy(model: Any, inputs: dict[str, torch.Tensor]) -> float:
        timed_on.append(_device(model))
        return peak(model, inputs)

    monkeypatch.setattr(latency_module, "peak_memory_mb", spy)
    out = tmp_path / "study"
    assert main(search_args(tiny_space, tiny_teacher, sst2_slice, out, "--trials", "2")) == 0
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{(out / 'optuna.db').resolve()}")
    trials = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert trials and all(t.user_attrs["latency_measured_with"]["device"] == "cpu" for t in trials)
    assert timed_on and set(timed_on) == {"cpu"}  # teacher and students, each on the CPU
