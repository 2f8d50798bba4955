"""The Hinton loss, by its properties (seeded, hypothesis-generated logits)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from autodistill.distill.loss import distillation_loss, hidden_state_loss


def logits_pair(
    seed: int, batch: int = 4, classes: int = 3
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(batch, classes, generator=g) * 3,
        torch.randn(batch, classes, generator=g) * 3,
        torch.randint(0, classes, (batch,), generator=g),
    )


seeds = st.integers(0, 10_000)
temperatures = st.floats(0.5, 10.0)


@settings(max_examples=30, deadline=None)
@given(seeds, temperatures)
def test_lambda_zero_is_plain_cross_entropy(seed: int, t: float) -> None:
    s, te, y = logits_pair(seed)
    parts = distillation_loss(s, te, y, lam=0.0, temperature=t)
    assert torch.allclose(parts.total, F.cross_entropy(s, y))


@settings(max_examples=30, deadline=None)
@given(seeds, temperatures)
def test_lambda_one_is_the_soft_term_only(seed: int, t: float) -> None:
    s, te, y = logits_pair(seed)
    parts = distillation_loss(s, te, y, lam=1.0, temperature=t)
    assert torch.allclose(parts.total, parts.soft)


@settings(max_examples=30, deadline=None)
@given(seeds, temperatures, st.floats(0.0, 1.0))
def test_identical_logits_have_zero_soft_loss(seed: int, t: float, lam: float) -> None:
    s, _, y = logits_pair(seed)
    parts = distillation_loss(s, s.clone(), y, lam=lam, temperature=t)
    assert parts.soft.abs().item() < 1e-5
    assert torch.allclose(parts.total, (1 - lam) * parts.hard, atol=1e-5)


@settings(max_examples=30, deadline=None)
@given(seeds, temperatures)
def test_soft_term_is_t_squared_times_kl(seed: int, t: float) -> None:
    s, te, y = logits_pair(seed)
    kl = F.kl_div(F.log_softmax(s / t, -1), F.softmax(te / t, -1), reduction="batchmean")
    assert torch.allclose(distillation_loss(s, te, y, 0.5, t).soft, t**2 * kl, rtol=1e-5, atol=1e-6)


def test_soft_loss_changes_with_temperature() -> None:
    s, te, y = logits_pair(1)
    assert not torch.isclose(
        distillation_loss(s, te, y, 1.0, 1.0).soft, distillation_loss(s, te, y, 1.0, 4.0).soft
    )


def test_soft_loss_is_non_negative_and_does_not_train_the_teacher() -> None:
    s, te, y = logits_pair(2)
    s.requires_grad_(True)
    te.requires_grad_(True)
    parts = distillation_loss(s, te, y, 0.7, 3.0)
    parts.total.backward()
    assert parts.soft.item() >= 0
    assert s.grad is not None and te.grad is None


def test_matches_a_hand_computation() -> None:
    student = torch.tensor([[2.0, 0.0]])
    teacher = torch.tensor([[0.0, 2.0]])
    labels = torch.tensor([0])
    lam, t = 0.25, 2.0
    # CE: -log softmax(student)[0] = log(1 + e^-2)
    hard = math.log(1 + math.exp(-2))
    # at T=2: student probs softmax([1, 0]), teacher probs softmax([0, 1])
    ps = [math.exp(1) / (math.exp(1) + 1), 1 / (math.exp(1) + 1)]
    pt = [ps[1], ps[0]]
    kl = sum(p * math.log(p / q) for p, q in zip(pt, ps, strict=True))
    expected = (1 - lam) * hard + lam * t**2 * kl
    parts = distillation_loss(student, teacher, labels, lam, t)
    assert parts.hard.item() == pytest.approx(hard, rel=1e-6)
    assert parts.soft.item() == pytest.approx(t**2 * kl, rel=1e-6)
    assert parts.total.item() == pytest.approx(expected, rel=1e-6)


def test_hidden_loss_is_zero_for_identical_states_and_ignores_padding() -> None:
    g = torch.Generator().manual_seed(0)
    states = [torch.randn(2, 5, 8, generator=g) for _ in range(3)]
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    for kind in ("cosine", "mse"):
        assert hidden_state_loss(states, states, mask, kind).item() == pytest.approx(0.0, abs=1e-6)
    scaled = [2.0 * s for s in states]  # cosine only sees directions; MSE sees magnitudes
    assert hidden_state_loss(scaled, states, mask, "cosine").item() == pytest.approx(0.0, abs=1e-6)
    assert hidden_state_loss(scaled, states, mask, "mse").item() > 0.1
    garbage = [s.clone() for s in states]
    for s in garbage:
        s[1, 3:] = 1e6  # padding positions: must not count
    assert hidden_state_loss(garbage, states, mask, "mse").item() == pytest.approx(0.0, abs=1e-6)


def test_hidden_loss_projects_narrow_students_and_trains_the_projection() -> None:
    g = torch.Generator().manual_seed(1)
    student = [torch.randn(2, 4, 16, generator=g, requires_grad=True)]
    teacher = [torch.randn(2, 4, 32, generator=g)]
    projection = torch.nn.Linear(16, 32, bias=False)
    assert projection.weight.shape == (32, 16)
    loss = hidden_state_loss(student, teacher, torch.ones(2, 4), "cosine", projection)
    loss.backward()
    assert 0.0 < loss.item() <= 2.0
    assert projection.weight.grad is not None and student[0].grad is not None
    with pytest.raises(ValueError, match="2 student layers matched to 1"):
        hidden_state_loss(student * 2, teacher, torch.ones(2, 4))
