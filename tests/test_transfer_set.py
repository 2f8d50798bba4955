"""The transfer set: whole words replaced by their neighbours in the teacher's embeddings, unlabeled text,
and both labelled by the teacher for `autodistill train` (and trials, when asked)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mlflow import MlflowClient
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from autodistill.data.sources import DataError
from autodistill.tasks.classification.data import Split
from autodistill.tasks.classification.encoding import encode
from autodistill.tasks.classification.transfer import (
    WordTable,
    augmented_copies,
    joined,
    load_unlabeled,
    token_roles,
    word_table,
)
from tests.conftest import MINILM_TEACHER, TINY_SPACE, bpe_tokenizer, search_command

TEXTS = [
    "a gorgeous , witty , seductive movie .",
    "unflinchingly bleak and desperate",
    "it 's a charming and often affecting journey .",
]


@pytest.fixture(scope="module")
def tokenizer() -> object:
    return AutoTokenizer.from_pretrained(MINILM_TEACHER)


def test_neighbours_in_the_real_teachers_embeddings_are_whole_words(tokenizer: object) -> None:
    teacher = AutoModelForSequenceClassification.from_pretrained(MINILM_TEACHER)
    table = word_table(tokenizer, teacher.get_input_embeddings().weight.detach(), k=15)
    ids = tokenizer.convert_tokens_to_ids  # type: ignore[attr-defined]
    film = tokenizer.convert_ids_to_tokens(table.neighbours[table.rows[ids("film")]].tolist())  # type: ignore[attr-defined]
    assert "movie" in film and "film" not in film
    neighbours = table.neighbours.flatten().unique()
    assert bool((table.rows[neighbours] >= 0).all())  # every neighbour is itself a whole word
    assert table.rows[ids("##ing")] == -1 and table.rows[ids("[CLS]")] == -1 and table.rows[ids(",")] == -1


def constant_table(tokenizer: object, replacement: str, k: int = 3) -> WordTable:
    """Every whole word's neighbours are ``replacement``: replaced positions are easy to see."""
    replaceable, continues = token_roles(tokenizer)
    rows = torch.full((len(replaceable),), -1, dtype=torch.long)
    rows[replaceable] = torch.arange(int(replaceable.sum()))
    word = tokenizer.convert_tokens_to_ids(replacement)  # type: ignore[attr-defined]
    return WordTable(rows=rows, neighbours=torch.full((int(replaceable.sum()), k), word), continues=continues)


def test_copies_replace_whole_words_only(tokenizer: object) -> None:
    tokens = encode(Split(TEXTS, [1, 0, 1]), tokenizer, 32, None)
    table = constant_table(tokenizer, "zebra")
    copies, source = augmented_copies(tokens, table, copies=4, replace_prob=0.5, seed=0)
    zebra = tokenizer.convert_tokens_to_ids("zebra")  # type: ignore[attr-defined]
    assert len(copies) > 0 and torch.equal(copies.lengths, tokens.lengths[source])
    for row, example in enumerate(source.tolist()):
        before = tokens.input_ids[example, : tokens.lengths[example]]
        after = copies.input_ids[row, : copies.lengths[row]]
        changed = before != after
        assert changed.any()  # a copy equal to its source is dropped
        assert bool((after[changed] == zebra).all())
        words = tokenizer.convert_ids_to_tokens(before[changed].tolist())  # type: ignore[attr-defined]
        assert all(w.isalpha() for w in words)  # never punctuation, [CLS]/[SEP] or a ## piece
        # "unflinchingly" is several pieces: no piece of it is ever replaced
        pieces = tokenizer.convert_ids_to_tokens(before.tolist())  # type: ignore[attr-defined]
        for i, next_piece in enumerate(pieces[1:]):
            if next_piece.startswith("##"):
                assert not changed[i]
    again, _ = augmented_copies(tokens, table, copies=4, replace_prob=0.5, seed=0)
    assert torch.equal(again.input_ids, copies.input_ids)  # seeded: every worker draws the same copies
    every, _ = augmented_copies(tokens, table, copies=1, replace_prob=1.0, seed=1)
    shown = tokenizer.decode(every.input_ids[0], skip_special_tokens=True)  # type: ignore[attr-defined]
    assert (
        len(every) == 3 and shown == "zebra zebra, zebra, zebra zebra."
    )  # "a gorgeous, witty, seductive movie."


