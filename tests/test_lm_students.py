"""Students of causal language models: Llama-family (grouped-query attention, rotary embeddings, tied
or untied embeddings) and GPT-2 (fused Conv1D attention) teachers, shrunk and started from the teacher."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig, MistralConfig

from autodistill.distill.student import (
    StudentArch,
    StudentBuildError,
    build_student,
    check_teacher_init,
    evenly_spaced,
    init_from_teacher,
    kv_heads_for,
    select_layers,
    student_config,
    teacher_arch,
)
from tests.test_teacher_init import strongest

TINY = {"vocab_size": 128, "max_position_embeddings": 64}
CONFIGS = {
    # 4 query heads sharing 2 key/value heads, tied embeddings.
    "llama": LlamaConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        tie_word_embeddings=True,
        **TINY,
    ),
    # One key/value head, untied embeddings, sliding window, and an explicit head_dim (16) that is not
    # hidden_size / heads (8).
    "mistral": MistralConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=1,
        head_dim=16,
        sliding_window=4,
        tie_word_embeddings=False,
        **TINY,
    ),
    "gpt2": GPT2Config(
        vocab_size=128, n_embd=32, n_layer=4, n_head=4, n_positions=64, bos_token_id=0, eos_token_id=0
    ),
}
IDS = torch.tensor([[5, 17, 9, 33, 2, 8, 100, 64], [7, 7, 60, 3, 1, 9, 9, 127]])


def make_teacher(config) -> torch.nn.Module:
    torch.manual_seed(123)
    return AutoModelForCausalLM.from_config(config).eval()


def from_teacher(teacher, arch: StudentArch, layers: list[int], state=None) -> torch.nn.Module:
    student = build_student(teacher.config, arch, 0, AutoModelForCausalLM).eval()
    state = teacher.state_dict() if state is None else state
    init_from_teacher(student, state, teacher_arch(teacher.config), arch, layers)
    return student


def logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=IDS, use_cache=False).logits


def tied(model) -> bool:
    return model.get_output_embeddings().weight is model.get_input_embeddings().weight


def test_teacher_shapes_per_family() -> None:
    assert teacher_arch(CONFIGS["llama"]) == StudentArch(4, 32, 4, 64, kv_heads=2)
    assert teacher_arch(CONFIGS["mistral"]) == StudentArch(4, 32, 4, 64, kv_heads=1)
    # GPT-2's n_inner=None means 4 × n_embd; it has no separate key/value heads.
    assert teacher_arch(CONFIGS["gpt2"]) == StudentArch(4, 32, 4, 128)
    assert StudentArch(1, 32, 4, 64).effective_kv_heads == 4  # positional construction still works


def test_kv_heads_keep_the_teachers_grouping_when_they_can() -> None:
    teacher = StudentArch(8, 64, 8, 256, kv_heads=2)  # 4 query heads per key/value head
    assert kv_heads_for(teacher, 8) == 2 and kv_heads_for(teacher, 4) == 1
    assert kv_heads_for(teacher, 6) == 2  # 6 % 4 ≠ 0: largest divisor of 6 not above 2
    assert kv_heads_for(teacher, 3) == 1
    assert kv_heads_for(StudentArch(8, 64, 8, 256, kv_heads=8), 5) == 5  # multi-head attention stays so
    assert kv_heads_for(StudentArch(4, 32, 4, 128), 2) is None  # GPT-2, encoders: not applicable
    # A student with more queries per key/value head than the teacher cannot select from it.
    small = StudentArch(4, 32, 4, 64, kv_heads=2)  # 2 per key/value head
    assert kv_heads_for(small, 3) == 1
    with pytest.raises(StudentBuildError, match="3 query heads per key/value head exceed the teacher's 2"):
        check_teacher_init(small, StudentArch(2, 24, 3, 64, kv_heads=1), "weight-select")
    with pytest.raises(StudentBuildError, match="key/value heads 4 > 2"):
        check_teacher_init(small, StudentArch(2, 32, 4, 64), "weight-select")  # kv None = 4
    with pytest.raises(StudentBuildError, match="2 key/value heads and feed-forward 64; use weight-select"):
        check_teacher_init(small, StudentArch(2, 32, 4, 64), "teacher-layers")
    check_teacher_init(small, StudentArch(2, 32, 4, 64, kv_heads=2), "teacher-layers")


@pytest.mark.parametrize("family", CONFIGS, ids=list(CONFIGS))
def test_narrow_student_config_and_random_build(family: str) -> None:
    teacher = CONFIGS[family]
    t = teacher_arch(teacher)
    arch = StudentArch(2, 16, 2, 48, kv_heads_for(t, 2))
    model = build_student(teacher, arch, 0, AutoModelForCausalLM)
    assert teacher_arch(model.config) == arch
    assert model.config.tie_word_embeddings == teacher.tie_word_embeddings == tied(model)
    assert logits(model).shape == (*IDS.shape, 128)
    if family == "gpt2":
        assert model.config.n_inner == 48  # explicit, not None
    else:
        assert model.config.head_dim == 8 and model.config.num_key_value_heads == arch.kv_heads
        assert model.model.layers[0].self_attn.k_proj.weight.shape == (arch.kv_heads * 8, 16)
    assert teacher_arch(teacher) == t  # the teacher's config is not changed


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_half_precision_teacher_gives_a_float32_student(family: str, dtype: str) -> None:
    teacher = copy.deepcopy(CONFIGS[family])
    teacher.dtype = dtype
    arch = StudentArch(1, 16, 2, 32, kv_heads_for(teacher_arch(teacher), 2))
    model = build_student(teacher, arch, 0, AutoModelForCausalLM)
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert student_config(teacher, arch).to_dict()["dtype"] == "float32"  # also as exported
    assert str(teacher.dtype).endswith(dtype)  # the teacher's config is not changed


def test_students_with_impossible_grouping_are_refused() -> None:
    with pytest.raises(StudentBuildError, match="share 3 key/value heads"):
        build_student(CONFIGS["llama"], StudentArch(1, 32, 4, 64, kv_heads=3), 0, AutoModelForCausalLM)
    with pytest.raises(StudentBuildError, match="no key/value heads"):
        build_student(CONFIGS["gpt2"], StudentArch(1, 32, 4, 64, kv_heads=2), 0, AutoModelForCausalLM)
    with pytest.raises(StudentBuildError, match="even head size"):
        build_student(CONFIGS["llama"], StudentArch(1, 12, 4, 64, kv_heads=2), 0, AutoModelForCausalLM)


@pytest.mark.parametrize("family", CONFIGS, ids=list(CONFIGS))
def test_weight_select_at_full_size_is_the_teacher(family: str) -> None:
    teacher = make_teacher(CONFIGS[family])
    arch = teacher_arch(teacher.config)
    student = from_teacher(teacher, arch, select_layers(arch.depth, arch.depth))
    for name, value in teacher.state_dict().items():
        assert torch.equal(student.state_dict()[name], value), name
    assert torch.equal(logits(student), logits(teacher))
    assert tied(student) == tied(teacher) == CONFIGS[family].tie_word_embeddings


@pytest.mark.parametrize("family", CONFIGS, ids=list(CONFIGS))
def test_teacher_layers_student_is_the_teacher_with_layers_left_out(family: str) -> None:
    teacher = make_teacher(CONFIGS[family])
    t = teacher_arch(teacher.config)
    arch = StudentArch(2, t.width, t.heads, t.ffn, t.kv_heads)
    layers = select_layers(t.depth, 2)
    assert layers == [1, 3]
    check_teacher_init(t, arch, "teacher-layers")
    student = from_teacher(teacher, arch, layers)
    blocks = (lambda m: m.transformer.h) if family == "gpt2" else (lambda m: m.model.layers)
    for i, source in enumerate(layers):
        for (name, s), (_, p) in zip(
            blocks(student)[i].state_dict().items(), blocks(teacher)[source].state_dict().items(), strict=True
        ):
            assert torch.equal(s, p), name
    # Everything outside the layers (embeddings, final norm, head) is the teacher's.
    s_state, t_state = student.state_dict(), teacher.state_dict()
    outside = [n for n in s_state if ".h." not in n and ".layers." not in n]
    assert outside and all(torch.equal(s_state[n], t_state[n]) for n in outside)
    # The same function as the teacher with its other layers removed.
    truncated = copy.deepcopy(teacher)
    kept = torch.nn.ModuleList([blocks(truncated)[i] for i in layers])
    if family == "gpt2":
        truncated.transformer.h = kept
        truncated.config.n_layer = 2
    else:
        truncated.model.layers = kept
        truncated.config.num_hidden_layers = 2
    torch.testing.assert_close(logits(student), logits(truncated), rtol=0, atol=0)
    assert tied(student) == CONFIGS[family].tie_word_embeddings


def test_llama_weight_select_takes_consistent_units() -> None:
    teacher = make_teacher(CONFIGS["llama"])  # width 32, 4 heads of 8 in 2 groups, feed-forward 64
    arch = StudentArch(2, 16, 4, 32, kv_heads=2)  # 4 heads of 4 in 2 groups
    student = from_teacher(teacher, arch, [1, 3])
    hidden = evenly_spaced(32, 16)
    t, s = teacher.state_dict(), student.state_dict()
    mlp = "model.layers.{}.mlp.{}_proj.weight"
    ffn1, ffn3 = (
        strongest(
            32,
            *(t[mlp.format(i, m)].norm(dim=1) for m in ("gate", "up")),
            t[mlp.format(i, "down")].norm(dim=0),
        )
        for i in (1, 3)
    )
    within = torch.tensor([0, 2, 4, 6])  # rotary pairs (0, 4) and (2, 6): the student's frequencies
    query = (torch.arange(4)[:, None] * 8 + within).flatten()
    key_value = (torch.arange(2)[:, None] * 8 + within).flatten()
    t, s = teacher.state_dict(), student.state_dict()
    layer = "model.layers.{}.self_attn.{}.weight"
    assert torch.equal(s[layer.format(0, "q_proj")], t[layer.format(1, "q_proj")][query][:, hidden])
    assert torch.equal(s[layer.format(1, "k_proj")], t[layer.format(3, "k_proj")][key_value][:, hidden])
    assert torch.equal(s[layer.format(1, "v_proj")], t[layer.format(3, "v_proj")][key_value][:, hidden])
    assert torch.equal(s[layer.format(0, "o_proj")], t[layer.format(1, "o_proj")][hidden][:, query])
    assert torch.equal(
        s["model.layers.0.mlp.gate_proj.weight"], t["model.layers.1.mlp.gate_proj.weight"][ffn1][:, hidden]
    )
    assert torch.equal(
        s["model.layers.1.mlp.down_proj.weight"], t["model.layers.3.mlp.down_proj.weight"][hidden][:, ffn3]
    )
    assert torch.equal(
        s["model.layers.1.input_layernorm.weight"], t["model.layers.3.input_layernorm.weight"][hidden]
    )
    assert torch.equal(s["model.norm.weight"], t["model.norm.weight"][hidden])
    assert torch.equal(s["model.embed_tokens.weight"], t["model.embed_tokens.weight"][:, hidden])
    assert torch.equal(s["lm_head.weight"], t["lm_head.weight"][:, hidden])
    assert tied(student)
    assert torch.isfinite(logits(student)).all()


def test_grouped_query_selection_keeps_each_query_with_its_key_value_head() -> None:
    """Functional check of the grouping and the rotary pairs: the student's attention equals the
    teacher's attention restricted to the selected hidden units, heads and dimensions."""
    config = LlamaConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=8,
        num_key_value_heads=4,
        **TINY,
    )
    teacher = make_teacher(config)  # 8 heads of 8, 2 per key/value head
    arch = StudentArch(1, 16, 4, 32, kv_heads=kv_heads_for(teacher_arch(config), 4))  # 4 heads of 4
    assert arch.kv_heads == 2
    student = from_teacher(teacher, arch, [1])
    hidden = evenly_spaced(64, 16)
    kv = torch.tensor([0, 3])  # evenly spaced key/value heads, then both query heads of each group
    heads = torch.tensor([0, 1, 6, 7])
    within = torch.tensor([0, 2, 4, 6])
    query = (heads[:, None] * 8 + within).flatten()
    key_value = (kv[:, None] * 8 + within).flatten()
    # The teacher's attention with everything not selected zeroed, and the query scaled so that its
    # 1/√8 scaling becomes the student's 1/√4.
    attention = copy.deepcopy(teacher.model.layers[1].self_attn)
    with torch.no_grad():
        for proj, keep, scale in (
            (attention.q_proj, query, math.sqrt(2)),
            (attention.k_proj, key_value, 1.0),
            (attention.v_proj, key_value, 1.0),
        ):
            mask = torch.zeros(proj.weight.shape[0], 1)
            mask[keep] = scale
            proj.weight.mul_(mask)
        attention.o_proj.weight[:, [i for i in range(64) if i not in set(query.tolist())]] = 0
    x = torch.randn(2, 6, 16)
    wide = torch.zeros(2, 6, 64)
    wide[..., hidden] = x
    positions = torch.arange(6)[None, :].expand(2, -1)
    with torch.no_grad():
        expected = attention(wide, teacher.model.rotary_emb(wide, positions), None)[0][..., hidden]
        got = student.model.layers[0].self_attn(x, student.model.rotary_emb(x, positions), None)[0]
    torch.testing.assert_close(got, expected)


