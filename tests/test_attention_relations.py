"""MiniLM's attention-relation loss: the loss itself, the teacher's last-layer queries, keys and values
recomputed from the cached input of that layer, and training with it."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import torch
from transformers import AutoModelForSequenceClassification, DistilBertConfig, GPT2Config, MPNetConfig

from autodistill.distill.loop import AttentionMatch, DistillRecipe, distill
from autodistill.distill.loss import attention_relation_loss
from autodistill.distill.student import (
    StudentArch,
    StudentBuildError,
    build_student,
    init_from_teacher,
    last_layer_projections,
    select_layers,
    teacher_arch,
)
from autodistill.distill.teacher_states import TeacherStates, teacher_states
from autodistill.tasks.classification.task import LabelledBatches, SequenceClassification
from tests.test_teacher_states import examples, tiny_teacher


def qkv(batch: int, tokens: int, width: int, seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, tokens, width, generator=g) for _ in range(3)]


def test_relation_loss_is_zero_for_equal_relations_and_positive_otherwise() -> None:
    mask = torch.ones(2, 5, dtype=torch.long)
    same = qkv(2, 5, 16, 0)
    assert attention_relation_loss(same, same, mask, heads=4).item() == pytest.approx(0.0, abs=1e-6)
    assert attention_relation_loss(qkv(2, 5, 8, 1), same, mask, heads=4).item() > 0  # narrower student


def test_relation_loss_ignores_padding() -> None:
    student, teacher = qkv(1, 4, 8, 1), qkv(1, 4, 16, 2)
    unpadded = attention_relation_loss(student, teacher, torch.ones(1, 4, dtype=torch.long), heads=2)
    pad = [torch.cat([x, 100 * torch.randn(1, 3, x.shape[-1])], dim=1) for x in (*student, *teacher)]
    mask = torch.tensor([[1, 1, 1, 1, 0, 0, 0]])
    padded = attention_relation_loss(pad[:3], pad[3:], mask, heads=2)
    torch.testing.assert_close(padded, unpadded)


def test_relation_loss_needs_widths_divisible_by_the_heads() -> None:
    with pytest.raises(ValueError, match="not a multiple of 3 relation heads"):
        attention_relation_loss(qkv(1, 4, 8, 0), qkv(1, 4, 9, 0), torch.ones(1, 4), heads=3)


def test_last_layer_projections_by_family() -> None:
    bert = tiny_teacher()
    q, k, v = last_layer_projections(bert)
    assert k is bert.bert.encoder.layer[2].attention.self.key
    assert (
        q is bert.bert.encoder.layer[2].attention.self.query
        and v is bert.bert.encoder.layer[2].attention.self.value
    )
    distil = AutoModelForSequenceClassification.from_config(
        DistilBertConfig(vocab_size=50, dim=16, n_layers=2, n_heads=2, hidden_dim=32)
    )
    assert last_layer_projections(distil)[1] is distil.distilbert.transformer.layer[1].attention.k_lin
    mpnet = AutoModelForSequenceClassification.from_config(
        MPNetConfig(
            vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32
        )
    )
    assert last_layer_projections(mpnet)[2] is mpnet.mpnet.encoder.layer[1].attention.attn.v
    with pytest.raises(StudentBuildError, match="attention_weight: 0"):
        # GPT-2 fuses its projections into one c_attn: not supported, said in one line
        last_layer_projections(
            AutoModelForSequenceClassification.from_config(
                GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50)
            )
        )


def test_cached_layer_input_gives_the_teachers_own_queries_keys_and_values(tmp_path: Path) -> None:
    """The recompute from the cached input of the last layer equals what the teacher's forward computes."""
    teacher, data = tiny_teacher(), examples()
    depth = teacher_arch(teacher.config).depth
    states = teacher_states(teacher, data, [depth - 2], 8, "cpu", tmp_path, ["key"], print)
    match = AttentionMatch(states, depth - 2, last_layer_projections(teacher), heads=4)
    index = torch.tensor([5, 1, 11])
    batch = data.batch(index)
    seen: list[torch.Tensor] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: seen.append(out)) for m in match.projections]
    with torch.no_grad():
        teacher(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    for hook in hooks:
        hook.remove()
    real = batch["attention_mask"].bool()
    for recomputed, own in zip(match.teacher_qkv(index, "cpu"), seen, strict=True):
        torch.testing.assert_close(recomputed[real], own[real], atol=5e-3, rtol=5e-3)  # float16 cache
    live = AttentionMatch(TeacherStates(data, [depth - 2], teacher=teacher), depth - 2, match.projections, 4)
    for recomputed, own in zip(live.teacher_qkv(index, "cpu"), seen, strict=True):
        torch.testing.assert_close(recomputed[real], own[real])


def test_training_with_the_relation_loss(tmp_path: Path) -> None:
    teacher, data = tiny_teacher(), examples()
    t = teacher_arch(teacher.config)
    states = teacher_states(teacher, data, [t.depth - 2], 8, "cpu", tmp_path, ["key"], print)
    match = AttentionMatch(states, t.depth - 2, last_layer_projections(teacher), heads=4)
    training, loss = LabelledBatches(data, torch.zeros(len(data), 2)), SequenceClassification().loss
    recipe = DistillRecipe(
        steps=5, batch_size=8, learning_rate=1e-3, lam=0.5, temperature=2.0, attention_weight=1.0
    )

    # a student that is the teacher's whole copy has the teacher's relations: the loss starts at ~0
    no_dropout = {**teacher.config.to_dict(), "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
    copy = build_student(type(teacher.config).from_dict(no_dropout), t, 0, AutoModelForSequenceClassification)
    init_from_teacher(copy, teacher.state_dict(), t, t, list(range(t.depth)))
    copied = distill(copy, training, loss, recipe, "cpu", attention=match).parts["attention"][0]
    assert copied < 1e-6

    narrow = StudentArch(depth=1, width=16, heads=1, ffn=32)
    student = build_student(teacher.config, narrow, 0, AutoModelForSequenceClassification)
    init_from_teacher(student, teacher.state_dict(), t, narrow, select_layers(t.depth, 1))
    result = distill(student, training, loss, recipe, "cpu", attention=match)
    assert result.parts["attention"][0] > 100 * copied and len(result.parts["attention"]) == 5
    assert all(torch.isfinite(torch.tensor(result.losses)))
    assert not any(module._forward_hooks for module in last_layer_projections(student))  # hooks removed

    def stop_early(step: int, loss: float) -> None:
        raise optuna.TrialPruned("stopped early")

    with pytest.raises(optuna.TrialPruned):  # an early stop leaves no hook either
        distill(student, training, loss, recipe, "cpu", attention=match, on_step=stop_early)
    assert not any(module._forward_hooks for module in last_layer_projections(student))


def test_relation_loss_needs_the_teacher() -> None:
    teacher, data = tiny_teacher(), examples()
    recipe = DistillRecipe(
        steps=1, batch_size=4, learning_rate=1e-3, lam=0.5, temperature=2.0, attention_weight=0.5
    )
    with pytest.raises(ValueError, match="AttentionMatch"):
        distill(
            teacher,
            LabelledBatches(data, torch.zeros(len(data), 2)),
            SequenceClassification().loss,
            recipe,
            "cpu",
        )
