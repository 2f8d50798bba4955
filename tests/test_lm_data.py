"""Plain text for causal LMs: sources, documents, token blocks, splits, the block cache, inspection."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from autodistill.config import DatasetSpec
from autodistill.data.sources import DataError
from autodistill.tasks.causal_lm import data as lm_data
from autodistill.tasks.causal_lm.data import Blocks, inspect_lm_text, load_lm_text, read_corpus
from tests.conftest import bpe_tokenizer

VERSE = """When shall we three meet again
In thunder, lightning, or in rain?
When the hurlyburly's done,
When the battle's lost and won.
That will be ere the set of sun.
Fair is foul, and foul is fair:
Hover through the fog and filthy air.
"""


def tiny_tokenizer() -> Any:
    """A byte-level BPE tokenizer (about 300 tokens, ``<eos>`` among them) trained here, offline."""
    return bpe_tokenizer([VERSE] * 4, 300)


def tiny_lm(vocab: int, seed: int = 0, layers: int = 2) -> Any:
    """A 2-layer × 32 Llama with random weights (grouped-query attention: 4 heads, 2 key/value heads)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config).eval()


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return tiny_tokenizer()


def corpus_dir(root: Path, copies: int = 12) -> Path:
    """A folder of .txt/.md documents, nested, with files the loader must skip."""
    (root / "acts" / "one").mkdir(parents=True)
    (root / ".git").mkdir()
    for i in range(copies):
        (root / "acts" / f"scene{i:02d}.md").write_text(f"## Scene {i}\n\n{VERSE}")
    (root / "acts" / "one" / "prologue.txt").write_text(VERSE.upper())
    (root / "acts" / "empty.txt").write_text("  \n")
    (root / ".git" / "HEAD.txt").write_text("not a document")
    (root / "acts" / "cover.png").write_bytes(b"\x89PNG")
    return root


def stream(tokenizer: Any, documents: list[str]) -> list[int]:
    ids = tokenizer(documents, add_special_tokens=False)["input_ids"]
    return [t for doc in ids for t in (*doc, tokenizer.eos_token_id)]


def test_a_folder_is_read_recursively_one_document_per_file(tmp_path: Path) -> None:
    corpus = read_corpus(DatasetSpec(path=str(corpus_dir(tmp_path, copies=3))))
    # in path order: acts/empty.txt (dropped), acts/one/prologue.txt, acts/scene00.md, ...
    assert len(corpus.documents) == 4 and corpus.text_column == "text"
    assert corpus.documents[0] == VERSE.upper() and corpus.documents[-1].startswith("## Scene 2")
    assert "not a document" not in corpus.documents and corpus.source.startswith(
        "5 .txt/.md files"
    )  # the empty one counted


