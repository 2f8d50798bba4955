"""Build a student from the teacher's config family with depth and width changed, and start it from
the teacher's own weights when asked.

Families: BERT-style encoders (BERT, RoBERTa, DistilBERT, ...), MPNet (BERT's size names, its own
attention names and one relative attention bias shared by all layers), Llama-style decoders (Llama,
SmolLM, Mistral, ...: BERT's size names plus ``num_key_value_heads`` for grouped-query attention) and
GPT-2.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class StudentArch:
    """A student's shape; heads and feed-forward size follow from width by the space's rules.

    ``kv_heads`` is the number of key/value heads of a grouped-query-attention decoder (Llama family);
    None means as many as ``heads`` (and is what families without the notion use).
    """

    depth: int
    width: int
    heads: int
    ffn: int
    kv_heads: int | None = None

    @property
    def head_size(self) -> int:
        return self.width // self.heads

    @property
    def effective_kv_heads(self) -> int:
        """Key/value heads, counting None as one per query head."""
        return self.heads if self.kv_heads is None else self.kv_heads


@dataclass(frozen=True)
class ArchFields:
    """What a config family calls depth, width, heads and feed-forward size."""

    depth: str
    width: str
    heads: str
    ffn: str


BERT_FIELDS = ArchFields("num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size")

# Families whose configs name the four sizes differently from BERT. BERT, RoBERTa, XLM-R, ELECTRA
# (without a separate embedding size), MiniLM, MPNet, DeBERTa and others use the BERT names.
# Llama, SmolLM (model_type llama), Mistral and Qwen2 use the BERT names too, plus num_key_value_heads.
ARCH_FIELDS: dict[str, ArchFields] = {
    "distilbert": ArchFields("n_layers", "dim", "n_heads", "hidden_dim"),
    "gpt2": ArchFields("n_layer", "n_embd", "n_head", "n_inner"),  # n_inner None means 4 × n_embd
}

# The config field of grouped-query attention's key/value heads (Llama family).
KV_HEADS_FIELD = "num_key_value_heads"


class StudentBuildError(ValueError):
    """The teacher's config family cannot be resized the way the trial asks."""


def arch_fields(config: Any) -> ArchFields:
    fields = ARCH_FIELDS.get(config.model_type, BERT_FIELDS)
    missing = [name for name in vars(fields).values() if not hasattr(config, name)]
    if missing:
        raise StudentBuildError(
            f"teacher model_type '{config.model_type}' has no {', '.join(missing)} in its config; "
            "autodistill resizes BERT-, RoBERTa-, DistilBERT- and MPNet-style encoders, "
            "Llama-style (Llama, SmolLM, Mistral) and GPT-2 decoders"
        )
    return fields


def teacher_arch(config: Any) -> StudentArch:
    """The teacher's own depth, width, heads, feed-forward size and (Llama family) key/value heads."""
    f = arch_fields(config)
    width = getattr(config, f.width)
    ffn = getattr(config, f.ffn)
    return StudentArch(
        depth=getattr(config, f.depth),
        width=width,
        heads=getattr(config, f.heads),
        ffn=4 * width if ffn is None else ffn,  # GPT-2's n_inner=None
        kv_heads=getattr(config, KV_HEADS_FIELD, None),
    )


def kv_heads_for(teacher: StudentArch, heads: int) -> int | None:
    """Key/value heads for a student with ``heads`` query heads of a ``teacher`` with grouped-query
    attention: the teacher's queries per key/value head when ``heads`` allows it, else the largest
    divisor of ``heads`` not above the teacher's key/value heads (the fewest queries per key/value
    head it can have). None when the teacher has no key/value heads of its own (encoders, GPT-2).

    A student with more queries per key/value head than the teacher cannot start from it by
    weight-select (``check_teacher_init`` says so); it can be trained from random weights.
    """
    if teacher.kv_heads is None:
        return None
    ratio = teacher.heads // teacher.kv_heads
    if heads % ratio == 0:
        return heads // ratio
    return max(k for k in range(1, min(heads, teacher.kv_heads) + 1) if heads % k == 0)


