"""Right and fast on a GPU, unchanged on the CPU: losses copied to the host in batches, vectorised
gathers of the teacher's states, the teacher waiting on the CPU, deterministic and mixed-precision
settings. The tests marked for CUDA run only where torch finds a GPU; the others run anywhere.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

from autodistill.config.spacefile import ConfigError, load_space
from autodistill.distill import teacher_states as states_module
from autodistill.distill.loop import DistillRecipe, HiddenMatch, TrainResult, distill
from autodistill.distill.loss import LossParts
from autodistill.distill.student import teacher_arch
from autodistill.distill.teacher_states import TeacherStates, compute_states, teacher_states
from autodistill.search.inputs import inspect_inputs
from autodistill.search.preparation import Job, prepare_job, teacher_home
from autodistill.tasks.classification.encoding import Encoded
from autodistill.tasks.classification.task import LabelledBatches, SequenceClassification
from autodistill.util import devices
from autodistill.util.devices import autocast, configure_device, to_device
from tests.test_teacher_states import examples, tiny_teacher

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture
def device_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Whatever a test configures (deterministic algorithms, mixed precision, cuDNN, cuBLAS's
    workspace) is put back after it."""
    monkeypatch.setattr(devices, "_mixed_precision", devices._mixed_precision)
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)  # restored after the test
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    yield
    torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn


def small_classifier() -> BertForSequenceClassification:
    torch.manual_seed(0)
    return BertForSequenceClassification(
        BertConfig(
            vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64
        )
    )


def training_set(data: Encoded) -> LabelledBatches:
    logits = torch.randn(len(data), 2, generator=torch.Generator().manual_seed(1))
    return LabelledBatches(data, logits)


# The losses: on the device each step, on the host in batches, every step's kept.


def test_the_losses_are_the_same_whatever_log_every(tmp_path: Path) -> None:
    teacher, data = tiny_teacher(), examples()
    states = teacher_states(teacher, data, [0, 2], 8, "cpu", tmp_path, ["key"], print)

    def run(log_every: int) -> tuple[TrainResult, list[tuple[int, float]]]:
        recipe = DistillRecipe(
            steps=10,
            batch_size=4,
            learning_rate=1e-3,
            lam=0.5,
            temperature=2.0,
            hidden_weight=0.5,
            log_every=log_every,
        )
        seen: list[tuple[int, float]] = []

        def on_step(step: int, loss: float) -> None:
            seen.append((step, loss))

        hidden = HiddenMatch(states, [0, 2], teacher_arch(teacher.config).width)
        loss = SequenceClassification().loss
        result = distill(small_classifier(), training_set(data), loss, recipe, "cpu", on_step, hidden)
        assert len(result.losses) == 10 and all(len(v) == 10 for v in result.parts.values())
        assert [step for step, _ in seen] == list(range(1, 11))  # on_step at every step
        return result, seen

    runs = [run(1), run(7)]
    (every, _), (batched, seen) = runs
    assert every.losses == batched.losses and every.parts == batched.parts  # identical, step by step
    assert min(every.parts["hidden"]) > 0 and every.parts["attention"] == [0.0] * 10
    # on_step has the latest loss on the host: that step's at 1, 7 and the last, the one before between
    expected = {1: 1, 2: 1, 6: 1, 7: 7, 8: 7, 9: 7, 10: 10}
    for step, loss in seen:
        if step in expected:
            assert loss == batched.losses[expected[step] - 1]


