"""The job: check inputs without compute, then load the teacher, tokenise, and cache its logits.

``inspect_inputs`` is what ``validate`` runs and what ``search`` runs before anything heavy; every
problem is collected, so a user with three mistakes hears of three.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autodistill.config import SpaceConfig, possible_ints, upper_bound
from autodistill.data import DataError, Encoded, TextData, encode, load_text_data
from autodistill.space import StudentArch
from autodistill.student import (
    StudentBuildError,
    arch_fields,
    check_teacher_init,
    select_layers,
    teacher_arch,
)
from autodistill.teacher import (
    TeacherError,
    TeacherInfo,
    cached_teacher_logits,
    inspect_teacher,
    teacher_fingerprint,
)


@dataclass
class Inputs:
    teacher: TeacherInfo
    data: TextData


def inspect_inputs(space: SpaceConfig) -> tuple[Inputs | None, list[str]]:
    """Read the teacher's config and the dataset, and check they fit each other and the space."""
    problems: list[str] = []
    teacher: TeacherInfo | None = None
    try:
        teacher = inspect_teacher(space.teacher, space.trust_remote_code, space.allow_pickle)
        arch_fields(teacher.config)
    except (TeacherError, StudentBuildError) as exc:
        problems.append(str(exc))
    if teacher is not None and not problems:
        problems += _students_fit(space, teacher)
    data: TextData | None = None
    try:
        num_labels = teacher.num_labels if teacher else 10**9  # unknown: skip the range check
        label2id = teacher.label2id if teacher else {}
        data = load_text_data(space.dataset, num_labels, label2id, space.train_examples())
    except DataError as exc:
        problems.append(str(exc))
    if data is not None and space.teacher:
        problems += _holdout_leaks(space, data)
    if problems or teacher is None or data is None:
        return None, problems
    return Inputs(teacher=teacher, data=data), []


def _holdout_leaks(space: SpaceConfig, data: TextData) -> list[str]:
    """A teacher from `autodistill teacher` must not have trained on the search's validation holdout."""
    card_path = Path(str(space.teacher)) / "teacher_card.json"
    if not card_path.is_file() or not data.validation_source.startswith("holdout"):
        return []
    taught = json.loads(card_path.read_text()).get("recipe", {}).get("dataset", {})
    same_data = (
        taught.get("path") and Path(taught["path"]).resolve() == Path(str(space.dataset.path)).resolve()
    )
    if not same_data:
        return []
    fraction, seed = taught.get("holdout_fraction"), taught.get("split_seed", 0)
    if seed != space.dataset.split_seed or (
        fraction is not None and space.dataset.holdout_fraction > fraction
    ):
        return [
            f"dataset.holdout_fraction/split_seed: the teacher held out {fraction} with split_seed {seed}, so it "
            f"trained on part of this holdout ({space.dataset.holdout_fraction}, seed {space.dataset.split_seed}); "
            f"set dataset.holdout_fraction ≤ {fraction} and dataset.split_seed: {seed}"
        ]
    return []


def _students_fit(space: SpaceConfig, teacher: TeacherInfo) -> list[str]:
    """Inputs must fit the teacher's positions; teacher-based inits need students no larger than it."""
    limit = getattr(teacher.config, "max_position_embeddings", None)
    problems = _teacher_init_fits(space, teacher_arch(teacher.config))
    for key, length in (
        ("train.max_length", space.train.max_length),
        ("latency.sequence_length", space.latency.sequence_length),
    ):
        if limit and length > limit:
            problems.append(
                f"{key}: {length} exceeds the teacher's max_position_embeddings {limit}; lower it"
            )
    return problems


