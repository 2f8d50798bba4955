"""Students that start from the teacher: layer copies (DistilBERT) and weight selection (Xu et al. 2023)."""

from __future__ import annotations

import pytest
import torch
from transformers import (
    AutoModelForSequenceClassification,
    BertConfig,
    DistilBertConfig,
    MPNetConfig,
    RobertaConfig,
)

from autodistill.distill.student import (
    StudentArch,
    StudentBuildError,
    build_student,
    check_teacher_init,
    init_from_teacher,
    select_layers,
    teacher_arch,
)

COMMON = {"vocab_size": 120, "num_labels": 3, "max_position_embeddings": 40}
CONFIGS = {
    "bert": BertConfig(
        hidden_size=64, num_hidden_layers=4, num_attention_heads=4, intermediate_size=128, **COMMON
    ),
    "roberta": RobertaConfig(
        hidden_size=64, num_hidden_layers=4, num_attention_heads=4, intermediate_size=128, **COMMON
    ),
    "distilbert": DistilBertConfig(dim=64, n_layers=4, n_heads=4, hidden_dim=128, **COMMON),
    "mpnet": MPNetConfig(
        hidden_size=64, num_hidden_layers=4, num_attention_heads=4, intermediate_size=128, **COMMON
    ),
}
IDS = torch.tensor([[5, 17, 9, 33, 2, 8], [7, 7, 60, 3, 0, 0]])
MASK = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])


def first(output):
    return output[0] if isinstance(output, tuple) else output


def strongest(keep: int, *norms: torch.Tensor) -> torch.Tensor:
    """The ``keep`` feed-forward units with the largest product of weight norms in and out, in order."""
    return torch.stack(norms).prod(dim=0).topk(keep).indices.sort().values


def make_teacher(config) -> torch.nn.Module:
    torch.manual_seed(123)
    return AutoModelForSequenceClassification.from_config(config).eval()


def from_teacher(teacher, arch: StudentArch, layers: list[int]) -> torch.nn.Module:
    student = build_student(teacher.config, arch, 0, AutoModelForSequenceClassification).eval()
    init_from_teacher(student, teacher.state_dict(), teacher_arch(teacher.config), arch, layers)
    return student


@pytest.mark.parametrize("family", CONFIGS, ids=list(CONFIGS))
def test_weight_select_at_full_size_is_the_teacher(family: str) -> None:
    teacher = make_teacher(CONFIGS[family])
    arch = teacher_arch(teacher.config)
    student = from_teacher(teacher, arch, select_layers(arch.depth, arch.depth))
    for name, value in teacher.state_dict().items():
        assert torch.equal(student.state_dict()[name], value), name
    torch.testing.assert_close(
        student(input_ids=IDS, attention_mask=MASK).logits, teacher(input_ids=IDS, attention_mask=MASK).logits
    )


@pytest.mark.parametrize("family", CONFIGS, ids=list(CONFIGS))
def test_teacher_layers_student_reproduces_the_selected_layers(family: str) -> None:
    teacher = make_teacher(CONFIGS[family])
    t = teacher_arch(teacher.config)
    arch = StudentArch(depth=2, width=t.width, heads=t.heads, ffn=t.ffn)
    layers = select_layers(t.depth, 2)
    assert layers == [1, 3]
    student = from_teacher(teacher, arch, layers)
    teacher_layers = (
        teacher.base_model.encoder.layer if family != "distilbert" else teacher.base_model.transformer.layer
    )
    student_layers = (
        student.base_model.encoder.layer if family != "distilbert" else student.base_model.transformer.layer
    )
    x = torch.randn(2, 6, t.width)
    for i, source in enumerate(layers):  # same weights, and the same function on the same input
        for (name, s), (_, p) in zip(
            student_layers[i].state_dict().items(), teacher_layers[source].state_dict().items(), strict=True
        ):
            assert torch.equal(s, p), name
        torch.testing.assert_close(first(student_layers[i](x)), first(teacher_layers[source](x)))
    # Embeddings and the classification head are the teacher's too.
    assert torch.equal(
        student.base_model.embeddings.word_embeddings.weight,
        teacher.base_model.embeddings.word_embeddings.weight,
    )


