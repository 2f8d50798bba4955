"""The transfer set: text the teacher labels beyond the labelled training examples.

Two sources, both labelled by the teacher's logits alone (its top class stands in for a label in the
hard part of the loss):

- ``dataset.unlabeled``: the user's own text without labels;
- ``transfer.augment`` altered copies of each training text, TinyBERT's data augmentation (Jiao et al.
  2020): each whole word is replaced, with probability ``replace_prob``, by one of its ``neighbours``
  nearest words in the teacher's input embeddings. TinyBERT also asks a masked-LM head for single-piece
  words; a fine-tuned classifier has none, so the embedding neighbours serve for every word. A neighbour
  may flip the sentiment ("good" → "bad"): that is why the teacher relabels every copy.

Words are replaced in token ids, not in text: a copy is exactly what the student will read, and no
detokenise-retokenise round trip can change it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from autodistill.config.schema import DatasetSpec, SpaceConfig
from autodistill.data.sources import DataError, load_raw, pick_column
from autodistill.store.caches import cached, teacher_fingerprint
from autodistill.tasks.classification.data import TEXT_COLUMNS, Split, TextData
from autodistill.tasks.classification.encoding import Encoded, encode
from autodistill.tasks.classification.evaluation import predict_logits
from autodistill.util.errors import first_line
from autodistill.util.hashing import short_hash

# What marks a token that starts a new word in byte-level BPE (RoBERTa, GPT-2) and SentencePiece.
WORD_START_MARKERS = ("Ġ", "▁")


@dataclass
class WordTable:
    """The teacher vocabulary's whole words and each one's nearest words."""

    rows: torch.Tensor  # [vocab] each token's row in ``neighbours``, -1 when it is not a replaceable word
    neighbours: torch.Tensor  # [words, k] token ids of each word's nearest words (itself excluded)
    continues: torch.Tensor  # [vocab] bool: the token continues the word of the token before it


def token_roles(tokenizer: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """(replaceable [vocab] bool, continues [vocab] bool) from the tokens' spelling.

    A replaceable token is a whole alphabetic word on its own. WordPiece marks continuations with
    ``##``; BPE and SentencePiece mark word starts with ``Ġ``/``▁`` instead.

    Raises:
        DataError: the tokenizer marks no word boundaries that way.
    """
    tokens = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    special = set(tokenizer.all_special_ids)
    tokens = ["" if i in special or token is None else str(token) for i, token in enumerate(tokens)]
    if any(t.startswith("##") for t in tokens):
        continues = [t.startswith("##") for t in tokens]
        words = [t.isalpha() for t in tokens]
    else:
        counts = {m: sum(t.startswith(m) for t in tokens) for m in WORD_START_MARKERS}
        marker = max(counts, key=lambda m: counts[m])
        if not counts[marker]:
            raise DataError(
                "transfer.augment: the teacher's tokenizer marks no word boundaries (## or Ġ/▁), so words "
                "cannot be replaced; set transfer.augment: 0"
            )
        continues = [bool(t) and not t.startswith(marker) and t[0].isalnum() for t in tokens]
        words = [t.startswith(marker) and t[1:].isalpha() for t in tokens]
    return torch.tensor(words), torch.tensor(continues)


@torch.no_grad()
def word_table(tokenizer: Any, embeddings: torch.Tensor, k: int, chunk: int = 2048) -> WordTable:
    """Each whole word's ``k`` nearest whole words by cosine similarity of the teacher's input embeddings
    (``embeddings``: [vocab, width]), computed in chunks of rows to bound memory."""
    replaceable, continues = token_roles(tokenizer)
    replaceable = replaceable[: embeddings.shape[0]]
    ids = torch.nonzero(replaceable).flatten()
    if len(ids) <= k:
        raise DataError(
            f"transfer.neighbours: {k}, but the teacher's vocabulary has only {len(ids)} whole words; "
            "lower transfer.neighbours"
        )
    unit = torch.nn.functional.normalize(embeddings[ids].float(), dim=-1)
    neighbours = torch.empty(len(ids), k, dtype=torch.long)
    for start in range(0, len(ids), chunk):
        similarity = unit[start : start + chunk] @ unit.T
        rows = torch.arange(start, min(start + chunk, len(ids)))
        similarity[rows - start, rows] = -2.0  # never a word's own neighbour
        neighbours[rows] = ids[similarity.topk(k, dim=-1).indices]
    rows_of = torch.full((len(replaceable),), -1, dtype=torch.long)
    rows_of[ids] = torch.arange(len(ids))
    return WordTable(rows=rows_of, neighbours=neighbours, continues=continues)


def augmented_copies(
    tokens: Encoded, table: WordTable, copies: int, replace_prob: float, seed: int
) -> tuple[Encoded, torch.Tensor]:
    """``copies`` altered copies of every example, less those in which no word was replaced (a copy
    equal to its source adds nothing). Returns (the copies, with labels -1 until the teacher's are set;
    the index of each copy's source example)."""
    generator = torch.Generator().manual_seed(seed)
    ids = tokens.input_ids
    real = torch.arange(ids.shape[1])[None, :] < tokens.lengths[:, None]
    rows = torch.where(real, table.rows[ids], -1)
    next_continues = torch.zeros_like(real)
    next_continues[:, :-1] = table.continues[ids[:, 1:]] & real[:, 1:]
    whole_words = (rows >= 0) & ~next_continues  # a word followed by its own next piece is not whole
    out, sources = [], []
    for _ in range(copies):
        replace = whole_words & (torch.rand(ids.shape, generator=generator) < replace_prob)
        choice = torch.randint(table.neighbours.shape[1], ids.shape, generator=generator)
        altered = torch.where(replace, table.neighbours[rows.clamp(min=0), choice], ids)
        changed = torch.nonzero(replace.any(dim=1)).flatten()
        out.append(altered[changed])
        sources.append(changed)
    source = torch.cat(sources)
    copied = Encoded(
        input_ids=torch.cat(out), lengths=tokens.lengths[source], labels=torch.full((len(source),), -1)
    )
    return copied, source


def joined(parts: list[Encoded]) -> Encoded:
    """Examples of several ``Encoded`` sets as one, right-padded to the longest of them all."""
    width = max(int(p.input_ids.shape[1]) for p in parts)
    ids = torch.cat([torch.nn.functional.pad(p.input_ids, (0, width - p.input_ids.shape[1])) for p in parts])
    return Encoded(
        input_ids=ids,
        lengths=torch.cat([p.lengths for p in parts]),
        labels=torch.cat([p.labels for p in parts]),
    )


def seeded_subset(data: Encoded, limit: int | None, seed: int) -> Encoded:
    """At most ``limit`` of ``data``'s examples, a seeded random choice (all of them without a limit)."""
    if limit is None or len(data) <= limit:
        return data
    keep = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:limit]
    return Encoded(input_ids=data.input_ids[keep], lengths=data.lengths[keep], labels=data.labels[keep])


