"""The teacher's hidden states: the cache holds what a live forward pass gives, and training uses them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification, BertConfig

from autodistill.distill.loop import DistillRecipe, HiddenMatch, distill
from autodistill.distill.student import (
    StudentArch,
    build_student,
    init_from_teacher,
    select_layers,
    teacher_arch,
)
from autodistill.distill.teacher_states import TeacherStates, teacher_states
from autodistill.tasks.classification.encoding import Encoded
from autodistill.tasks.classification.task import LabelledBatches, SequenceClassification


def tiny_teacher() -> torch.nn.Module:
    config = BertConfig(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=3,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=2,
    )
    torch.manual_seed(0)
    return AutoModelForSequenceClassification.from_config(config).eval()


def examples(n: int = 24, longest: int = 12) -> Encoded:
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(3, longest + 1, (n,), generator=g)
    ids = torch.randint(5, 100, (n, longest), generator=g)
    ids[torch.arange(longest)[None, :] >= lengths[:, None]] = 0
    return Encoded(input_ids=ids, lengths=lengths, labels=torch.randint(0, 2, (n,), generator=g))


def test_cached_states_equal_live_ones_on_real_tokens(tmp_path: Path) -> None:
    teacher, data = tiny_teacher(), examples()
    cached = teacher_states(teacher, data, [0, 2], 8, "cpu", tmp_path, ["key"], print)
    assert cached.source == "cache" and list(tmp_path.glob("teacher-states-*.pt"))
    live = TeacherStates(data=data, layers=[0, 2], teacher=teacher)
    index = torch.tensor([3, 0, 17, 9])
    mask = data.batch(index)["attention_mask"].bool()
    for a, b in zip(cached.batch(index, [2, 0], "cpu"), live.batch(index, [2, 0], "cpu"), strict=True):
        assert a.shape == b.shape
        torch.testing.assert_close(a[mask], b[mask], atol=2e-3, rtol=2e-3)  # float16 storage
    again = teacher_states(
        teacher, data, [0, 2], 8, "cpu", tmp_path, ["key"], print
    )  # read back, not recomputed
    assert torch.equal(again.cached, cached.cached)


def test_states_past_the_memory_limit_go_to_a_mapped_file_not_a_live_teacher(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 25: a cache larger than CACHE_LIMIT_BYTES is written into a raw file on disk and read
    memory-mapped (the same states as in memory, computed once); only a disk without room runs live."""
    import importlib
    import shutil

    module = importlib.import_module("autodistill.distill.teacher_states")  # the package exports a function

    teacher, data = tiny_teacher(), examples()
    in_memory = teacher_states(teacher, data, [0, 2], 8, "cpu", tmp_path / "memory", ["key"], print)
    monkeypatch.setattr(module, "CACHE_LIMIT_BYTES", 1)
    mapped = teacher_states(teacher, data, [0, 2], 8, "cpu", tmp_path / "disk", ["key"], print)
    assert mapped.source == "cache"
    assert sorted(p.suffix for p in (tmp_path / "disk").iterdir()) == [".f16", ".lock"]  # no temporary left
    assert torch.equal(mapped.cached, in_memory.cached) and torch.equal(mapped.offsets, in_memory.offsets)
    index = torch.tensor([3, 0, 17])
    for a, b in zip(mapped.batch(index, [2, 0], "cpu"), in_memory.batch(index, [2, 0], "cpu"), strict=True):
        assert torch.equal(a, b)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("computed again")

    monkeypatch.setattr(module, "compute_states", refuse)
    again = teacher_states(teacher, data, [0, 2], 8, "cpu", tmp_path / "disk", ["key"], print)
    assert torch.equal(again.cached, in_memory.cached)
    full = shutil.disk_usage(tmp_path)._replace(free=0)
    monkeypatch.setattr(module.shutil, "disk_usage", lambda _: full)
    live = teacher_states(teacher, data, [0, 2], 8, "cpu", tmp_path / "full", ["key"], print)
    assert live.source == "live"


def test_hidden_loss_trains_a_narrower_student(tmp_path: Path) -> None:
    teacher, data = tiny_teacher(), examples()
    t = teacher_arch(teacher.config)
    arch = StudentArch(depth=2, width=16, heads=1, ffn=32)
    layers = select_layers(t.depth, arch.depth)
    student = build_student(teacher.config, arch, 0, AutoModelForSequenceClassification)
    init_from_teacher(student, teacher.state_dict(), t, arch, layers)
    states = teacher_states(teacher, data, layers, 8, "cpu", tmp_path, ["key"], print)
    logits = torch.zeros(len(data), 2)
    recipe = DistillRecipe(
        steps=6, batch_size=8, learning_rate=1e-3, lam=0.5, temperature=2.0, hidden_weight=1.0
    )
    before = [p.detach().clone() for p in student.parameters()]
    training = LabelledBatches(data, logits)
    loss = SequenceClassification().loss
    result = distill(student, training, loss, recipe, "cpu", hidden=HiddenMatch(states, layers, t.width))
    assert set(result.parts) == {"hard", "soft", "hidden", "attention"}
    assert all(len(v) == 6 for v in result.parts.values())
    assert result.parts["hidden"][0] > 0  # the narrower student's projected states differ from the teacher's
    assert len(result.losses) == 6 and all(torch.isfinite(torch.tensor(result.losses)))
    assert any(not torch.equal(a, b) for a, b in zip(before, student.parameters(), strict=True))