def test_joined_pads_to_the_longest() -> None:
    a = encode(Split(["short"], [0]), AutoTokenizer.from_pretrained(MINILM_TEACHER), 32, None)
    b = encode(Split([TEXTS[2]], [1]), AutoTokenizer.from_pretrained(MINILM_TEACHER), 32, None)
    both = joined([a, b])
    assert both.input_ids.shape == (2, b.input_ids.shape[1]) and both.lengths.tolist() == [
        3,
        int(b.lengths[0]),
    ]
    assert torch.equal(both.batch(torch.tensor([0]))["input_ids"], a.input_ids)


def test_word_roles_of_a_bpe_tokenizer_and_one_without_word_marks() -> None:
    bpe = bpe_tokenizer([" ".join(TEXTS)] * 20 + ["the film was good and the movie was bad"] * 20, 400)
    replaceable, continues = token_roles(bpe)
    words = [
        t for t, r in zip(bpe.convert_ids_to_tokens(list(range(len(bpe)))), replaceable, strict=True) if r
    ]
    assert words and all(w.startswith("Ġ") and w[1:].isalpha() for w in words)
    assert not continues[bpe.convert_tokens_to_ids("Ġmovie")]

    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    plain = Tokenizer(models.WordLevel({"good": 0, "bad": 1, "[UNK]": 2}, unk_token="[UNK]"))
    plain.pre_tokenizer = pre_tokenizers.Whitespace()
    with pytest.raises(
        DataError, match=r"transfer\.augment: the teacher's tokenizer marks no word boundaries"
    ):
        token_roles(PreTrainedTokenizerFast(tokenizer_object=plain, unk_token="[UNK]"))


def test_unlabeled_text_from_a_text_file_or_a_table(tmp_path: Path) -> None:
    lines = tmp_path / "reviews.txt"
    lines.write_text("a fine film\n\n  dull and long  \n", encoding="utf-8")
    assert load_unlabeled(str(lines), None) == ["a fine film", "dull and long"]
    table = tmp_path / "reviews.tsv"
    table.write_text("id\tsentence\n1\tgreat fun\n2\tnot worth it\n", encoding="utf-8")
    assert load_unlabeled(str(table), None) == ["great fun", "not worth it"]
    with pytest.raises(DataError, match=r"dataset.unlabeled: .*nope.txt: no such file or directory"):
        load_unlabeled(str(tmp_path / "nope.txt"), None)
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(DataError, match="holds no text"):
        load_unlabeled(str(tmp_path / "empty.txt"), None)
    (tmp_path / "reviews.xml").write_text("<r/>")
    with pytest.raises(DataError, match=r"unsupported file type '\.xml'"):
        load_unlabeled(str(tmp_path / "reviews.xml"), None)


TRANSFER_SPACE = (
    TINY_SPACE
    + """
transfer:
  augment: 2
  in_trials: true
"""
)


@pytest.mark.slow
def test_search_and_train_use_the_transfer_set(tiny_teacher: Path, sst2_slice: Path, tmp_path: Path) -> None:
    """Trials (in_trials) and `autodistill train` train on the labelled examples, their altered copies and
    the unlabeled text, all labelled by the teacher once; a second run reuses the cached set."""
    unlabeled = tmp_path / "unlabeled.txt"
    unlabeled.write_text("".join(f"an unlabeled review number {i}\n" for i in range(40)), encoding="utf-8")
    space = tmp_path / "space.yaml"
    space.write_text(TRANSFER_SPACE)
    out = tmp_path / "study"
    cmd = search_command(
        space, tiny_teacher, sst2_slice, out, "--trials", "1", "--set", f"dataset.unlabeled={unlabeled}"
    )
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (
        "transfer: 40 unlabeled texts" in done.stdout
        and "altered copies of 128 training texts" in done.stdout
    )

    def train(to: str) -> subprocess.CompletedProcess[str]:
        args = ["train", "0", "--out", str(out), "--steps", "4", "--to", str(tmp_path / to)]
        return subprocess.run(
            [sys.executable, "-m", "autodistill", *args], capture_output=True, text=True, timeout=600
        )

    first = train("full")
    assert first.returncode == 0, first.stderr[-3000:]
    assert "teacher: labelling the transfer set" in first.stdout
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    (run,) = client.search_runs(
        [client.get_experiment_by_name("space").experiment_id], "tags.`autodistill.role` = 'full-training'"
    )
    examples = int(run.data.params["train_examples"])
    assert examples > 4 * 16 + 40  # the run's labelled subset, its copies and the unlabeled texts
    second = train("again")
    assert second.returncode == 0 and "teacher: labelling the transfer set" not in second.stdout
    assert "cache: reused" in second.stdout and "transfer-set-" in second.stdout