def _teacher_init_fits(space: SpaceConfig, teacher: StudentArch) -> list[str]:
    """Teacher-based inits select from the teacher's weights and the hidden-state loss matches each
    student layer to a teacher layer, so neither works for a student larger than the teacher."""
    student = space.student
    inits = sorted(set(student.init_choices()) - {"random"})
    uses = inits + (["the hidden-state loss"] if space.distill.uses_hidden_states() else [])
    problems = []
    max_depth = int(upper_bound(student.depth))
    if uses and max_depth > teacher.depth:
        problems.append(
            f"student.depth: up to {max_depth}, but {' and '.join(uses)} needs a teacher layer per student "
            f"layer and the teacher has {teacher.depth}; lower depth to ≤ {teacher.depth}"
        )
    if "weight-select" in inits:
        width = int(upper_bound(student.width))
        largest = StudentArch(
            min(max_depth, teacher.depth),
            width,
            max(1, width // student.head_size),
            round(width * student.ffn_ratio),
        )
        try:
            check_teacher_init(teacher, largest, "weight-select")
        except StudentBuildError as exc:
            problems.append(
                f"student.width/head_size/ffn_ratio: {exc} (the teacher has width {teacher.width}, "
                f"{teacher.heads} heads of {teacher.head_size}, feed-forward {teacher.ffn})"
            )
    return problems


def matched_layers(space: SpaceConfig, teacher: StudentArch) -> list[int]:
    """Every teacher layer that some student depth of the space is matched to (hidden-state loss)."""
    depths = [d for d in possible_ints(space.student.depth) if 1 <= d <= teacher.depth]
    how = space.student.layer_selection
    return sorted({layer for d in depths for layer in select_layers(teacher.depth, d, how)})


@dataclass
class Job:
    """Everything trials share: the teacher's config, tokenised data, cached teacher logits, reference metrics."""

    space: SpaceConfig
    teacher_config: Any
    data: TextData
    train: Encoded
    validation: Encoded
    teacher_logits: Any
    reference: dict[str, float]  # the teacher's own accuracy, latency and size
    device: str
    teacher: Any = None  # the model itself: teacher-based inits copy its weights
    teacher_states: Any = None  # TeacherStates, when the space can weigh the hidden-state loss

    @property
    def teacher_arch(self) -> StudentArch:
        return teacher_arch(self.teacher_config)


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def prepare_job(space: SpaceConfig, inputs: Inputs, cache_dir: Path, log: Callable[[str], None]) -> Job:
    """Load the teacher, tokenise once, compute (or reuse) its logits and reference metrics."""
    from autodistill.cache import atomic_json_save, load_json
    from autodistill.measure import predict_logits
    from autodistill.teacher import load_teacher
    from autodistill.trial import measure_model

    device = default_device()
    assert space.teacher is not None  # inspect_inputs checked it
    teacher, tokenizer = load_teacher(space.teacher, space.trust_remote_code, space.allow_pickle)
    max_length = space.train.max_length
    train = encode(inputs.data.train, tokenizer, max_length, cache_dir)
    validation = encode(inputs.data.validation, tokenizer, max_length, cache_dir)
    key = [teacher_fingerprint(space.teacher), inputs.data.fingerprint, max_length]

    def compute() -> Any:
        log(f"teacher: computing logits on {len(train)} training examples (once, cached) on {device}")
        return predict_logits(teacher, train, space.train.eval_batch_size, device)

    logits = cached_teacher_logits(compute, cache_dir, key)
    states = None
    if space.distill.uses_hidden_states():
        from autodistill.teacher_states import teacher_states

        layers = matched_layers(space, teacher_arch(teacher.config))
        states = teacher_states(
            teacher, train, layers, space.train.eval_batch_size, device, cache_dir, key, log
        )
    ref_key = hashlib.sha256(
        json.dumps([key, space.latency.model_dump(), len(validation)]).encode()
    ).hexdigest()[:16]
    ref_path = cache_dir / f"teacher-reference-{ref_key}.json"
    reference = load_json(ref_path)
    if reference is None:
        log("teacher: measuring its accuracy, size and latency (once, cached)")
        reference, _ = measure_model(teacher, validation, space, device)
        arch = teacher_arch(teacher.config)
        reference.update(depth=arch.depth, width=arch.width)
        atomic_json_save(reference, ref_path)
    return Job(
        space=space,
        teacher_config=teacher.config,
        data=inputs.data,
        train=train,
        validation=validation,
        teacher_logits=logits,
        reference=reference,
        device=device,
        teacher=teacher,
        teacher_states=states,
    )