class TurnsNonFinite:
    """A training set whose teacher logits become nan from its ``bad``-th batch on."""

    def __init__(self, data: Encoded, bad: int):
        self.inner, self.bad, self.calls = training_set(data), bad, 0

    def __len__(self) -> int:
        return len(self.inner)

    def batch(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        self.calls += 1
        batch = self.inner.batch(index)
        if self.calls >= self.bad:
            batch["teacher_logits"] = torch.full_like(batch["teacher_logits"], float("nan"))
        return batch


@pytest.mark.parametrize(("sync_steps", "reported_at"), [((), 7), ({4}, 4)])
def test_a_non_finite_loss_names_the_first_bad_step(sync_steps: Any, reported_at: int) -> None:
    recipe = DistillRecipe(steps=10, batch_size=4, learning_rate=1e-3, lam=0.5, temperature=2.0, log_every=7)
    seen: list[int] = []
    with pytest.raises(FloatingPointError, match=r"non-finite loss \(nan\) at step 3$"):
        distill(
            small_classifier(),
            TurnsNonFinite(examples(), bad=3),
            SequenceClassification().loss,
            recipe,
            "cpu",
            lambda step, _loss: seen.append(step),
            sync_steps=sync_steps,
        )
    # found at the first copy to the host after step 3 (a checkpoint's copy comes before its on_step)
    assert seen == list(range(1, reported_at))


# The teacher's states: gathered and scattered in one indexing operation, as the row loops did.


def gather_by_rows(states: TeacherStates, index: torch.Tensor, layers: list[int]) -> list[torch.Tensor]:
    """The row-by-row gather ``TeacherStates.batch`` replaced."""
    assert states.cached is not None and states.offsets is not None
    positions = [states.layers.index(layer) for layer in layers]
    lengths = states.data.lengths[index]
    out = torch.zeros(len(index), int(lengths.max()), len(layers), states.cached.shape[-1])
    for row, (example, length) in enumerate(zip(index.tolist(), lengths.tolist(), strict=True)):
        start = int(states.offsets[example])
        out[row, :length] = states.cached[start : start + length, positions].float()
    return [out[:, :, k] for k in range(len(layers))]


def ragged(seed: int, n: int = 30, layers: int = 4, width: int = 6) -> TeacherStates:
    g = torch.Generator().manual_seed(seed)
    data = examples(n, longest=17)
    data.lengths = torch.randint(1, 18, (n,), generator=g)
    offsets = torch.zeros(n + 1, dtype=torch.long)
    offsets[1:] = torch.cumsum(data.lengths, 0)
    cached = torch.randn(int(offsets[-1]), layers, width, generator=g).to(torch.float16)
    return TeacherStates(data=data, layers=[0, 1, 3, 5], cached=cached, offsets=offsets)


@pytest.mark.parametrize("seed", range(5))
def test_the_vectorised_gather_equals_the_row_by_row_one(seed: int) -> None:
    states = ragged(seed)
    g = torch.Generator().manual_seed(100 + seed)
    for layers in ([5], [3, 0], [0, 1, 3, 5]):
        index = torch.randperm(len(states.data), generator=g)[:9]
        got = states.batch(index, layers, "cpu")
        for mine, reference in zip(got, gather_by_rows(states, index, layers), strict=True):
            assert mine.dtype == torch.float32 and torch.equal(mine, reference)
        padding = torch.arange(got[0].shape[1])[None, :] >= states.data.lengths[index][:, None]
        assert not got[0][padding].any()  # zeros at the padding


def scatter_by_rows(teacher: Any, data: Encoded, layers: list[int], batch_size: int) -> torch.Tensor:
    """The row-by-row ``compute_states`` the single scatter replaced."""
    offsets = torch.zeros(len(data) + 1, dtype=torch.long)
    offsets[1:] = torch.cumsum(data.lengths, 0)
    states = torch.empty(int(offsets[-1]), len(layers), teacher.config.hidden_size, dtype=torch.float16)
    order = torch.argsort(data.lengths, descending=True)
    for start in range(0, len(data), batch_size):
        index = order[start : start + batch_size]
        batch = data.batch(index)
        with torch.no_grad():
            hidden = teacher(
                **{k: batch[k] for k in ("input_ids", "attention_mask")}, output_hidden_states=True
            )
        stacked = torch.stack([hidden.hidden_states[layer + 1] for layer in layers], dim=2).to(torch.float16)
        for row, example in enumerate(index.tolist()):
            begin, end = int(offsets[example]), int(offsets[example + 1])
            states[begin:end] = stacked[row, : end - begin]
    return states


def test_the_vectorised_scatter_equals_the_row_by_row_one() -> None:
    teacher, data = tiny_teacher(), examples(n=29)
    states, offsets = compute_states(teacher, data, [2, 0], 8, "cpu")
    assert torch.equal(states, scatter_by_rows(teacher, data, [2, 0], 8))
    assert int(offsets[-1]) == int(data.lengths.sum()) == states.shape[0]


# The teacher's place once the job is prepared.


def prepared(space_file: Path, teacher: Path, data: Path, cache: Path, *overrides: str) -> Job:
    space = load_space(space_file, list(overrides), teacher=str(teacher), dataset=str(data)).config
    inputs, problems = inspect_inputs(space)
    assert inputs is not None, problems
    return prepare_job(space, inputs, cache, lambda _message: None)


def test_the_teacher_waits_on_the_cpu_unless_a_step_runs_it(
    tiny_space: Path, tiny_teacher: Path, sst2_slice: Path, tmp_path: Path, device_settings: None
) -> None:
    job = prepared(tiny_space, tiny_teacher, sst2_slice, tmp_path, "distill.attention_weight=0.5")
    assert job.teacher_states is not None and job.teacher_states.source == "cache"
    assert {p.device.type for p in job.teacher.parameters()} == {"cpu"}
    assert teacher_home(job.teacher_states, "cuda") == "cpu"
    assert teacher_home(None, "cuda") == "cpu"
    live = TeacherStates(data=job.data.train_tokens, layers=[0], teacher=job.teacher)
    assert teacher_home(live, "cuda") == "cuda"  # a live teacher runs at every step: it stays there


# Settings: deterministic algorithms, mixed precision, how often the losses are copied.


def test_the_device_settings_parse(tiny_space: Path) -> None:
    default = load_space(tiny_space).config.train
    assert (default.deterministic, default.mixed_precision, default.log_every) == (False, True, 25)
    overrides = ["train.deterministic=true", "train.mixed_precision=false", "train.log_every=5"]
    train = load_space(tiny_space, overrides).config.train
    assert (train.deterministic, train.mixed_precision, train.log_every) == (True, False, 5)
    with pytest.raises(ConfigError, match="log_every"):
        load_space(tiny_space, ["train.log_every=0"])


def test_deterministic_mode_configures_torch(device_settings: None) -> None:
    configure_device("cpu", deterministic=True)
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    configure_device("cpu", deterministic=False)
    assert not torch.are_deterministic_algorithms_enabled()


def test_autocast_and_moves_do_nothing_on_the_cpu(device_settings: None) -> None:
    configure_device("cpu", mixed_precision=True)
    for enabled in (None, True, False):
        context = autocast("cpu", enabled)
        assert isinstance(context, contextlib.nullcontext)
        with context:
            assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    batch = {"input_ids": torch.arange(6).view(2, 3)}
    assert to_device(batch, "cpu")["input_ids"] is batch["input_ids"]


# On a GPU.


@CUDA
def test_a_training_step_on_the_gpu_runs_in_bfloat16_with_float32_losses(device_settings: None) -> None:
    if not torch.cuda.is_bf16_supported():
        pytest.skip("a float16-only GPU trains in float32")
    configure_device("cuda", mixed_precision=True)
    student: Any = small_classifier()
    data = examples()
    forward_dtypes: list[torch.dtype] = []
    loss_dtypes: list[torch.dtype] = []
    layer = student.bert.encoder.layer[0].attention.self.query
    layer.register_forward_hook(lambda _m, _i, out: forward_dtypes.append(out.dtype))
    task_loss = SequenceClassification().loss

    def loss(outputs: Any, batch: dict[str, Any], lam: float, temperature: float) -> LossParts:
        parts = task_loss(outputs, batch, lam, temperature)
        loss_dtypes.extend([outputs.logits.dtype, *(part.dtype for part in parts)])
        return parts

    recipe = DistillRecipe(steps=3, batch_size=4, learning_rate=1e-3, lam=0.5, temperature=2.0)
    result = distill(student, training_set(data), loss, recipe, "cuda")
    assert set(forward_dtypes) == {torch.bfloat16} and set(loss_dtypes) == {torch.float32}
    assert len(result.losses) == 3 and all(p.dtype == torch.float32 for p in student.parameters())
    configure_device("cuda", mixed_precision=False)
    forward_dtypes.clear()
    distill(student, training_set(data), loss, recipe, "cuda")
    assert set(forward_dtypes) == {torch.float32}


@CUDA
def test_after_preparing_on_the_gpu_the_teacher_is_on_the_cpu(
    tiny_space: Path,
    tiny_teacher: Path,
    sst2_slice: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    device_settings: None,
) -> None:
    job = prepared(tiny_space, tiny_teacher, sst2_slice, tmp_path / "a", "distill.hidden_weight=0.5")
    assert job.device == "cuda" and job.teacher_states is not None
    assert {p.device.type for p in job.teacher.parameters()} == {"cpu"}
    monkeypatch.setattr(states_module, "CACHE_LIMIT_BYTES", 0)  # hidden states computed at every step
    live = prepared(tiny_space, tiny_teacher, sst2_slice, tmp_path / "b", "distill.hidden_weight=0.5")
    assert live.teacher_states is not None and live.teacher_states.source == "live"
    assert {p.device.type for p in live.teacher.parameters()} == {"cuda"}


@CUDA
def test_batches_reach_the_gpu_through_pinned_memory() -> None:
    batch = {"input_ids": torch.arange(12).view(3, 4), "mask": torch.ones(3, 4)}
    moved = to_device(batch, "cuda")
    torch.cuda.synchronize()
    for name, tensor in moved.items():
        assert tensor.device.type == "cuda" and torch.equal(tensor.cpu(), batch[name])
