"""Bad input: one line per problem naming the file/key/flag, exit code 2, no traceback, nothing written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TINY_SPACE


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "autodistill", *args], capture_output=True, text=True, timeout=300, cwd=cwd
    )


@pytest.fixture
def world(tmp_path: Path, tiny_teacher: Path, sst2_slice: Path) -> dict[str, Path]:
    space = tmp_path / "space.yaml"
    space.write_text(TINY_SPACE)
    not_classifier = tmp_path / "encoder"
    from transformers import BertConfig, BertModel

    BertModel(
        BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    ).save_pretrained(not_classifier)
    three_labels = tmp_path / "three.tsv"
    three_labels.write_text("sentence\tlabel\n" + "".join(f"text {i}\t{i % 3}\n" for i in range(30)))
    return {
        "space": space,
        "teacher": tiny_teacher,
        "data": sst2_slice,
        "encoder": not_classifier,
        "three": three_labels,
        "tmp": tmp_path,
    }


CASES = {
    "missing space file": (["{tmp}/nope.yaml"], "nope.yaml: cannot read the space file"),
    "bad --set": (["{space}", "--set", "train.steps"], "--set train.steps: expected KEY=VALUE"),
    "unknown --set key": (["{space}", "--set", "train.stepz=3"], "did you mean 'steps'"),
    "missing teacher": (
        ["{space}", "--teacher", "{tmp}/no-teacher"],
        "--teacher {tmp}/no-teacher: no such directory",
    ),
    "not a classifier": (["{space}", "--teacher", "{encoder}"], "not a sequence classifier"),
    "missing dataset": (
        ["{space}", "--dataset", "{tmp}/no-data"],
        "--dataset {tmp}/no-data: no such file or directory",
    ),
    "missing column": (
        ["{space}", "--set", "dataset.text_column=review"],
        "dataset.text_column: column 'review' not found",
    ),
    "labels out of range": (["{space}", "--dataset", "{three}"], "outside the teacher's 2 classes"),
    "unwritable out": (["{space}", "--out", "{space}/study"], "--out {space}/study: cannot write there"),
    "zero trials": (["{space}", "--trials", "0"], "--trials 0: must be at least 1"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_clear_line(world: dict[str, Path], case: str) -> None:
    args, expected = CASES[case]
    defaults = {"--teacher": "{teacher}", "--dataset": "{data}", "--out": "{tmp}/out"}
    for flag, value in defaults.items():
        if flag not in args:
            args = [*args, flag, value]
    filled = [a.format(**world) for a in args]
    done = run("search", *filled)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("autodistill: error: ")
    assert expected.format(**world) in lines[0]
    assert not (world["tmp"] / "out").exists()  # nothing written


def test_several_mistakes_are_reported_together(world: dict[str, Path]) -> None:
    done = run(
        "validate",
        str(world["space"]),
        "--teacher",
        str(world["tmp"] / "none"),
        "--set",
        "distill.lambda=3",
        "--set",
        "train.steps=-1",
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 2 and "distill.lambda" in done.stderr and "train.steps" in done.stderr


def test_help_on_every_command() -> None:
    for args in (["--help"], ["search", "--help"], ["validate", "--help"]):
        done = run(*args)
        assert done.returncode == 0 and "usage: autodistill" in done.stdout
    assert "--trials" in run("search", "--help").stdout and "in total" in run("search", "--help").stdout
