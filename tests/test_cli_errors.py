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
    pickled = tmp_path / "pickled-teacher"
    import torch
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tiny_teacher)
    model.save_pretrained(pickled)
    for weights in pickled.glob("*.safetensors"):  # keep only a pickle checkpoint, as older tools wrote
        weights.unlink()
    torch.save(model.state_dict(), pickled / "pytorch_model.bin")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (pickled / name).write_bytes((tiny_teacher / name).read_bytes())
    spaces = {
        "malformed": TINY_SPACE.replace("steps: 8", "steps: [8"),
        "typo": TINY_SPACE.replace("ffn_ratio: 2", "ffn_raito: 2"),
        "indivisible": TINY_SPACE.replace("choices: [32, 64]", "choices: [32, 40]"),
        "lambda": TINY_SPACE.replace("lambda: {type: float, low: 0.0, high: 1.0}", "lambda: 1.5"),
        "temperature": TINY_SPACE.replace("{type: float, low: 1.0, high: 4.0}", "0"),
        "inverted": TINY_SPACE.replace(
            "depth: {type: int, low: 1, high: 2}", "depth: {type: int, low: 3, high: 2}"
        ),
        "empty": TINY_SPACE.replace("choices: [32, 64]", "choices: []"),
        "ffn": TINY_SPACE.replace("ffn_ratio: 2", "ffn_ratio: {type: categorical, choices: [0, 2]}"),
    }
    paths = {}
    for name, text in spaces.items():
        assert text != TINY_SPACE, name
        paths[f"space_{name}"] = tmp_path / f"{name}.yaml"
        paths[f"space_{name}"].write_text(text)
    return {
        **paths,
        "pickled": pickled,
        "space": space,
        "teacher": tiny_teacher,
        "data": sst2_slice,
        "encoder": not_classifier,
        "three": three_labels,
        "tmp": tmp_path,
    }


