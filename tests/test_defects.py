"""Issue 11 §4: half-precision teachers, label names, unsupported label kinds, what a resume must keep,
and security settings that only a flag may switch on. Real tiny models, real Optuna and MLflow."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import optuna
import pytest

from autodistill.cli import main
from tests.conftest import TINY_SPACE, search_args


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str]]:
    """Exit code and the error lines of one in-process command."""
    code = main(list(args))
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, [line for line in err.strip().splitlines() if line.startswith("autodistill: error: ")]


def copy_teacher(tiny_teacher: Path, dst: Path, **config: object) -> Path:
    """The tiny teacher copied to ``dst``, with ``config`` keys changed in its config.json."""
    shutil.copytree(tiny_teacher, dst)
    if config:
        path = dst / "config.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), **config}, indent=2))
    return dst


def save_teacher(model: object, tokenizer_from: Path, dst: Path) -> Path:
    from transformers import AutoTokenizer

    model.save_pretrained(dst)  # type: ignore[attr-defined]
    AutoTokenizer.from_pretrained(tokenizer_from).save_pretrained(dst)
    return dst


def one_study(space: Path, teacher: Path, data: Path, out: Path, *extra: str) -> optuna.Study:
    assert main(search_args(space, teacher, data, out, "--trials", "1", *extra)) == 0
    return optuna.load_study(study_name=space.stem, storage=f"sqlite:///{out / 'optuna.db'}")


# 1. half-precision teachers


@pytest.fixture
def half_teacher(tiny_teacher: Path, tmp_path: Path) -> Path:
    import torch
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tiny_teacher, dtype=torch.float32)
    return save_teacher(model.to(torch.float16), tiny_teacher, tmp_path / "half-teacher")


def test_float16_teacher_and_students_are_built_in_float32(half_teacher: Path) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification

    from autodistill.distill.student import StudentArch, build_student
    from autodistill.tasks.classification.teacher import inspect_teacher, load_teacher

    assert json.loads((half_teacher / "config.json").read_text()).get("dtype") == "float16"
    model, _ = load_teacher(str(half_teacher))
    assert model.dtype == torch.float32
    config = inspect_teacher(str(half_teacher)).config
    student = build_student(config, StudentArch(1, 32, 2, 64), 0, AutoModelForSequenceClassification)
    assert student.dtype == torch.float32


@pytest.mark.slow
def test_float16_teacher_search_completes(
    half_teacher: Path, tiny_space: Path, sst2_slice: Path, tmp_path: Path
) -> None:
    study = one_study(tiny_space, half_teacher, sst2_slice, tmp_path / "study")
    (trial,) = study.trials
    assert trial.state == optuna.trial.TrialState.COMPLETE, trial.user_attrs.get("fail_reason")
    assert all(math.isfinite(v) for v in trial.values)


def test_teacher_command_trains_a_float16_base_in_float32(half_teacher: Path) -> None:
    import torch

    from autodistill.deliver.teacher_prep import TeacherRecipe, _base_model

    model, _ = _base_model(TeacherRecipe(base=str(half_teacher)), ["negative", "positive"])
    assert model.dtype == torch.float32
    config = json.loads((half_teacher / "config.json").read_text())
    from_config = half_teacher.parent / "half-config.json"
    from_config.write_text(json.dumps(config))
    recipe = TeacherRecipe(base=str(from_config), tokenizer=str(half_teacher))
    model, _ = _base_model(recipe, ["negative", "positive"])
    assert model.dtype == torch.float32


def test_teacher_command_trains_a_regression_base_as_a_classifier(tiny_teacher: Path, tmp_path: Path) -> None:
    """Else `autodistill teacher` would write a teacher that the search then refuses."""
    from autodistill.deliver.teacher_prep import TeacherRecipe, _base_model

    base = copy_teacher(tiny_teacher, tmp_path / "base", problem_type="regression")
    model, _ = _base_model(TeacherRecipe(base=str(base)), ["negative", "positive"])
    assert model.config.problem_type == "single_label_classification"


# 2. integer labels with class names


def class_label_data(directory: Path, names: list[str], rows: int = 40) -> Path:
    """train/validation parquet files whose label column is a ClassLabel with ``names`` in this order;
    text 'good film N' carries the name 'positive', 'bad film N' the name 'negative'."""
    import datasets

    features = datasets.Features(
        {"sentence": datasets.Value("string"), "label": datasets.ClassLabel(names=names)}
    )
    directory.mkdir()
    for split in ("train", "validation"):
        texts = [f"{'good' if i % 2 else 'bad'} film {i}" for i in range(rows)]
        labels = [names.index("positive" if i % 2 else "negative") for i in range(rows)]
        data = datasets.Dataset.from_dict({"sentence": texts, "label": labels}, features=features)
        data.to_parquet(str(directory / f"{split}.parquet"))
    return directory


def test_class_label_ids_are_mapped_to_the_teachers_by_name(tmp_path: Path) -> None:
    from autodistill.config.schema import DatasetSpec
    from autodistill.tasks.classification.data import load_text_data

    path = class_label_data(tmp_path / "swapped", ["positive", "negative"])
    data = load_text_data(DatasetSpec(path=str(path)), 2, {"negative": 0, "positive": 1}, 40)
    for split in (data.train, data.validation):
        for text, label in zip(split.texts, split.labels, strict=True):
            assert label == (1 if text.startswith("good") else 0), (text, label)
    # names differing only in case are the same class (GLUE's 'negative' and many hub teachers' 'NEGATIVE')
    upper = load_text_data(DatasetSpec(path=str(path)), 2, {"NEGATIVE": 0, "POSITIVE": 1}, 40)
    assert upper.validation.labels == data.validation.labels
    # a teacher with default names (LABEL_0, ...) has nothing to match: ids are taken as they are
    plain = load_text_data(DatasetSpec(path=str(path)), 2, {"LABEL_0": 0, "LABEL_1": 1}, 40)
    assert all(
        label == (0 if t.startswith("good") else 1)
        for t, label in zip(plain.train.texts, plain.train.labels, strict=True)
    )


def test_class_names_the_teacher_lacks_are_refused(
    tiny_teacher: Path, tiny_space: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = class_label_data(tmp_path / "data", ["positive", "negative"])
    teacher = copy_teacher(
        tiny_teacher, tmp_path / "teacher", id2label={"0": "bad", "1": "good"}, label2id={"bad": 0, "good": 1}
    )
    code, lines = run_cli(
        capsys,
        "validate",
        str(tiny_space),
        "--teacher",
        str(teacher),
        "--dataset",
        str(data),
        "--out",
        str(tmp_path / "o"),
    )
    assert code == 2 and len(lines) == 1, lines
    assert "['positive', 'negative']" in lines[0] and "['bad', 'good']" in lines[0]


def test_swapped_class_names_pass_validation(
    tiny_teacher: Path, tiny_space: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = class_label_data(tmp_path / "data", ["positive", "negative"])
    code, lines = run_cli(
        capsys,
        "validate",
        str(tiny_space),
        "--teacher",
        str(tiny_teacher),
        "--dataset",
        str(data),
        "--out",
        str(tmp_path / "o"),
    )
    assert code == 0, lines


# 3. multi-label data, regression and multi-label teachers


@pytest.mark.parametrize("command", ["validate", "search"])
def test_multi_label_data_is_refused(
    command: str, tiny_teacher: Path, tiny_space: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "multi.jsonl"
    data.write_text("".join(json.dumps({"text": f"text {i}", "label": [i % 2, 1]}) + "\n" for i in range(30)))
    out = tmp_path / "out"
    code, lines = run_cli(
        capsys,
        command,
        str(tiny_space),
        "--teacher",
        str(tiny_teacher),
        "--dataset",
        str(data),
        "--out",
        str(out),
    )
    assert code == 2 and len(lines) == 1, lines
    assert "dataset column 'label'" in lines[0] and "multi-label" in lines[0]
    assert not out.exists()


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (
            {
                "problem_type": "regression",
                "num_labels": 1,
                "id2label": {"0": "LABEL_0"},
                "label2id": {"LABEL_0": 0},
            },
            "regression",
        ),
        ({"id2label": {"0": "score"}, "label2id": {"score": 0}}, "1 output"),
        ({"problem_type": "multi_label_classification"}, "multi-label"),
    ],
)
@pytest.mark.parametrize("command", ["validate", "search"])
def test_regression_and_multi_label_teachers_are_refused(
    command: str,
    config: dict[str, object],
    expected: str,
    tiny_teacher: Path,
    tiny_space: Path,
    sst2_slice: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    teacher = copy_teacher(tiny_teacher, tmp_path / "teacher", **config)
    out = tmp_path / "out"
    code, lines = run_cli(
        capsys,
        command,
        str(tiny_space),
        "--teacher",
        str(teacher),
        "--dataset",
        str(sst2_slice),
        "--out",
        str(out),
    )
    assert code == 2 and len(lines) == 1, lines
    assert f"--teacher {teacher}" in lines[0] and expected in lines[0]
    assert not out.exists()


# 4 and 5. what a resumed study must keep


@pytest.fixture
def own_inputs(tiny_teacher: Path, sst2_slice: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A teacher and a dataset of this test's own, free to change."""
    return copy_teacher(tiny_teacher, tmp_path / "teacher"), Path(
        shutil.copytree(sst2_slice, tmp_path / "data")
    )