def test_weight_select_takes_consistent_units_heads_and_feed_forward() -> None:
    teacher = make_teacher(CONFIGS["bert"])  # width 64, 4 heads of 16, feed-forward 128
    arch = StudentArch(depth=2, width=32, heads=2, ffn=64)  # 2 heads of 16
    student = from_teacher(teacher, arch, [1, 3])
    hidden = torch.linspace(0, 63, 32).round().long()
    heads = torch.tensor([0, 3])  # evenly spaced heads, all 16 dimensions of each
    attention = (heads[:, None] * 16 + torch.arange(16)[None, :]).flatten()
    t, s = teacher.state_dict(), student.state_dict()
    layer3 = "bert.encoder.layer.3.{}.dense.weight"
    ffn = strongest(64, t[layer3.format("intermediate")].norm(dim=1), t[layer3.format("output")].norm(dim=0))
    assert torch.equal(
        s["bert.embeddings.word_embeddings.weight"], t["bert.embeddings.word_embeddings.weight"][:, hidden]
    )
    assert torch.equal(
        s["bert.encoder.layer.0.attention.self.query.weight"],
        t["bert.encoder.layer.1.attention.self.query.weight"][attention][:, hidden],
    )
    assert torch.equal(
        s["bert.encoder.layer.1.attention.output.dense.weight"],
        t["bert.encoder.layer.3.attention.output.dense.weight"][hidden][:, attention],
    )
    assert torch.equal(
        s["bert.encoder.layer.1.intermediate.dense.weight"],
        t["bert.encoder.layer.3.intermediate.dense.weight"][ffn][:, hidden],
    )
    assert torch.equal(s["classifier.weight"], t["classifier.weight"][:, hidden])
    assert torch.isfinite(student(input_ids=IDS, attention_mask=MASK).logits).all()


def test_layer_selection_ends_at_the_top_layer() -> None:
    assert select_layers(12, 6) == [1, 3, 5, 7, 9, 11]
    assert select_layers(6, 1) == [5]
    assert select_layers(6, 2, "first") == [0, 1] and select_layers(6, 2, "last") == [4, 5]
    with pytest.raises(StudentBuildError, match="depth ≤ 6"):
        select_layers(6, 7)


def test_students_larger_than_the_teacher_cannot_start_from_it() -> None:
    teacher = StudentArch(depth=4, width=64, heads=4, ffn=128)
    with pytest.raises(StudentBuildError, match="width 128 > 64"):
        check_teacher_init(teacher, StudentArch(depth=2, width=128, heads=4, ffn=128), "weight-select")
    with pytest.raises(StudentBuildError, match="use weight-select"):
        check_teacher_init(teacher, StudentArch(depth=2, width=32, heads=2, ffn=64), "teacher-layers")
    check_teacher_init(teacher, StudentArch(depth=2, width=64, heads=4, ffn=128), "teacher-layers")


def test_mpnet_teacher_layers_student_with_every_layer_is_the_teacher() -> None:
    teacher = make_teacher(CONFIGS["mpnet"])
    arch = teacher_arch(teacher.config)
    check_teacher_init(arch, arch, "teacher-layers")
    student = from_teacher(teacher, arch, select_layers(arch.depth, arch.depth))
    assert torch.equal(
        student(input_ids=IDS, attention_mask=MASK).logits, teacher(input_ids=IDS, attention_mask=MASK).logits
    )


def test_mpnet_teacher_layers_student_is_the_teacher_cut_to_its_layers() -> None:
    """The relative position bias is the encoder's, not a layer's: a student of layers 1 and 3 computes
    what the teacher computes with only those layers left, bias, embeddings and classifier included."""
    teacher = make_teacher(CONFIGS["mpnet"])
    t = teacher_arch(teacher.config)
    layers = select_layers(t.depth, 2)
    student = from_teacher(teacher, StudentArch(depth=2, width=t.width, heads=t.heads, ffn=t.ffn), layers)
    encoder = teacher.base_model.encoder
    encoder.layer = torch.nn.ModuleList([encoder.layer[i] for i in layers])
    torch.testing.assert_close(
        student(input_ids=IDS, attention_mask=MASK).logits, teacher(input_ids=IDS, attention_mask=MASK).logits
    )


