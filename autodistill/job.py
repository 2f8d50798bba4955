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

from autodistill.config import Dist, SpaceConfig
from autodistill.data import DataError, Encoded, TextData, encode, load_text_data
from autodistill.space import StudentArch
from autodistill.student import StudentBuildError, arch_fields, select_layers, teacher_arch
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
    """A student that starts from the teacher's weights selects from them, so it cannot be larger."""
    student = space.student
    inits = set(student.init_choices()) - {"random"}
    if not inits:
        return []
    named = " and ".join(sorted(inits))
    problems = []
    _, max_depth = student.depth.values_bound() if isinstance(student.depth, Dist) else (0, student.depth)
    if max_depth > teacher.depth:
        problems.append(
            f"student.depth: up to {int(max_depth)}, but student.init {named} copies layers of a "
            f"{teacher.depth}-layer teacher; lower depth to ≤ {teacher.depth}"
        )
    if "weight-select" in inits:
        _, max_width = student.width.values_bound() if isinstance(student.width, Dist) else (0, student.width)
        if student.head_size > teacher.head_size:
            problems.append(
                f"student.head_size: {student.head_size} exceeds the teacher's head size {teacher.head_size}; "
                f"weight-select selects dimensions within the teacher's heads: set head_size ≤ {teacher.head_size}"
            )
        if max_width > teacher.width or round(max_width * student.ffn_ratio) > teacher.ffn:
            problems.append(
                f"student.width/ffn_ratio: up to width {int(max_width)} and feed-forward "
                f"{round(max_width * student.ffn_ratio)}, but weight-select selects from the teacher's "
                f"{teacher.width} and {teacher.ffn}; keep them ≤ the teacher's"
            )
    return problems


def matched_layers(space: SpaceConfig, teacher: StudentArch) -> list[int]:
    """Every teacher layer that some student depth of the space is matched to (hidden-state loss)."""
    from autodistill.config import possible_ints

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
