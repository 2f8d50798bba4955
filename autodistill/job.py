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

from autodistill.config import SpaceConfig
from autodistill.data import DataError, Encoded, TextData, encode, load_text_data
from autodistill.student import StudentBuildError, arch_fields, teacher_arch
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
    """Widths must split into heads; a student larger than the teacher is allowed but pointless."""
    limit = getattr(teacher.config, "max_position_embeddings", None)
    problems = []
    for key, length in (
        ("train.max_length", space.train.max_length),
        ("latency.sequence_length", space.latency.sequence_length),
    ):
        if limit and length > limit:
            problems.append(
                f"{key}: {length} exceeds the teacher's max_position_embeddings {limit}; lower it"
            )
    return problems


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
    )
