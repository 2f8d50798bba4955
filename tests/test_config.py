"""Space parsing, --set overrides, and every validation error (all reported at once, with file and key)."""

from __future__ import annotations

from pathlib import Path

import pytest

from autodistill.config import Dist
from autodistill.config.spacefile import ConfigError, load_space

GOOD = """
student:
  depth: {type: int, low: 1, high: 4}
  width: {type: categorical, choices: [128, 256]}
distill:
  lambda: {type: float, low: 0.0, high: 1.0}
  temperature: 2.0
  learning_rate: {type: float, low: 1.0e-4, high: 1.0e-3, log: true}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return path


def problems(path: Path, overrides: list[str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_space(path, overrides or [])
    return info.value.problems


def test_good_space_parses_with_defaults(tmp_path: Path) -> None:
    space = load_space(write(tmp_path, GOOD)).config
    assert isinstance(space.student.depth, Dist) and space.student.depth.type == "int"
    assert space.distill.temperature == 2.0
    assert space.train.steps == 300 and space.search.objectives == ["accuracy", "latency_ms", "size_mb"]
    assert space.train_examples() == 300 * 32


def test_set_overrides_win_and_parse_as_yaml(tmp_path: Path) -> None:
    space = load_space(
        write(tmp_path, GOOD),
        ["train.steps=20", "student.width={type: categorical, choices: [64]}", "search.sampler=random"],
    ).config
    assert space.train.steps == 20 and space.search.sampler == "random"
    assert isinstance(space.student.width, Dist) and space.student.width.choices == [64]


def test_flags_win_over_yaml_teacher_and_dataset(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "teacher: from-yaml\ndataset: data-from-yaml\n")
    assert load_space(path).config.dataset.path == "data-from-yaml"
    space = load_space(path, teacher="from-flag", dataset="data-from-flag").config
    assert space.teacher == "from-flag" and space.dataset.path == "data-from-flag"


@pytest.mark.parametrize(
    ("edit", "key", "words"),
    [
        ("student:\n  depth: {type: int, low: 4, high: 1}\n", "student.depth", "low <= high"),
        ("student:\n  depth: 0\n", "student.depth", "depth must be"),
        (
            "student:\n  width: {type: categorical, choices: [100]}\n",
            "student.width",
            "multiple of head_size",
        ),
        ("student:\n  width: {type: int, low: 64, high: 256}\n", "student.width", "step: 64"),
        ("student:\n  width: {type: categorical, choices: []}\n", "student.width", "non-empty"),
        ("student:\n  widht: 128\n", "student.widht", "did you mean 'width'"),
        ("distill:\n  lambda: 1.5\n", "distill.lambda", "≤ 1.0"),
        ("distill:\n  lambda: {type: float, low: -0.1, high: 0.5}\n", "distill.lambda", "≥ 0.0"),
        ("distill:\n  temperature: 0\n", "distill.temperature", "> 0"),
        (
            "distill:\n  learning_rate: {type: float, low: 0.0, high: 0.1, log: true}\n",
            "distill.learning_rate",
            "low > 0",
        ),
        (
            "distill:\n  temperature: {type: float, low: 1.0}\n",
            "distill.temperature",
            "both 'low' and 'high'",
        ),
        (
            "distill:\n  temperature: {type: gaussian, low: 1, high: 2}\n",
            "distill.temperature.type",
            "'int', 'float' or 'categorical'",
        ),
        ("train:\n  steps: 0\n", "train.steps", "greater than 0"),
        ("train:\n  batch_size: many\n", "train.batch_size", "valid integer"),
        ("search:\n  sampler: annealing\n", "search.sampler", "'tpe'"),
        ("search:\n  objectives: [accuracy]\n", "search.objectives", "at least two"),
        ("search:\n  objectives: [accuracy, speed]\n", "search.objectives.1", "'latency_ms'"),
        ("search:\n  constraints: {latency_ms: {}}\n", "search.constraints.latency_ms", "'max' or 'min'"),
        ("latency:\n  threads: 0\n", "latency.threads", "greater than 0"),
        ("dataset:\n  holdout_fraction: 1.5\n", "dataset.holdout_fraction", "less than 1"),
        ("colour: blue\n", "colour", "unknown key"),
        (
            "search:\n  first_trials: [{depth: 2, width: 512}]\n",
            "(top level)",
            "search.first_trials[0].width: 512 is outside its distribution, choices [128, 256]",
        ),
        (
            "search:\n  first_trials: [{depth: 1}, {temperature: 3}]\n",
            "(top level)",
            "search.first_trials[1].temperature: fixed at 2.0 in this space; leave it out here",
        ),
        (
            "search:\n  first_trials: [{widht: 128}]\n",
            "(top level)",
            "search.first_trials[0].widht: not a value a trial asks for (searchable here: depth, width, lambda",
        ),
    ],
)
def test_each_mistake_names_file_and_key(tmp_path: Path, edit: str, key: str, words: str) -> None:
    import yaml

    merged = yaml.safe_load(GOOD)
    for section, values in yaml.safe_load(edit).items():
        if isinstance(values, dict) and isinstance(merged.get(section), dict):
            merged[section].update(values)
        else:
            merged[section] = values
    path = write(tmp_path, yaml.safe_dump(merged, allow_unicode=True))
    found = problems(path)
    assert len(found) == 1, found
    assert found[0].startswith(f"{path}: {key}: "), found
    assert words in found[0]


def test_every_error_is_reported_at_once(tmp_path: Path) -> None:
    text = GOOD.replace("high: 4}", "high: 4}\n  widht: 3").replace("temperature: 2.0", "temperature: -1")
    found = problems(write(tmp_path, text), ["train.stps=3", "oops"])
    assert any("student.widht" in p for p in found)
    assert any("distill.temperature" in p for p in found)
    assert any(p.startswith("--set: train.stps: unknown key 'stps'; did you mean 'steps'") for p in found)
    assert any(p.startswith("--set oops: expected KEY=VALUE") for p in found)
    assert len(found) == 4


def test_malformed_yaml_names_the_line(tmp_path: Path) -> None:
    (found,) = problems(write(tmp_path, "student:\n  depth: [1, 2\n"))
    assert "malformed YAML" in found and "line" in found


def test_missing_file_and_non_mapping(tmp_path: Path) -> None:
    (found,) = problems(tmp_path / "nope.yaml")
    assert "cannot read the space file" in found
    (found,) = problems(write(tmp_path, "- a\n- b\n"))
    assert "must be a YAML mapping" in found


def test_missing_required_sections(tmp_path: Path) -> None:
    found = problems(write(tmp_path, "train: {steps: 5}\n"))
    assert sorted(p.split(": ")[1] for p in found) == ["distill", "student"]


def test_set_through_a_scalar_is_refused(tmp_path: Path) -> None:
    found = problems(write(tmp_path, GOOD), ["distill.temperature.low=1"])
    assert found == [
        "--set distill.temperature.low=1: 'temperature' holds a value, not a section, so 'distill.temperature.low' cannot be set"
    ]


def test_yaml_is_read_safely(tmp_path: Path) -> None:
    (found,) = problems(write(tmp_path, "!!python/object/apply:os.system ['echo hacked']\n"))
    assert "malformed YAML" in found