def test_gpt2_weight_select_takes_consistent_units() -> None:
    teacher = make_teacher(CONFIGS["gpt2"])  # width 32, 4 heads of 8, feed-forward 128
    arch = StudentArch(2, 16, 2, 64)  # 2 heads of 8
    student = from_teacher(teacher, arch, [1, 3])
    hidden = evenly_spaced(32, 16)
    t, s = teacher.state_dict(), student.state_dict()
    fc, proj = "transformer.h.3.mlp.c_fc.weight", "transformer.h.3.mlp.c_proj.weight"
    ffn = strongest(64, t[fc].norm(dim=0), t[proj].norm(dim=1))
    heads = (torch.tensor([0, 3])[:, None] * 8 + torch.arange(8)).flatten()
    fused = torch.cat([heads, heads + 32, heads + 64])  # query | key | value columns
    t, s = teacher.state_dict(), student.state_dict()
    block = "transformer.h.{}.{}"
    assert torch.equal(
        s[block.format(0, "attn.c_attn.weight")], t[block.format(1, "attn.c_attn.weight")][hidden][:, fused]
    )
    assert torch.equal(s[block.format(0, "attn.c_attn.bias")], t[block.format(1, "attn.c_attn.bias")][fused])
    assert torch.equal(
        s[block.format(1, "attn.c_proj.weight")], t[block.format(3, "attn.c_proj.weight")][heads][:, hidden]
    )
    assert torch.equal(
        s[block.format(1, "mlp.c_fc.weight")], t[block.format(3, "mlp.c_fc.weight")][hidden][:, ffn]
    )
    assert torch.equal(s[block.format(1, "mlp.c_fc.bias")], t[block.format(3, "mlp.c_fc.bias")][ffn])
    assert torch.equal(
        s[block.format(1, "mlp.c_proj.weight")], t[block.format(3, "mlp.c_proj.weight")][ffn][:, hidden]
    )
    assert torch.equal(s[block.format(0, "ln_1.bias")], t[block.format(1, "ln_1.bias")][hidden])
    for name in ("transformer.wte.weight", "transformer.wpe.weight", "lm_head.weight"):
        assert torch.equal(s[name], t[name][:, hidden]), name
    assert torch.equal(s["transformer.ln_f.weight"], t["transformer.ln_f.weight"][hidden])
    assert tied(student)
    assert torch.isfinite(logits(student)).all()