def student_config(teacher_config: Any, arch: StudentArch) -> Any:
    """A copy of the teacher's config with the student's sizes; labels, vocabulary and tied embeddings
    are kept, and the weights are float32 whatever dtype the teacher was saved in."""
    config = teacher_config.__class__.from_dict(teacher_config.to_dict())
    fields = arch_fields(config)
    teacher = teacher_arch(config)
    for field, value in zip(
        vars(fields).values(), (arch.depth, arch.width, arch.heads, arch.ffn), strict=True
    ):
        setattr(config, field, value)
    if hasattr(config, "embedding_size") and config.embedding_size != arch.width:
        config.embedding_size = arch.width  # ELECTRA-style factorised embeddings follow the width
    if teacher.kv_heads is not None:
        setattr(config, KV_HEADS_FIELD, arch.effective_kv_heads)
    elif arch.kv_heads not in (None, arch.heads):
        raise StudentBuildError(
            f"teacher model_type '{config.model_type}' has no key/value heads of their own; "
            f"got {arch.kv_heads} for {arch.heads} heads"
        )
    if getattr(config, "head_dim", None) is not None and (arch.width, arch.heads) != (
        teacher.width,
        teacher.heads,
    ):
        config.head_dim = arch.head_size  # an explicit head size follows a resized width
    # transformers ≥ 4.56 calls it dtype (torch_dtype before); from_config builds in this dtype.
    setattr(config, "dtype" if "dtype" in config.to_dict() else "torch_dtype", "float32")
    return config


def build_student(teacher_config: Any, arch: StudentArch, seed: int, auto_class: Any) -> Any:
    """A randomly initialised float32 model of the student's shape, built by ``auto_class.from_config``
    (the task's Auto class, e.g. ``AutoModelForSequenceClassification`` or ``AutoModelForCausalLM``).

    Raises:
        StudentBuildError: the family cannot take this shape (e.g. width not divisible by heads).
    """
    import torch

    if arch.width % arch.heads:
        raise StudentBuildError(f"width {arch.width} is not divisible by {arch.heads} heads")
    if arch.kv_heads is not None and (arch.kv_heads < 1 or arch.heads % arch.kv_heads):
        raise StudentBuildError(f"{arch.heads} heads cannot share {arch.kv_heads} key/value heads evenly")
    config = student_config(teacher_config, arch)
    head_size = getattr(config, "head_dim", None) or arch.head_size
    if getattr(config, KV_HEADS_FIELD, None) is not None and head_size % 2:
        raise StudentBuildError(
            f"rotary position embeddings need an even head size; width {arch.width} over {arch.heads} "
            f"heads gives {head_size}"
        )
    torch.manual_seed(seed)
    model = auto_class.from_config(config)
    if any(p.is_floating_point() and p.dtype != torch.float32 for p in model.parameters()):
        model = model.float()  # a transformers version that ignored the config's dtype
    return model


def select_layers(teacher_depth: int, depth: int, how: str = "even") -> list[int]:
    """Which teacher layers a ``depth``-layer student starts from and is matched to.

    ``even`` spreads them and always ends at the top layer, whose output the teacher's classifier
    reads (6 of 12 → 1, 3, 5, 7, 9, 11; 1 of 6 → 5); ``first``/``last`` take a contiguous block.
    """
    if not 1 <= depth <= teacher_depth:
        raise StudentBuildError(f"a teacher-based student needs 1 ≤ depth ≤ {teacher_depth}; got {depth}")
    if how == "first":
        return list(range(depth))
    if how == "last":
        return list(range(teacher_depth - depth, teacher_depth))
    return [round((i + 1) * teacher_depth / depth) - 1 for i in range(depth)]


def evenly_spaced(total: int, keep: int) -> Any:
    """``keep`` of ``total`` indices spread evenly, as a LongTensor; all of them when keep == total."""
    import torch

    return torch.linspace(0, total - 1, keep).round().long()