CASES = {
    "malformed YAML": (["{space_malformed}"], "{space_malformed}: line"),
    "unknown key, nearest suggested": (
        ["{space_typo}"],
        "student.ffn_raito: unknown key 'ffn_raito'; did you mean 'ffn_ratio'?",
    ),
    "feed-forward ratio not positive": (
        ["{space_ffn}"],
        "student.ffn_ratio: ffn_ratio must be > 0; got values from 0",
    ),
    "width not divisible by head size": (
        ["{space_indivisible}"],
        "student.width: width 40 is not a positive multiple of head_size 16",
    ),
    "lambda outside [0, 1]": (["{space_lambda}"], "distill.lambda: lambda must be ≥ 0.0 and ≤ 1.0"),
    "temperature not positive": (["{space_temperature}"], "distill.temperature: temperature must be > 0.0"),
    "low above high": (["{space_inverted}"], "student.depth: `low <= high` must hold"),
    "empty choices": (["{space_empty}"], "student.width: categorical needs a non-empty 'choices' list"),
    "missing split": (
        ["{space}", "--set", "dataset.validation_split=test"],
        "dataset.validation_split: no split 'test'",
    ),
    "pickle-only teacher": (
        ["{space}", "--teacher", "{pickled}"],
        "no safetensors weights, only pickle files",
    ),
    "unreachable storage": (
        ["{space}", "--storage", "postgresql://ann:s3cret@127.0.0.1:9/optuna"],
        "--storage postgresql://ann:***@127.0.0.1:9/optuna: cannot connect",
    ),
    "unreachable tracking server": (
        ["{space}", "--tracking-uri", "http://127.0.0.1:9"],
        "--tracking-uri http://127.0.0.1:9: no MLflow server answers",
    ),
    "unwritable artifact root": (
        ["{space}", "--artifact-root", "{space}/artifacts"],
        "--artifact-root {space}/artifacts: cannot write there",
    ),
    "missing space file": (["{tmp}/nope.yaml"], "nope.yaml: cannot read the space file"),
    "bad --set": (["{space}", "--set", "train.steps"], "--set train.steps: expected KEY=VALUE"),
    "unknown --set key": (["{space}", "--set", "train.stepz=3"], "did you mean 'steps'"),
    "missing teacher": (
        ["{space}", "--teacher", "{tmp}/no-teacher"],
        "--teacher {tmp}/no-teacher: no such directory",
    ),
    "not a classifier": (["{space}", "--teacher", "{encoder}"], "not a *ForSequenceClassification model"),
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
    "unwritable cache dir": (
        ["{space}", "--cache-dir", "{space}/cache"],
        "--cache-dir {space}/cache: cannot write there",
    ),
    "zero trials": (["{space}", "--trials", "0"], "--trials 0: must be at least 1"),
    "unknown init": (["{space}", "--set", "student.init=distil"], "student.init: Input should be 'random'"),
    "teacher-based student deeper than the teacher": (
        ["{space}", "--set", "student.init=teacher-layers", "--set", "student.depth=3"],
        "student.depth: up to 3, but teacher-layers needs a teacher layer per student layer and the teacher has 2",
    ),
    "weight-select student wider than the teacher": (
        ["{space}", "--set", "student.init=weight-select"],
        "student.width/head_size/ffn_ratio: weight-select selects from the teacher, so the student cannot be larger: "
        "width 64 > 32, heads 4 > 2, feed-forward 128 > 64",
    ),
    "negative hidden-state weight": (
        ["{space}", "--set", "distill.hidden_weight=-1"],
        "distill.hidden_weight: hidden_weight must be ≥ 0.0",
    ),
    "missing unlabeled text": (
        ["{space}", "--set", "dataset.unlabeled={tmp}/no-text.txt"],
        "dataset.unlabeled: {tmp}/no-text.txt: no such file or directory",
    ),
    "relation heads that do not divide the widths": (
        ["{space}", "--set", "distill.attention_weight=1", "--set", "distill.relation_heads=3"],
        "distill.relation_heads: student widths [32, 64] are not multiples of 3",
    ),
    "negative attention-relation weight": (
        ["{space}", "--set", "distill.attention_weight=-0.5"],
        "distill.attention_weight: attention_weight must be ≥ 0.0",
    ),
    "unknown latency backend": (
        ["{space}", "--set", "latency.backend=tensorrt"],
        "latency.backend: Input should be",
    ),
    "trust_remote_code switched on by --set": (
        ["{space}", "--set", "trust_remote_code=true"],
        "--set trust_remote_code=true: only the command-line flag --trust-remote-code may switch "
        "trust_remote_code on",
    ),
    "allow_pickle switched on by --set": (
        ["{space}", "--teacher", "{pickled}", "--set", "allow_pickle=yes"],
        "--set allow_pickle=yes: only the command-line flag --allow-pickle may switch allow_pickle on",
    ),
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
    assert "s3cret" not in done.stdout + done.stderr  # passwords are never printed
    assert not (world["tmp"] / "out").exists()  # nothing written


def test_at_least_fifteen_distinct_mistakes_are_covered() -> None:
    assert len(CASES) >= 15


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


def test_allow_pickle_is_the_explicit_way_in(world: dict[str, Path]) -> None:
    done = run(
        "validate",
        str(world["space"]),
        "--teacher",
        str(world["pickled"]),
        "--dataset",
        str(world["data"]),
        "--allow-pickle",
    )
    assert done.returncode == 0, done.stderr


def test_artifact_root_is_where_a_new_experiment_keeps_its_artifacts(tmp_path: Path) -> None:
    from autodistill.store.locations import artifact_location, check_artifact_root

    study_dir = tmp_path / "study"
    assert artifact_location(None, None, study_dir) == (study_dir / "mlartifacts").as_uri()
    assert artifact_location("postgresql://db/mlflow", "s3://bucket/runs/", study_dir) == "s3://bucket/runs"
    shared = tmp_path / "shared"
    assert artifact_location("postgresql://db/mlflow", str(shared), study_dir) == shared.as_uri()
    assert artifact_location("http://server:5000", None, study_dir) is None  # the server chooses
    assert check_artifact_root(str(shared), "postgresql://db/mlflow") is None
    problem = check_artifact_root(str(shared), "http://server:5000")
    assert problem and problem.startswith(f"--artifact-root {shared}: a tracking server chooses")