def test_gpt2_fused_attention_selection_is_the_teachers_attention() -> None:
    """Functional check of the fused query | key | value layout with narrower heads."""
    teacher = make_teacher(CONFIGS["gpt2"])  # 4 heads of 8
    arch = StudentArch(1, 16, 4, 64)  # 4 heads of 4
    student = from_teacher(teacher, arch, [2])
    hidden = evenly_spaced(32, 16)
    heads = (torch.arange(4)[:, None] * 8 + evenly_spaced(8, 4)).flatten()
    attention = copy.deepcopy(teacher.transformer.h[2].attn)
    with torch.no_grad():
        mask = torch.zeros(96)
        mask[heads], mask[heads + 32], mask[heads + 64] = math.sqrt(2), 1.0, 1.0  # 1/√8 becomes 1/√4
        attention.c_attn.weight.mul_(mask)
        attention.c_attn.bias.mul_(mask)
    x = torch.randn(2, 6, 16)
    wide = torch.zeros(2, 6, 32)
    wide[..., hidden] = x
    with torch.no_grad():
        expected = attention(wide)[0][..., hidden]
        got = student.transformer.h[0].attn(x)[0]
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_tied_head_missing_from_the_teachers_weights_follows_the_embeddings(family: str) -> None:
    """A tied checkpoint may store the embeddings only; the student's head is then the same selection."""
    teacher = make_teacher(CONFIGS[family])
    state = {k: v for k, v in teacher.state_dict().items() if k != "lm_head.weight"}
    arch = StudentArch(2, 16, 2, 32, kv_heads_for(teacher_arch(teacher.config), 2))
    student = from_teacher(teacher, arch, [1, 3], state)
    assert tied(student)
    embeddings = "transformer.wte.weight" if family == "gpt2" else "model.embed_tokens.weight"
    assert torch.equal(student.lm_head.weight, teacher.state_dict()[embeddings][:, evenly_spaced(32, 16)])