def load_unlabeled(path_text: str, text_column: str | None) -> list[str]:
    """The texts of ``dataset.unlabeled``: a .txt file's non-empty lines, or a data file's (or a
    directory's) text column, from its first split.

    Raises:
        DataError: no such file, an unreadable one, no text column, or no text at all.
    """
    path = Path(path_text)
    key = f"dataset.unlabeled: {path_text}"
    if not path.exists():
        raise DataError(f"{key}: no such file or directory")
    if path.is_file() and path.suffix.lower() == ".txt":
        try:
            texts = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"{key}: cannot read it ({first_line(exc)}); give UTF-8 text") from None
        texts = [t for t in texts if t]
    else:
        texts = _texts_of_dataset(path_text, text_column)
    if not texts:
        raise DataError(f"{key}: holds no text; give one text per line, or remove dataset.unlabeled")
    return texts


def _texts_of_dataset(path_text: str, text_column: str | None) -> list[str]:
    raw = load_raw(DatasetSpec(path=path_text), source="dataset.unlabeled:")
    rows = raw[next(iter(raw))]
    column = pick_column(list(rows.column_names), text_column, TEXT_COLUMNS, "text_column")
    return [str(t).strip() for t in rows[column] if t is not None and str(t).strip()]


@dataclass
class TransferSet:
    """Examples for the student with the teacher's logits and, as labels, its top classes."""

    tokens: Encoded
    logits: torch.Tensor  # [examples, classes]
    key: str  # identifies the set (the training examples it copies, the unlabeled text, the settings)


def transfer_set(
    space: SpaceConfig,
    data: TextData,
    train: Encoded,
    teacher: Any,
    tokenizer: Any,
    cache_dir: Path,
    device: str,
    log: Callable[[str], None],
) -> TransferSet:
    """Build the space's transfer set from the training examples ``train`` and ``data.unlabeled``, and
    label it with the teacher: once per key, cached with its logits (the copies are seeded by
    ``dataset.split_seed``, so every worker and every later run draws the same ones)."""

    spec, seed = space.transfer, space.dataset.split_seed
    key = short_hash(
        [
            teacher_fingerprint(str(space.teacher)),
            hashlib.sha256(train.input_ids.numpy().tobytes()).hexdigest(),  # the examples copied
            data.unlabeled,
            spec.model_dump(mode="json", exclude={"in_trials"}),
            seed,
        ]
    )

    def compute() -> dict[str, torch.Tensor]:
        parts = []
        if spec.augment:
            table = word_table(
                tokenizer, teacher.get_input_embeddings().weight.detach().cpu(), spec.neighbours
            )
            copies, source = augmented_copies(train, table, spec.augment, spec.replace_prob, seed)
            log(
                f"transfer: {len(copies)} altered copies of {len(train)} training texts, e.g. "
                f"{_shown(tokenizer, train, int(source[0]))!r} → {_shown(tokenizer, copies, 0)!r}"
            )
            parts.append(copies)
        if data.unlabeled:
            unlabeled = Split(texts=data.unlabeled, labels=[-1] * len(data.unlabeled))
            parts.append(encode(unlabeled, tokenizer, space.train.max_length, cache_dir))
            log(f"transfer: {len(data.unlabeled)} unlabeled texts from {space.dataset.unlabeled}")
        tokens = seeded_subset(joined(parts), spec.max_examples, seed)
        log(f"teacher: labelling the transfer set, {len(tokens)} examples (once, cached) on {device}")
        logits = predict_logits(teacher, tokens, space.train.eval_batch_size, device)
        return {"input_ids": tokens.input_ids, "lengths": tokens.lengths, "logits": logits}

    stored = cached("transfer-set", cache_dir, [key], compute, log=log)
    logits = stored["logits"]
    tokens = Encoded(input_ids=stored["input_ids"], lengths=stored["lengths"], labels=logits.argmax(dim=-1))
    return TransferSet(tokens=tokens, logits=logits, key=key)


def _shown(tokenizer: Any, tokens: Encoded, row: int) -> str:
    return str(tokenizer.decode(tokens.input_ids[row, : int(tokens.lengths[row])], skip_special_tokens=True))