# Attention projections: their output rows (query/key/value) or input columns (output projection) are
# ordered head by head, so a narrower student selects heads and dimensions within heads, not units.
# BERT's ``attention.self.query``, DistilBERT's ``attention.q_lin``, MPNet's ``attention.attn.q``.
_ATTENTION_IN = re.compile(r"attention\.(self\.(query|key|value)(_proj)?|q_lin|k_lin|v_lin|attn\.[qkv])\.")
_ATTENTION_OUT = re.compile(r"attention\.(output\.dense|out_lin|attn\.o)\.weight$")
# MPNet's relative position bias, [buckets, heads], added to every layer's attention scores: the student's
# heads are the teacher's selected heads, so they keep those heads' biases.
_HEAD_BIAS = re.compile(r"relative_attention_bias\.weight$")
# Llama family (nn.Linear, [out, in]): query heads, grouped key/value heads, gated feed-forward.
_QUERY = re.compile(r"self_attn\.q_proj\.(weight|bias)$")
_KEY_VALUE = re.compile(r"self_attn\.(k_proj|v_proj)\.(weight|bias)$")
_QUERY_OUT = re.compile(r"self_attn\.o_proj\.weight$")
_GATED_IN = re.compile(r"mlp\.(gate_proj|up_proj)\.(weight|bias)$")
_GATED_OUT = re.compile(r"mlp\.down_proj\.weight$")
# GPT-2 (Conv1D, [in, out]): c_attn's outputs are the query heads, then the key heads, then the value heads.
_FUSED_QKV = re.compile(r"(^|\.)attn\.c_attn\.(weight|bias)$")
_FUSED_OUT = re.compile(r"(^|\.)attn\.c_proj\.weight$")
_CONV_MLP_IN = re.compile(r"(^|\.)mlp\.c_fc\.(weight|bias)$")
_CONV_MLP_OUT = re.compile(r"(^|\.)mlp\.c_proj\.weight$")
# Layer N: encoders' ``encoder.layer.N.``, Llama's ``model.layers.N.``, GPT-2's ``transformer.h.N.``.
_LAYER = re.compile(r"(^|\.)(layer|layers|h)\.(\d+)\.")


def check_teacher_init(teacher: StudentArch, student: StudentArch, init: str) -> None:
    """Raise StudentBuildError when ``student`` cannot start from ``teacher``'s weights."""
    kv, teacher_kv = student.effective_kv_heads, teacher.effective_kv_heads
    if init == "teacher-layers" and (student.width, student.heads, student.ffn, kv) != (
        teacher.width,
        teacher.heads,
        teacher.ffn,
        teacher_kv,
    ):
        kv_text = f", {teacher_kv} key/value heads" if teacher.kv_heads is not None else ""
        raise StudentBuildError(
            f"teacher-layers copies whole layers: the student needs the teacher's width {teacher.width}, "
            f"{teacher.heads} heads{kv_text} and feed-forward {teacher.ffn}; use weight-select for other shapes"
        )
    too_big = [
        f"{name} {s} > {t}"
        for name, s, t in (
            ("depth", student.depth, teacher.depth),
            ("width", student.width, teacher.width),
            ("heads", student.heads, teacher.heads),
            ("key/value heads", kv, teacher_kv),
            ("head size", student.head_size, teacher.head_size),
            ("feed-forward", student.ffn, teacher.ffn),
        )
        # key/value heads are their own count only in grouped-query attention; else they are the heads
        if s > t and not (name == "key/value heads" and teacher.kv_heads is None)
    ]
    if too_big:
        raise StudentBuildError(
            f"{init} selects from the teacher, so the student cannot be larger: {', '.join(too_big)}"
        )
    if kv < 1 or student.heads % kv:
        raise StudentBuildError(f"{student.heads} heads cannot share {kv} key/value heads evenly")
    if student.heads // kv > teacher.heads // teacher_kv:
        raise StudentBuildError(
            f"{init} keeps each query head with its own key/value head: the student's "
            f"{student.heads // kv} query heads per key/value head exceed the teacher's "
            f"{teacher.heads // teacher_kv} (kv_heads_for picks a count that fits)"
        )


def _head_size(state: dict[str, Any], heads: int, default: int) -> int:
    """Dimensions per head: from the query projection when the family names one (a config's explicit
    ``head_dim`` may differ from width / heads), else ``default``."""
    for name, value in state.items():
        if _QUERY.search(name) and name.endswith("weight"):
            return int(value.shape[0]) // heads
    return default


