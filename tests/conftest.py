"""Shared fixtures: a tiny BERT teacher built from a config, and slices of the real SST-2 data."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here may reach a hub
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The tests press Ctrl-C on the processes they start, as a user at a terminal would. A suite started in the
# background (`make test &`, nohup) inherits SIGINT ignored, and so would every process it starts: Python
# then never raises KeyboardInterrupt. A handler of our own is reset to the default in each child.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SST2 = SHARED / "data" / "sst2"
MINILM_TEACHER = SHARED / "models" / "minilm-sst2-teacher"


def _slice(src: Path, dst: Path, rows: int) -> None:
    lines = src.read_text(encoding="utf-8").splitlines(keepends=True)
    dst.write_text("".join(lines[: rows + 1]), encoding="utf-8")


@pytest.fixture(scope="session")
def sst2_slice(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with the first 600 train and 200 validation rows of the real SST-2 TSVs."""
    out = tmp_path_factory.mktemp("sst2-slice")
    _slice(SST2 / "train.tsv", out / "train.tsv", 600)
    _slice(SST2 / "validation.tsv", out / "validation.tsv", 200)
    return out


@pytest.fixture(scope="session")
def tiny_teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer × 32 BERT classifier built from a config (random weights) with the MiniLM tokenizer."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    out = tmp_path_factory.mktemp("tiny-teacher")
    tokenizer = AutoTokenizer.from_pretrained(MINILM_TEACHER)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        num_labels=2,
        id2label={0: "negative", 1: "positive"},
        label2id={"negative": 0, "positive": 1},
    )
    config.architectures = ["BertForSequenceClassification"]
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def bpe_tokenizer(texts: list[str], vocab_size: int) -> Any:
    """A byte-level BPE tokenizer trained here, offline, on ``texts``, with ``<eos>`` as its end of text."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<eos>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>")


TINY_SPACE = """
student:
  depth: {type: int, low: 1, high: 2}
  width: {type: categorical, choices: [32, 64]}
  head_size: 16
  ffn_ratio: 2
distill:
  lambda: {type: float, low: 0.0, high: 1.0}
  temperature: {type: float, low: 1.0, high: 4.0}
  learning_rate: {type: float, low: 1.0e-4, high: 1.0e-3, log: true}
train:
  steps: 8
  batch_size: 16
  max_length: 32
latency:
  sequence_length: 32
  warmup: 2
  repeats: 5
search:
  early_stopping: {enabled: false}  # it turns on measured latency, noise at this size; tested on its own
"""


@pytest.fixture
def tiny_space(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_SPACE)
    return path


def search_args(space: Path, teacher: Path, data: Path, out: Path, *extra: str) -> list[str]:
    """``autodistill search`` arguments for a study in ``out`` (the same command a user types)."""
    return [
        "search",
        str(space),
        "--teacher",
        str(teacher),
        "--dataset",
        str(data),
        "--out",
        str(out),
        *extra,
    ]


def search_command(space: Path, teacher: Path, data: Path, out: Path, *extra: str) -> list[str]:
    """The whole command line, for a subprocess."""
    import sys

    return [sys.executable, "-m", "autodistill", *search_args(space, teacher, data, out, *extra)]


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory: pytest.TempPathFactory, tiny_teacher: Path, sst2_slice: Path) -> Path:
    """A finished 5-trial search with the tiny teacher (real Optuna, MLflow, training); its --out directory."""
    import subprocess

    root = tmp_path_factory.mktemp("tiny-study")
    space = root / "tiny.yaml"
    space.write_text(TINY_SPACE)
    out = root / "study"
    cmd = search_command(space, tiny_teacher, sst2_slice, out, "--trials", "5", "--seed", "0")
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


# `.ci/run` starts a real PostgreSQL server on loopback and sets this to a URL of a role allowed to
# create databases; elsewhere the PostgreSQL tests are skipped unless it is set.
POSTGRES = os.environ.get("AUTODISTILL_TEST_PG")


@contextmanager
def postgres_databases(*kinds: str) -> Iterator[list[str]]:
    """Fresh PostgreSQL databases, one URL per kind, dropped afterwards; fails in CI without a server."""
    if not POSTGRES:
        if os.environ.get("CI"):
            pytest.fail("CI must start PostgreSQL and set AUTODISTILL_TEST_PG (see .ci/run)")
        pytest.skip("set AUTODISTILL_TEST_PG=postgresql://user:password@127.0.0.1:5432 to run")
    import sqlalchemy

    names = [f"autodistill_{kind}_{uuid.uuid4().hex[:8]}" for kind in kinds]
    engine = sqlalchemy.create_engine(f"{POSTGRES}/postgres", isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        for name in names:
            connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    try:
        yield [f"{POSTGRES}/{name}" for name in names]
    finally:
        with engine.connect() as connection:
            for name in names:
                connection.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def http_server(cmd: list[str], url: str, log: Path, timeout: float = 180.0) -> Iterator[None]:
    """Start a server command in its own process group, wait until ``url`` answers 200, stop it after."""
    import urllib.request

    with log.open("w") as sink:
        proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                pytest.fail(f"{cmd[:4]} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"{url} did not answer within {timeout:.0f} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield
    finally:
        import signal

        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # the server and the workers it started
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