def test_mistral_narrow_student_with_an_explicit_head_dim() -> None:
    teacher = make_teacher(CONFIGS["mistral"])  # 4 heads of 16 (head_dim), width 32, one key/value head
    arch = StudentArch(2, 16, 2, 32, kv_heads_for(teacher_arch(teacher.config), 2))  # 2 heads of 8
    assert arch.kv_heads == 1
    student = from_teacher(teacher, arch, [1, 3])
    within = torch.cat([torch.arange(4) * 2, torch.arange(4) * 2 + 8])
    query = (evenly_spaced(4, 2)[:, None] * 16 + within).flatten()
    t, s = teacher.state_dict(), student.state_dict()
    hidden = evenly_spaced(32, 16)
    assert torch.equal(
        s["model.layers.0.self_attn.q_proj.weight"],
        t["model.layers.1.self_attn.q_proj.weight"][query][:, hidden],
    )
    assert torch.equal(
        s["model.layers.0.self_attn.k_proj.weight"],
        t["model.layers.1.self_attn.k_proj.weight"][within][:, hidden],
    )
    assert not tied(student) and torch.equal(s["lm_head.weight"], t["lm_head.weight"][:, hidden])
    assert torch.isfinite(logits(student)).all()


def test_params_without_embeddings_leave_out_a_decoders_embeddings_and_untied_head() -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    from autodistill.measure.size import model_size

    def llama(tied: bool) -> LlamaForCausalLM:
        config = LlamaConfig(
            vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
            tie_word_embeddings=tied,
        )  # fmt: skip
        return LlamaForCausalLM(config)

    tied, untied = model_size(llama(True)), model_size(llama(False))
    assert tied.params - tied.params_no_embeddings == 100 * 32  # the head shares the embeddings
    assert untied.params - untied.params_no_embeddings == 2 * 100 * 32
    assert tied.params_no_embeddings == untied.params_no_embeddings