def test_blocks_are_the_token_stream_cut_with_eos_between_documents(tmp_path: Path, tokenizer: Any) -> None:
    root = corpus_dir(tmp_path)
    documents = read_corpus(DatasetSpec(path=str(root))).documents
    expected = stream(tokenizer, documents)
    data = load_lm_text(DatasetSpec(path=str(root)), tokenizer, 16, 10**6, cache_dir=None)
    every = torch.cat([data.train.input_ids, data.validation.input_ids, data.test.input_ids])
    assert every.shape == (len(expected) // 16, 16) and data.tokens == every.numel()
    cut = torch.tensor(expected[: every.numel()]).view(-1, 16)
    assert sorted(map(tuple, every.tolist())) == sorted(map(tuple, cut.tolist()))  # a permutation
    assert expected.count(tokenizer.eos_token_id) == len(documents)


def test_splits_follow_the_fractions_are_disjoint_and_seeded(tmp_path: Path, tokenizer: Any) -> None:
    root = corpus_dir(tmp_path)
    spec = DatasetSpec(path=str(root), holdout_fraction=0.2, test_fraction=0.5)
    a = load_lm_text(spec, tokenizer, 8, 10**6, cache_dir=None)
    b = load_lm_text(spec, tokenizer, 8, 10**6, cache_dir=None)
    c = load_lm_text(spec.model_copy(update={"split_seed": 1}), tokenizer, 8, 10**6, cache_dir=None)
    n = len(a.train) + len(a.validation) + len(a.test)
    held = round(n * 0.2)
    assert len(a.test) == round(held * 0.5) and len(a.validation) == held - len(a.test)
    assert torch.equal(a.validation.input_ids, b.validation.input_ids) and a.fingerprint == b.fingerprint
    assert not torch.equal(a.validation.input_ids, c.validation.input_ids) and a.fingerprint != c.fingerprint
    assert a.content_fingerprint == c.content_fingerprint  # the same documents
    small = load_lm_text(spec, tokenizer, 8, 5, cache_dir=None)
    assert len(small.train) == 5 and torch.equal(small.train.input_ids, a.train.input_ids[:5])  # a prefix
    capped = load_lm_text(spec.model_copy(update={"max_eval_examples": 2}), tokenizer, 8, 5, cache_dir=None)
    assert torch.equal(capped.validation.input_ids, a.validation.input_ids[:2])
    assert torch.equal(capped.test.input_ids, a.test.input_ids)  # the test blocks are never capped


def test_blocks_batch_as_token_batches(tokenizer: Any) -> None:
    from autodistill.distill.teacher_states import compute_states

    blocks = Blocks(torch.randint(0, len(tokenizer), (5, 12)))
    batch = blocks.batch(torch.tensor([3, 1]))
    assert set(batch) == {"input_ids", "attention_mask", "labels"}
    assert torch.equal(batch["labels"], blocks.input_ids[[3, 1]]) and bool(batch["attention_mask"].all())
    assert blocks.lengths.tolist() == [12] * 5 and len(blocks) == 5
    states, offsets = compute_states(tiny_lm(len(tokenizer)), blocks, [0, 1], 2, "cpu")
    assert states.shape == (60, 2, 32) and offsets[-1] == 60  # the hidden-state cache reads them too


@pytest.mark.parametrize("fmt", ["jsonl", "json", "parquet", "csv"])
def test_files_with_a_text_column(tmp_path: Path, tokenizer: Any, fmt: str) -> None:
    import pandas as pd

    frame = pd.DataFrame({"body": [VERSE, "", None, VERSE.upper()] * 10, "id": range(40)})
    path = tmp_path / f"corpus.{fmt}"
    if fmt == "jsonl":
        frame.to_json(path, orient="records", lines=True)
    elif fmt == "json":
        path.write_text(json.dumps(frame.to_dict(orient="records")))
    else:
        getattr(frame, f"to_{fmt}")(path, index=False)
    spec = DatasetSpec(path=str(path), text_column="body")
    corpus = read_corpus(spec)
    assert len(corpus.documents) == 20 and corpus.text_column == "body"  # empty and null rows dropped
    assert len(load_lm_text(spec, tokenizer, 16, 10, cache_dir=None).train) == 10
    with pytest.raises(DataError, match=r"^dataset.text_column: none of text among columns body, id"):
        read_corpus(DatasetSpec(path=str(path)))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"text_column": "body"},
            r"^dataset.text_column: 'body' names a column, but --dataset .* is plain text",
        ),
        ({"validation_split": "dev"}, r"^dataset.validation_split: causal-lm holds out blocks"),
        ({"test_split": "test"}, r"^dataset.test_split: causal-lm holds out blocks"),
    ],
)
def test_keys_that_do_not_apply_to_plain_text(tmp_path: Path, spec: dict[str, str], message: str) -> None:
    (tmp_path / "a.txt").write_text(VERSE)
    with pytest.raises(DataError, match=message):
        read_corpus(DatasetSpec(path=str(tmp_path / "a.txt"), **spec))


