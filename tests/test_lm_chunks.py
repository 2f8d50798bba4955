"""The causal-LM output layer applied in chunks of positions (``tasks.causal_lm.heads``): the top-k targets,
the distillation loss (values and gradients) and perplexity match the unchunked paths on small models."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from autodistill.distill.loop import DistillRecipe, distill, plain_forward
from autodistill.distill.loss import topk_distillation_loss
from autodistill.tasks.causal_lm.data import Blocks
from autodistill.tasks.causal_lm.evaluation import perplexity
from autodistill.tasks.causal_lm.heads import HeadlessOutputs, chunk_positions, headless, splits_cleanly
from autodistill.tasks.causal_lm.task import CausalLM
from autodistill.tasks.causal_lm.topk import TopkBatches, compute_topk, topk_from_logits
from tests.test_lm_data import tiny_lm

VOCAB = 97


def blocks(n: int = 6, length: int = 12, seed: int = 0) -> Blocks:
    g = torch.Generator().manual_seed(seed)
    return Blocks(torch.randint(0, VOCAB, (n, length), generator=g))


def test_chunk_positions_follow_the_vocabulary_unless_chosen() -> None:
    assert chunk_positions(128_256) == 261  # 128 MiB of float32 logits at Llama 3's vocabulary
    assert chunk_positions(49_152) == 682
    assert chunk_positions(128_256, 7) == 7
    assert chunk_positions(10**12) == 1


def test_llama_and_gpt2_split_cleanly_and_a_capped_head_does_not() -> None:
    from transformers import GPT2Config, GPT2LMHeadModel

    llama = tiny_lm(VOCAB)
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=64))
    gpt2.train()  # dropout on: the probe runs in eval mode and gives the training mode back
    assert splits_cleanly(llama) and splits_cleanly(gpt2) and gpt2.training
    capped = tiny_lm(VOCAB)
    capped.lm_head.forward = lambda h: 30 * torch.tanh(h @ capped.lm_head.weight.T / 30)  # type: ignore[method-assign]
    original = type(capped).forward

    def forward(self: Any, *args: Any, **kwargs: Any) -> Any:  # Gemma 2's softcap, in the full forward only
        out = original(self, *args, **kwargs)
        out.logits = 30 * torch.tanh(out.logits / 30) * 0.5
        return out

    capped.forward = forward.__get__(capped)  # type: ignore[method-assign]
    assert not splits_cleanly(capped)
    ids = blocks().input_ids
    assert not isinstance(headless(capped, ids, torch.ones_like(ids)), HeadlessOutputs)  # full outputs


@pytest.mark.parametrize("chunk", [1, 5, 64, None])
def test_chunked_topk_targets_match_the_whole_logits(chunk: int | None) -> None:
    teacher = tiny_lm(VOCAB, seed=1)
    data = blocks()
    targets = compute_topk(teacher, data, k=8, batch_size=4, device="cpu", chunk_tokens=chunk)
    with torch.no_grad():
        logits = teacher(input_ids=data.input_ids).logits
    indices, values, rest, entropy = topk_from_logits(logits, 8)
    assert torch.equal(targets.indices, indices)
    torch.testing.assert_close(targets.values, values.to(torch.float16))
    torch.testing.assert_close(targets.rest, rest, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(targets.tail_entropy, entropy, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("chunk", [1, 7, 40, None])
def test_chunked_loss_matches_the_whole_logits_in_value_and_gradient(chunk: int | None) -> None:
    g = torch.Generator().manual_seed(3)
    batch, tokens, width, k = 3, 9, 16, 6
    hidden = torch.randn(batch, tokens, width, generator=g, requires_grad=True)
    head = torch.nn.Linear(width, VOCAB, bias=False)
    teacher = torch.randn(batch, tokens, VOCAB, generator=g) * 3
    indices, values, rest, entropy = topk_from_logits(teacher, k)
    labels = torch.randint(0, VOCAB, (batch, tokens), generator=g)
    mask = torch.ones(batch, tokens, dtype=torch.long)
    mask[1, 5:] = 0  # a padded row: its positions do not count
    args = (indices, values.half(), rest, labels, mask, 0.6, 1.7, entropy)

    whole = topk_distillation_loss(head(hidden), *args[:7], args[7])
    whole.total.backward()
    expected_grads = hidden.grad.clone(), head.weight.grad.clone()  # type: ignore[union-attr]
    hidden.grad, head.weight.grad = None, None

    chunked = topk_distillation_loss(hidden, *args[:7], args[7], head=lambda r: head(r).float(), chunk=chunk)
    chunked.total.backward()
    for mine, theirs in zip(chunked, whole, strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(hidden.grad, expected_grads[0], rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(head.weight.grad, expected_grads[1], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("chunk", [1, 13, None])
def test_chunked_perplexity_matches_transformers_own_loss(chunk: int | None) -> None:
    model = tiny_lm(VOCAB, seed=2)
    data = blocks(n=5, length=10)
    ppl = perplexity(model, data, batch_size=2, device="cpu", chunk_tokens=chunk)
    with torch.no_grad():  # every block has the same length: the mean of the per-block losses
        loss = model(input_ids=data.input_ids, labels=data.input_ids).loss
    assert ppl == pytest.approx(float(loss.exp()), rel=1e-5)


def test_a_trial_trains_the_same_through_the_chunked_head() -> None:
    """The causal-LM task's forward leaves the output layer to its loss, chunked: three steps of training
    follow the plain forward pass's losses and end at the same weights."""
    teacher = tiny_lm(VOCAB, seed=1)
    data = blocks(n=8)
    train = TopkBatches(data, compute_topk(teacher, data, k=8, batch_size=4, device="cpu"))
    recipe = DistillRecipe(steps=3, batch_size=4, learning_rate=1e-3, lam=0.5, temperature=1.5, log_every=1)
    results, students = [], []
    for task, forward in ((CausalLM(chunk_tokens=5), None), (CausalLM(), plain_forward)):
        student = tiny_lm(VOCAB, seed=4)
        kwargs = {"forward": forward or task.forward}
        results.append(distill(student, train, task.loss, recipe, "cpu", **kwargs))
        students.append(student)
    assert results[0].losses == pytest.approx(results[1].losses, rel=1e-5)
    for mine, theirs in zip(students[0].parameters(), students[1].parameters(), strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-6)