@pytest.mark.parametrize(
    ("width", "heads", "kept_heads"),
    [(32, 2, [0, 3]), (32, 4, [0, 1, 2, 3])],
    ids=["2-heads-of-16", "4-heads-of-8"],
)
def test_mpnet_weight_select_keeps_the_selected_heads_and_their_position_bias(
    width: int, heads: int, kept_heads: list[int]
) -> None:
    teacher = make_teacher(CONFIGS["mpnet"])  # width 64, 4 heads of 16, feed-forward 128
    arch = StudentArch(depth=2, width=width, heads=heads, ffn=64)
    check_teacher_init(teacher_arch(teacher.config), arch, "weight-select")
    student = from_teacher(teacher, arch, [1, 3])
    hidden = torch.linspace(0, 63, width).round().long()
    within = torch.linspace(0, 15, width // heads).round().long()
    attention = (torch.tensor(kept_heads)[:, None] * 16 + within[None, :]).flatten()
    t, s = teacher.state_dict(), student.state_dict()
    assert s["mpnet.encoder.relative_attention_bias.weight"].shape == (32, heads)
    assert torch.equal(
        s["mpnet.encoder.relative_attention_bias.weight"],
        t["mpnet.encoder.relative_attention_bias.weight"][:, kept_heads],
    )
    for projection in ("q", "k", "v"):
        name = f"mpnet.encoder.layer.{{}}.attention.attn.{projection}"
        assert torch.equal(s[name.format(0) + ".weight"], t[name.format(1) + ".weight"][attention][:, hidden])
        assert torch.equal(s[name.format(0) + ".bias"], t[name.format(1) + ".bias"][attention])
    assert torch.equal(
        s["mpnet.encoder.layer.1.attention.attn.o.weight"],
        t["mpnet.encoder.layer.3.attention.attn.o.weight"][hidden][:, attention],
    )
    # MPNetForSequenceClassification's head: dense (hidden → hidden), then out_proj (hidden → labels).
    assert torch.equal(s["classifier.dense.weight"], t["classifier.dense.weight"][hidden][:, hidden])
    assert torch.equal(s["classifier.out_proj.weight"], t["classifier.out_proj.weight"][:, hidden])
    assert torch.isfinite(student(input_ids=IDS, attention_mask=MASK).logits).all()


def test_weight_select_keeps_each_layers_strongest_feed_forward_units() -> None:
    """A narrower feed-forward keeps, per layer, the units with the largest weights in and out; the
    same units on both sides, so each kept unit computes what it did in the teacher."""
    teacher = make_teacher(CONFIGS["bert"])  # feed-forward 128
    strong = {1: [3, 50, 100], 3: [7, 8, 127]}
    with torch.no_grad():
        for layer, units in strong.items():
            block = teacher.bert.encoder.layer[layer]
            block.intermediate.dense.weight[units] *= 10
            block.output.dense.weight[:, units] *= 10
    t = teacher_arch(teacher.config)
    arch = StudentArch(depth=2, width=t.width, heads=t.heads, ffn=16)
    student = from_teacher(teacher, arch, [1, 3])
    for i, layer in enumerate([1, 3]):
        taught, kept = teacher.bert.encoder.layer[layer], student.bert.encoder.layer[i]
        rows = [
            int(torch.nonzero((taught.intermediate.dense.weight == row).all(dim=1))[0])
            for row in kept.intermediate.dense.weight
        ]
        assert set(strong[layer]) <= set(rows) and rows == sorted(rows)
        assert torch.equal(kept.output.dense.weight, taught.output.dense.weight[:, rows])
        assert torch.equal(kept.intermediate.dense.bias, taught.intermediate.dense.bias[rows])
