"""Plain text for causal language models: documents → the teacher's tokens → fixed blocks → splits.

Sources: one .txt/.md file (one document), a folder of .txt/.md files (searched recursively, one
document per file), a csv/tsv/json/jsonl/parquet file or a hub id through ``datasets`` (a text column,
``dataset.text_column`` or ``text``; the rows of ``dataset.train_split`` are the documents).

Every document is tokenised with the teacher's tokenizer (no special tokens added) and followed by the
end-of-sequence token, the documents are concatenated in order, and the stream is cut into blocks of
``max_length`` tokens; the tail shorter than a block is dropped. The blocks, not the documents, are
split, after a shuffle seeded by ``dataset.split_seed``:

- a held-out part of ``round(blocks × dataset.holdout_fraction)`` blocks, of which
  ``round(held-out × dataset.test_fraction)`` are the test blocks and the rest the validation blocks
  (the classification task likewise carves its test examples out of the validation examples);
- the trial-visible training blocks: the first ``train_examples`` of the other blocks, in the shuffled
  order (a larger budget keeps the smaller one's blocks).

Neighbouring blocks of one document may fall into different splits: a held-out block is new text,
but its document's topic is not. The token blocks are cached by content, tokenizer and length.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from autodistill.config.schema import DatasetSpec
from autodistill.data.sources import FILE_BUILDERS, DataError, load_raw, pick_column
from autodistill.store.caches import cached
from autodistill.util.files import file_once
from autodistill.util.hashing import short_hash
from autodistill.util.paths import looks_local

TEXT_SUFFIXES = (".txt", ".md")
TEXT_COLUMNS = ("text",)
# Data files that make a folder a ``datasets`` folder rather than a folder of plain-text documents.
_DATA_SUFFIXES = {*FILE_BUILDERS, ".arrow"}


@dataclass
class Blocks:
    """N blocks of L tokens, every token real: a ``TokenBatches`` and the inputs of a ``TrainingSet``."""

    input_ids: torch.Tensor  # [N, L] int64
    lengths: torch.Tensor = field(init=False)  # [N], all L: no block is padded

    def __post_init__(self) -> None:
        n, length = self.input_ids.shape
        self.lengths = torch.full((n,), length, dtype=torch.long)

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    @property
    def tokens(self) -> int:
        return int(self.input_ids.numel())

    def batch(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        """``input_ids``, ``attention_mask`` (all ones) and ``labels`` (the inputs: the loss shifts them),
        each [batch, L]."""
        ids = self.input_ids[index]
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids}


@dataclass
class Corpus:
    """The documents of a dataset, before tokenisation."""

    documents: list[str]
    text_column: str  # "text" for plain-text files
    source: str  # where the documents came from, for the summary
    fingerprint: str  # identifies the documents' content, not their path


@dataclass
class LmData:
    """Training, validation and test blocks of one corpus and tokenizer."""

    train: Blocks  # the trial-visible training blocks
    validation: Blocks  # scored during the search (stopping, selection)
    test: Blocks  # scored once per front student: nothing is stopped, selected or tuned on it
    text_column: str
    source: str
    validation_source: str
    test_source: str
    documents: int
    tokens: int  # in all blocks (the stream less its tail)
    content_fingerprint: str  # the documents (``Corpus.fingerprint``)
    fingerprint: str  # the three splits' blocks: content, tokenizer, length and split together


@dataclass
class TextFacts:
    """What ``inspect_lm_text`` found, without tokenising (or with a tokenizer, when given one)."""

    corpus: Corpus
    characters: int
    blocks: int  # exact with a tokenizer, else an upper bound
    exact: bool  # whether ``blocks`` was counted with the tokenizer
    facts: dict[str, Any]  # logged on the study's parent run
    summary: str  # one line for ``validate``


def _is_text_folder(path: Path) -> bool:
    files = _visible_files(path)
    return any(f.suffix.lower() in TEXT_SUFFIXES for f in files) and not any(
        f.suffix.lower() in _DATA_SUFFIXES for f in files
    )


def _visible_files(path: Path) -> list[Path]:
    """Files under ``path``, recursively, in a stable order, skipping hidden files and folders (.git)."""
    return sorted(
        f
        for f in path.rglob("*")
        if f.is_file() and not any(p.startswith(".") for p in f.relative_to(path).parts)
    )


def _read(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")  # older corpora mix encodings; every byte decodes in latin-1


def _plain_text(spec: DatasetSpec, files: list[Path], source: str) -> Corpus:
    if spec.text_column not in (None, "text"):
        raise DataError(
            f"dataset.text_column: '{spec.text_column}' names a column, but --dataset {spec.path} is plain "
            "text (one document per file); unset dataset.text_column"
        )
    documents = [text for text in (_read(f) for f in files) if text.strip()]
    return Corpus(documents, "text", source, short_hash(documents))


def _column_text(spec: DatasetSpec) -> Corpus:
    raw = load_raw(spec)
    if spec.train_split not in raw:
        raise DataError(f"dataset.train_split: no split '{spec.train_split}'; splits are {', '.join(raw)}")
    rows = raw[spec.train_split]
    column = pick_column(list(rows.column_names), spec.text_column, TEXT_COLUMNS, "text_column")
    documents = []
    for i, value in enumerate(rows[column]):
        if value is not None and not isinstance(value, str):
            raise DataError(
                f"dataset.text_column: column '{column}' holds {type(value).__name__} values (row {i}), "
                "not text; name a column of strings"
            )
        if value and value.strip():  # empty rows (wikitext has many) separate nothing
            documents.append(value)
    source = f"column '{column}' of split '{spec.train_split}'"
    return Corpus(documents, column, source, short_hash(documents))


def read_corpus(spec: DatasetSpec) -> Corpus:
    """The documents of ``spec``, empty ones dropped; no tokenizer needed.

    Raises:
        DataError: no dataset, a missing file, split or text column, a column that is not text,
            a validation or test split named (blocks of the train split are held out instead),
            or no text at all.
    """
    for key in ("validation_split", "test_split"):
        if getattr(spec, key) is not None:
            raise DataError(
                f"dataset.{key}: causal-lm holds out blocks of dataset.train_split (dataset.holdout_fraction, "
                f"dataset.test_fraction) instead of named splits; unset dataset.{key}"
            )
    if not spec.path:
        return _column_text(spec)  # load_raw names the missing flag
    path = Path(spec.path)
    if path.is_file() and path.suffix.lower() in TEXT_SUFFIXES:
        corpus = _plain_text(spec, [path], path.name)
    elif path.is_file() and path.suffix.lower() not in FILE_BUILDERS:
        raise DataError(
            f"--dataset {spec.path}: unsupported file type '{path.suffix}'; use a .txt/.md file, a folder "
            f"of them, or one of {', '.join(FILE_BUILDERS)} with a text column"
        )
    elif path.is_dir() and _is_text_folder(path):
        files = [f for f in _visible_files(path) if f.suffix.lower() in TEXT_SUFFIXES]
        corpus = _plain_text(spec, files, f"{len(files)} .txt/.md files under {spec.path}")
    elif looks_local(spec.path) and not path.exists():
        raise DataError(f"--dataset {spec.path}: no such file or directory")
    else:
        corpus = _column_text(spec)
    if not corpus.documents:
        raise DataError(
            f"--dataset {spec.path}: no text ({corpus.source} holds only empty documents); give a corpus "
            "with text in it"
        )
    return corpus


def plan_split(blocks: int, spec: DatasetSpec, max_length: int, exact: bool = True) -> tuple[int, int]:
    """(validation blocks, test blocks) of ``blocks``, as the module docstring defines them.

    Raises:
        DataError: a split would be empty.
    """
    held = round(blocks * spec.holdout_fraction)
    test = round(held * spec.test_fraction)
    validation = held - test
    if min(test, validation, blocks - held) < 1:
        count = f"{blocks}" if exact else f"at most {blocks}"
        raise DataError(
            f"--dataset {spec.path}: {count} blocks of {max_length} tokens leave {blocks - held} train, "
            f"{validation} validation and {test} test blocks (dataset.holdout_fraction {spec.holdout_fraction:g}, "
            f"dataset.test_fraction {spec.test_fraction:g}); each needs at least one: give more text, "
            "lower train.max_length or change the fractions"
        )
    return validation, test


def inspect_lm_text(
    spec: DatasetSpec, max_length: int, tokenizer: Any = None, cache_dir: Path | None = None
) -> TextFacts:
    """Check the dataset and its text column, and that its blocks can be split, loading no model.

    Without ``tokenizer`` the number of blocks is bounded from above (a token covers at least one
    UTF-8 byte; a document adds at most an end-of-sequence token and a word-start marker), so only a
    corpus that is surely too small is refused; with it the count is exact: from the token stream that
    an earlier search cached under ``cache_dir``, else tokenised here and stored nowhere (this is a check:
    ``validate`` writes nothing).

    Raises:
        DataError: everything ``read_corpus`` raises; too few blocks for the splits.
    """
    corpus = read_corpus(spec)
    characters = sum(len(d) for d in corpus.documents)
    if tokenizer is not None:
        blocks = len(token_stream(corpus, tokenizer, cache_dir, write=False)) // max_length
    else:
        upper = sum(len(d.encode("utf-8")) for d in corpus.documents) + 2 * len(corpus.documents)
        blocks = upper // max_length
    validation, test = plan_split(blocks, spec, max_length, exact=tokenizer is not None)
    about = "" if tokenizer is not None else "≤ "
    facts = {
        "dataset.text_column": corpus.text_column,
        "dataset.documents": len(corpus.documents),
        "dataset.characters": characters,
    }
    summary = (
        f"{spec.path}: {corpus.source}, {len(corpus.documents)} documents, {characters:,} characters, "
        f"{about}{blocks} blocks of {max_length} tokens ({about}{validation} validation, {about}{test} test)"
    )
    return TextFacts(corpus, characters, blocks, tokenizer is not None, facts, summary)


def _eos(tokenizer: Any) -> int:
    eos = getattr(tokenizer, "eos_token_id", None)
    if eos is None:
        raise ValueError(
            f"--teacher {tokenizer.name_or_path}: its tokenizer has no end-of-sequence token to separate "
            "documents; set eos_token in its tokenizer_config.json"
        )
    return int(eos)


def _token_stream(documents: list[str], tokenizer: Any) -> Any:
    """The documents' tokens, each document followed by the end-of-sequence token, as one int32 array.

    ``datasets.map(batched=True)`` tokenises a thousand documents at a time into Arrow (4 bytes a token),
    never the Python lists of every token (about 36 bytes a token) of a whole-corpus call.
    """
    return _stream_of(_tokenised(documents, tokenizer, None))


def _tokenised(documents: list[str], tokenizer: Any, cache_file: str | None) -> Any:
    """A ``datasets.Dataset`` with one row per document: its token ids then the end-of-sequence token,
    written to ``cache_file`` (Arrow, read back memory-mapped) or kept in memory."""
    from datasets import Dataset, Features, Sequence, Value

    eos = _eos(tokenizer)

    def encode(batch: dict[str, list[str]]) -> dict[str, list[list[int]]]:
        # verbose=False: whole documents are longer than the model's context, and are meant to be
        ids = tokenizer(batch["text"], add_special_tokens=False, verbose=False)["input_ids"]
        return {"input_ids": [[*tokens, eos] for tokens in ids]}

    return Dataset.from_dict({"text": documents}).map(
        encode,
        batched=True,
        batch_size=1000,
        remove_columns=["text"],
        features=Features({"input_ids": Sequence(Value("int32"))}),
        cache_file_name=cache_file,
        keep_in_memory=cache_file is None,
        load_from_cache_file=False,  # ours decides: compute_once below, under a lock, by content
    )


def _stream_of(tokenised: Any) -> Any:
    """The concatenated token ids of a ``_tokenised`` dataset as a numpy int32 array: a view of its Arrow
    buffers (the memory-mapped file) when they are one chunk, else one copy."""
    import pyarrow as pa

    column = tokenised.data.column("input_ids")
    lists = column.chunk(0) if column.num_chunks == 1 else pa.concat_arrays(column.chunks)
    return lists.flatten().to_numpy(zero_copy_only=False)


def tokenizer_identity(tokenizer: Any) -> str:
    """Identifies a tokenizer by what it does (a fast tokenizer's full definition), not by its path."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    definition = backend.to_str() if backend is not None else [tokenizer.name_or_path, len(tokenizer)]
    return short_hash(definition, getattr(tokenizer, "eos_token_id", None))


def token_stream(corpus: Corpus, tokenizer: Any, cache_dir: Path | None, write: bool = True) -> Any:
    """The corpus's token stream (``_token_stream``), tokenised once per content and tokenizer: cached as
    ``lm-tokens-KEY.arrow`` under ``cache_dir`` and read back memory-mapped by every later ``validate``,
    ``search``, ``train`` and worker, whatever their block length.

    With ``write=False`` (``validate`` and the checks before a search, which write nothing) a cached
    stream is read, and a missing one is computed in memory and not stored.
    """
    from datasets import Dataset

    if cache_dir is None:
        return _token_stream(corpus.documents, tokenizer)
    path = cache_dir / f"lm-tokens-{short_hash([corpus.fingerprint, tokenizer_identity(tokenizer)])}.arrow"

    def load(p: Path) -> Any:
        return _stream_of(Dataset.from_file(str(p))) if p.is_file() else None

    if not write:
        stream = load(path)
        return stream if stream is not None else _token_stream(corpus.documents, tokenizer)
    # datasets writes the Arrow file itself, into the temporary that file_once renames into place
    return file_once(path, load, lambda tmp: _tokenised(corpus.documents, tokenizer, tmp))


def token_blocks(corpus: Corpus, tokenizer: Any, max_length: int, cache_dir: Path | None) -> torch.Tensor:
    """All blocks of the corpus, [N, max_length] int64 in stream order, cached under ``cache_dir``
    by content, tokenizer and length (the stream they are cut from is cached too: ``token_stream``)."""

    def compute() -> torch.Tensor:
        stream = token_stream(corpus, tokenizer, cache_dir)
        n = len(stream) // max_length
        return torch.from_numpy(stream[: n * max_length].astype("int64")).view(n, max_length)

    if cache_dir is None:
        return compute()
    key = [corpus.fingerprint, tokenizer_identity(tokenizer), max_length]
    return cached("lm-blocks", cache_dir, key, compute)


def tensor_hash(*tensors: torch.Tensor) -> str:
    digest = hashlib.sha256()
    for t in tensors:
        digest.update(str(tuple(t.shape)).encode())
        digest.update(t.contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def load_lm_text(
    spec: DatasetSpec, tokenizer: Any, max_length: int, train_examples: int, cache_dir: Path | None
) -> LmData:
    """Read, tokenise (cached), cut into blocks and split the corpus, as the module docstring says.

    Args:
        spec: the space's dataset section (``holdout_fraction``, ``test_fraction``, ``split_seed``,
            ``max_eval_examples`` caps the validation blocks).
        tokenizer: the teacher's.
        max_length: tokens per block.
        train_examples: training blocks a trial can see (fewer when the corpus has fewer).
        cache_dir: where the token blocks are cached; None to skip the cache.

    Raises:
        DataError: everything ``read_corpus`` raises; too few blocks for the splits.
        ValueError: the tokenizer has no end-of-sequence token.
    """
    import numpy as np

    corpus = read_corpus(spec)
    blocks = token_blocks(corpus, tokenizer, max_length, cache_dir)
    n_validation, n_test = plan_split(len(blocks), spec, max_length)
    order = torch.from_numpy(np.random.default_rng(spec.split_seed).permutation(len(blocks)))
    held = n_validation + n_test
    test, validation = order[:n_test], order[n_test:held]
    if spec.max_eval_examples:
        validation = validation[: spec.max_eval_examples]  # already a seeded shuffle
    train = order[held : held + train_examples]
    splits = [Blocks(blocks[index]) for index in (train, validation, test)]
    return LmData(
        train=splits[0],
        validation=splits[1],
        test=splits[2],
        text_column=corpus.text_column,
        source=corpus.source,
        validation_source=f"holdout {spec.holdout_fraction:g} of the blocks, less its test part",
        test_source=f"{spec.test_fraction:g} of the held-out blocks",
        documents=len(corpus.documents),
        tokens=blocks.numel(),
        content_fingerprint=corpus.fingerprint,
        fingerprint=tensor_hash(*(s.input_ids for s in splits)),
    )