def test_a_bf16_checkpoint_runs_in_bf16_only_where_half_precision_runs(tmp_path: Any) -> None:
    """Issue 25, teacher precision: a bfloat16 checkpoint on a GPU with bfloat16 runs its inference in
    bfloat16; float32 everywhere else (the CPU, a float32 checkpoint, train.mixed_precision off)."""
    from autodistill.tasks.teachers import inference_dtype
    from autodistill.util.devices import half_precision_on

    tiny_lm(VOCAB).to(torch.bfloat16).save_pretrained(tmp_path / "bf16")
    tiny_lm(VOCAB).save_pretrained(tmp_path / "fp32")
    assert inference_dtype(str(tmp_path / "bf16"), False, half_precision=True) == "bfloat16"
    assert inference_dtype(str(tmp_path / "bf16"), False, half_precision=False) == "float32"
    assert inference_dtype(str(tmp_path / "fp32"), False, half_precision=True) == "float32"
    assert not half_precision_on("cpu")


def test_a_bf16_teacher_gives_top_k_targets_in_the_cache_dtypes() -> None:
    """The chunked head runs in the teacher's dtype and the targets come out float16/float32 as before,
    close to the float32 teacher's."""
    data = blocks()
    exact = compute_topk(tiny_lm(VOCAB, seed=1), data, k=8, batch_size=4, device="cpu", chunk_tokens=7)
    half = compute_topk(
        tiny_lm(VOCAB, seed=1).to(torch.bfloat16), data, k=8, batch_size=4, device="cpu", chunk_tokens=7
    )
    assert half.values.dtype == torch.float16 and half.rest.dtype == torch.float32
    assert (half.indices[..., 0] == exact.indices[..., 0]).float().mean() > 0.9  # bfloat16 may swap near ties
    torch.testing.assert_close(half.values[..., 0], exact.values[..., 0], rtol=0.05, atol=0.05)