@pytest.mark.slow
def test_resume_with_other_constraints_is_refused(
    own_inputs: tuple[Path, Path], tiny_space: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    teacher, data = own_inputs
    out = tmp_path / "study"
    one_study(tiny_space, teacher, data, out)
    capsys.readouterr()
    args = search_args(tiny_space, teacher, data, out, "--trials", "2")
    code, lines = run_cli(capsys, *args, "--set", "search.constraints.accuracy.min=0.9")
    assert code == 2 and len(lines) == 1, lines
    assert "search.constraints" in lines[0] and "--study" in lines[0]
    assert len(optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'optuna.db'}").trials) == 1


@pytest.mark.slow
def test_resume_with_a_retrained_teacher_or_changed_data_is_refused(
    own_inputs: tuple[Path, Path],
    tiny_teacher: Path,
    tiny_space: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification

    teacher, data = own_inputs
    out = tmp_path / "study"
    one_study(tiny_space, teacher, data, out)
    capsys.readouterr()
    args = search_args(tiny_space, teacher, data, out, "--trials", "2")

    # the same path, retrained: same file sizes, other weights
    original = {f.name: f.read_bytes() for f in teacher.iterdir() if f.is_file()}
    model = AutoModelForSequenceClassification.from_pretrained(teacher)
    with torch.no_grad():
        model.classifier.weight.add_(1.0)
    model.save_pretrained(teacher)
    code, lines = run_cli(capsys, *args)
    assert code == 2 and len(lines) == 1, lines
    assert "--teacher" in lines[0] and "changed" in lines[0]
    for name, content in original.items():  # the teacher as it was: the data check alone follows
        (teacher / name).write_bytes(content)

    validation = data / "validation.tsv"
    header, first, *rest = validation.read_text().splitlines(keepends=True)
    text, label = first.rstrip("\n").split("\t")
    validation.write_text("".join([header, f"{text}\t{1 - int(label)}\n", *rest]))
    code, lines = run_cli(capsys, *args)
    assert code == 2 and len(lines) == 1, lines
    assert "--dataset" in lines[0] and "changed" in lines[0]
    assert len(optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'optuna.db'}").trials) == 1


def test_teacher_fingerprint_follows_content_not_file_times(tiny_teacher: Path, tmp_path: Path) -> None:
    import os

    from autodistill.store.caches import teacher_fingerprint

    teacher = copy_teacher(tiny_teacher, tmp_path / "teacher")
    before = teacher_fingerprint(str(teacher))
    weights = next(teacher.glob("*.safetensors"))
    stat = weights.stat()
    content = bytearray(weights.read_bytes())
    content[-1] ^= 1  # one bit of one weight: same size
    weights.write_bytes(bytes(content))
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # and the same time
    assert teacher_fingerprint(str(teacher)) != before
    weights.write_bytes(bytes(content[:-1]) + bytes([content[-1] ^ 1]))
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a touch alone changes nothing
    assert teacher_fingerprint(str(teacher)) == before


# 6. security settings only a flag switches on


@pytest.mark.parametrize("key", ["trust_remote_code", "allow_pickle"])
def test_security_settings_in_a_space_file_are_refused(
    key: str, tiny_teacher: Path, sst2_slice: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    space = tmp_path / "shared.yaml"
    space.write_text(TINY_SPACE + f"{key}: true\n")
    out = tmp_path / "out"
    code, lines = run_cli(
        capsys,
        "validate",
        str(space),
        "--teacher",
        str(tiny_teacher),
        "--dataset",
        str(sst2_slice),
        "--out",
        str(out),
    )
    assert code == 2 and len(lines) == 1, lines
    flag = "--" + key.replace("_", "-")
    assert lines[0].startswith(f"autodistill: error: {space}: {key}:") and flag in lines[0]
    # false is harmless, and the flag is the way in
    space.write_text(TINY_SPACE + f"{key}: false\n")
    code, lines = run_cli(
        capsys, "validate", str(space), "--teacher", str(tiny_teacher), "--dataset", str(sst2_slice), flag
    )
    assert code == 0, lines


def test_a_teacher_file_is_hashed_once_per_process_until_it_changes(
    tiny_teacher: Path, tmp_path: Path
) -> None:
    """Every fingerprint of a worker's start names the teacher (issue 25: ~25 s a hash for 5 GB): the
    second and third read nothing."""
    from unittest import mock

    from autodistill.store import caches

    teacher = copy_teacher(tiny_teacher, tmp_path / "teacher")
    first = caches.teacher_fingerprint(str(teacher))
    with mock.patch.object(Path, "open", side_effect=AssertionError("read again")):
        assert caches.teacher_fingerprint(str(teacher)) == caches.teacher_fingerprint(str(teacher)) == first
    weights = next(teacher.glob("*.safetensors"))
    content = weights.read_bytes()
    weights.write_bytes(content[:-1] + bytes([content[-1] ^ 1]))
    assert caches.teacher_fingerprint(str(teacher)) != first