def test_bad_inputs_get_one_line_naming_the_flag_or_key(tmp_path: Path, tokenizer: Any) -> None:
    (tmp_path / "blank").mkdir()
    (tmp_path / "blank" / "a.txt").write_text("\n\n")
    (tmp_path / "notes.pdf").write_bytes(b"%PDF")
    (tmp_path / "short.txt").write_text("Anon.")
    (tmp_path / "numbers.jsonl").write_text('{"text": 1}\n{"text": 2}\n')
    cases = {
        str(tmp_path / "blank"): r"^--dataset .*blank: no text",
        str(tmp_path / "missing"): r"^--dataset .*missing: no such file or directory",
        str(tmp_path / "notes.pdf"): r"^--dataset .*notes.pdf: unsupported file type '.pdf'",
        str(tmp_path / "numbers.jsonl"): r"^dataset.text_column: column 'text' holds int values",
        None: r"^no dataset given",
    }
    for path, message in cases.items():
        with pytest.raises(DataError, match=message) as info:
            read_corpus(DatasetSpec(path=path))
        assert "\n" not in str(info.value)
    with pytest.raises(DataError, match=r"^--dataset .*short.txt: 0 blocks of 64 tokens .*train.max_length"):
        load_lm_text(DatasetSpec(path=str(tmp_path / "short.txt")), tokenizer, 64, 10, cache_dir=None)


def test_inspection_without_a_tokenizer_bounds_the_blocks(tmp_path: Path, tokenizer: Any) -> None:
    root = corpus_dir(tmp_path)
    spec = DatasetSpec(path=str(root))
    rough = inspect_lm_text(spec, 16)
    exact = inspect_lm_text(spec, 16, tokenizer)
    assert exact.exact and not rough.exact and exact.blocks <= rough.blocks
    assert rough.facts["dataset.documents"] == 13 and "≤ " in rough.summary and "≤" not in exact.summary
    loaded = load_lm_text(spec, tokenizer, 16, 10**6, cache_dir=None)
    assert exact.blocks == len(loaded.train) + len(loaded.validation) + len(loaded.test)
    (tmp_path / "tiny.txt").write_text("Anon.")
    with pytest.raises(DataError, match=r"at most 0 blocks of 16 tokens"):
        inspect_lm_text(DatasetSpec(path=str(tmp_path / "tiny.txt")), 16)


def test_token_blocks_are_cached_by_content_tokenizer_and_length(
    tmp_path: Path, tokenizer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, cache = corpus_dir(tmp_path / "text"), tmp_path / "cache"
    spec = DatasetSpec(path=str(root))
    first = load_lm_text(spec, tokenizer, 16, 100, cache)
    assert len(list(cache.glob("lm-blocks-*.pt"))) == 1

    def refuse(*args: Any) -> list[int]:
        raise AssertionError("tokenised again")

    monkeypatch.setattr(lm_data, "_token_stream", refuse)
    again = load_lm_text(spec, tokenizer, 16, 100, cache)
    assert (
        torch.equal(first.train.input_ids, again.train.input_ids) and first.fingerprint == again.fingerprint
    )
    monkeypatch.undo()
    load_lm_text(spec, tokenizer, 8, 100, cache)  # another length: another entry
    (root / "acts" / "scene00.md").write_text("Thunder.")  # other content: another entry
    load_lm_text(spec, tokenizer, 16, 100, cache)
    assert len(list(cache.glob("lm-blocks-*.pt"))) == 3


def test_the_corpus_is_tokenised_once_for_every_length_and_check(
    tmp_path: Path, tokenizer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 25: the token stream is cached by content and tokenizer (Arrow, memory-mapped); another block
    length and the checks of ``validate`` read it instead of tokenising again, and the checks write
    nothing of their own."""
    root, cache = corpus_dir(tmp_path / "text"), tmp_path / "cache"
    spec = DatasetSpec(path=str(root))
    fresh = tmp_path / "fresh"
    counted = inspect_lm_text(spec, 16, tokenizer, fresh)  # nothing cached yet: tokenised, not stored
    assert not fresh.exists()
    first = load_lm_text(spec, tokenizer, 16, 100, cache)
    assert len(list(cache.glob("lm-tokens-*.arrow"))) == 1
    expected = stream(tokenizer, read_corpus(spec).documents)

    def refuse(*args: Any) -> Any:
        raise AssertionError("tokenised again")

    monkeypatch.setattr(lm_data, "_tokenised", refuse)
    assert inspect_lm_text(spec, 16, tokenizer, cache).blocks == counted.blocks == len(expected) // 16
    other = load_lm_text(spec, tokenizer, 8, 100, cache)  # another length: cut from the cached stream
    assert other.tokens == len(expected) // 8 * 8 and first.tokens == len(expected) // 16 * 16
    assert lm_data.token_stream(read_corpus(spec), tokenizer, cache).tolist() == expected