def _tied_aliases(state: dict[str, Any]) -> dict[str, str]:
    """Each state entry that shares its storage with an earlier one (tied embeddings), by name."""
    first: dict[tuple[int, tuple[int, ...]], str] = {}
    aliases = {}
    for name, value in state.items():
        key = (value.data_ptr(), tuple(value.shape))
        if key in first:
            aliases[name] = first[key]
        else:
            first[key] = name
    return aliases


def init_from_teacher(
    student: Any, teacher_state: dict[str, Any], teacher: StudentArch, arch: StudentArch, layers: list[int]
) -> None:
    """Copy into ``student`` a consistent subset of the teacher's weights (Xu et al. 2023, "Initializing
    Models with Larger Ones"): student layer i is teacher layer ``layers[i]``, and every matrix keeps the
    same evenly spaced hidden units, heads, dimensions within heads and feed-forward units, so the
    residual stream stays aligned across layers. At the teacher's width this is DistilBERT's layer copy.

    Grouped-query attention (``kv_heads``): key/value heads are picked evenly, then the same number of
    query heads evenly within each kept group, so every query head keeps its own key/value head.
    Rotary families (those with key/value heads: Llama, Mistral, ...) pair dimension i of a head with
    i + head size / 2, so a narrower head keeps such pairs, at dimensions whose rotation frequencies the
    student's own rotary embedding reproduces (exactly when the head sizes divide). MPNet's relative
    attention bias (one column per head, shared by all layers) keeps the selected heads' columns. Tied
    embeddings select the same hidden units and stay tied.
    """
    import torch

    student_state = student.state_dict()
    teacher_head = _head_size(teacher_state, teacher.heads, teacher.head_size)
    student_head = _head_size(student_state, arch.heads, arch.head_size)
    kv, teacher_kv = arch.effective_kv_heads, teacher.effective_kv_heads
    group, teacher_group = arch.heads // kv, teacher.heads // teacher_kv
    if student_head > teacher_head or kv > teacher_kv or group > teacher_group or arch.heads % kv:
        raise StudentBuildError(
            f"cannot select {arch.heads} heads of {student_head} with {kv} key/value heads from the "
            f"teacher's {teacher.heads} heads of {teacher_head} with {teacher_kv} key/value heads"
        )
    hidden = evenly_spaced(teacher.width, arch.width)
    ffn = feed_forward_units(teacher_state, teacher, arch.ffn)
    if teacher.kv_heads is not None:  # rotary: keep (i, i + half) pairs at the student's frequencies
        if student_head % 2:
            raise StudentBuildError(f"rotary position embeddings need an even head size; got {student_head}")
        half = torch.arange(student_head // 2) * teacher_head // student_head
        within = torch.cat([half, half + teacher_head // 2])
    else:
        within = evenly_spaced(teacher_head, student_head)
    kv_heads = evenly_spaced(teacher_kv, kv)
    heads = (kv_heads[:, None] * teacher_group + evenly_spaced(teacher_group, group)[None, :]).flatten()
    attention = (heads[:, None] * teacher_head + within[None, :]).flatten()
    key_value = (kv_heads[:, None] * teacher_head + within[None, :]).flatten()
    span = teacher.heads * teacher_head
    fused = torch.cat([attention, attention + span, attention + 2 * span])

    def units(name: str, dim: int, teacher_size: int) -> Any:
        rows = dim == 0  # nn.Linear's outputs, or a bias
        conv_out = dim == (1 if name.endswith("weight") else 0)  # Conv1D's outputs, or a bias
        if rows and (_ATTENTION_IN.search(name) or _QUERY.search(name)):
            return attention
        if dim == 1 and (_ATTENTION_OUT.search(name) or _QUERY_OUT.search(name)):
            return attention
        if dim == 1 and _HEAD_BIAS.search(name):
            return heads
        if rows and _KEY_VALUE.search(name):
            return key_value
        if conv_out and _FUSED_QKV.search(name):
            return fused
        if rows and _FUSED_OUT.search(name):
            return attention
        if (rows and _GATED_IN.search(name)) or (dim == 1 and _GATED_OUT.search(name)):
            return ffn(name)
        if (conv_out and _CONV_MLP_IN.search(name)) or (rows and _CONV_MLP_OUT.search(name)):
            return ffn(name)
        if teacher_size == teacher.width:
            return hidden
        if teacher_size == teacher.ffn:
            return ffn(name)
        raise StudentBuildError(f"cannot map {name} dimension {dim} ({teacher_size}) onto the student")

    parameters = {name for name, _ in student.named_parameters(remove_duplicate=False)}
    tied = _tied_aliases(student_state)
    selected: dict[str, Any] = {}
    for name, param in student_state.items():
        source = _LAYER.sub(lambda m: f"{m.group(1)}{m.group(2)}.{layers[int(m.group(3))]}.", name)
        if source not in teacher_state:
            if name in tied:  # e.g. lm_head.weight, tied to the embeddings and not saved apart
                selected[name] = selected[tied[name]]
                continue
            raise StudentBuildError(f"the teacher's weights have no {source} for the student's {name}")
        weight = teacher_state[source]
        if name not in parameters and weight.shape != param.shape:
            selected[name] = param.clone()  # a buffer of the student's own size: the student's own
            continue
        for dim, size in enumerate(param.shape):
            if weight.shape[dim] != size:
                weight = weight.index_select(dim, units(source, dim, weight.shape[dim]).to(weight.device))
        selected[name] = weight.clone()
    student.load_state_dict(selected)


def feed_forward_units(teacher_state: dict[str, Any], teacher: StudentArch, keep: int) -> Any:
    """Which of each teacher layer's feed-forward units a student keeps, as ``f(weight name) -> indices``.

    A unit's weight into the layer's residual stream and out of it are one row and one column; the units
    whose product of those norms is largest carry most of the layer's output (magnitude pruning). The
    choice is per layer and leaves the hidden units alone, so the residual stream stays aligned. Where
    the feed-forward size equals the width, a matrix does not say which of its sides is the feed-forward
    one: every layer then keeps evenly spaced units, as do layers the state does not name.
    """
    even = evenly_spaced(teacher.ffn, keep)
    scores: dict[int, Any] = {}
    if keep < teacher.ffn and teacher.ffn != teacher.width:  # all units kept: nothing to choose
        for name, weight in teacher_state.items():
            layer = _LAYER.search(name)
            if layer is None or weight.ndim != 2 or teacher.ffn not in weight.shape:
                continue
            if teacher.width not in weight.shape:  # not a matrix between the stream and the units
                continue
            norms = weight.float().norm(dim=1 - weight.shape.index(teacher.ffn))
            index = int(layer.group(3))
            scores[index] = scores[index] * norms if index in scores else norms
    chosen = {index: score.topk(keep).indices.sort().values for index, score in scores.items()}

    def units(name: str) -> Any:
        layer = _LAYER.search(name)
        return chosen.get(int(layer.group(3)), even) if layer else even

    return units


# The query, key and value projections of an encoder layer, by family: BERT-style ``attention.self.query``,
# DistilBERT's ``attention.q_lin``, MPNet's ``attention.attn.q``.
_PROJECTIONS = re.compile(
    r"(^|\.)(layer|layers)\.(\d+)\.attention\.(self\.(?P<bert>query|key|value)|(?P<distil>[qkv])_lin|"
    r"attn\.(?P<mpnet>[qkv]))$"
)


def last_layer_projections(model: Any) -> list[Any]:
    """The [query, key, value] projection modules of ``model``'s last encoder layer, whose outputs are
    [batch, tokens, width] (all heads): what the attention-relation loss compares.

    Raises:
        StudentBuildError: the family names its attention differently (not a BERT-, DistilBERT- or
            MPNet-style encoder).
    """
    found: dict[int, dict[str, Any]] = {}
    for name, module in model.named_modules():
        match = _PROJECTIONS.search(name)
        if match:
            role = (match["bert"] or match["distil"] or match["mpnet"])[0]  # q, k or v
            found.setdefault(int(match[3]), {})[role] = module
    if not found or len(found[max(found)]) != 3:
        raise StudentBuildError(
            f"model_type '{model.config.model_type}': no query/key/value projections found in its layers; "
            "the attention-relation loss supports BERT-, DistilBERT- and MPNet-style encoders (set "
            "distill.attention_weight: 0)"
        )
    last = found[max(found)]
    return [last["q"], last["k"], last["v"]]
