"""One trial, end to end: build the student, distil it, measure it. No Optuna, no MLflow here."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from autodistill.config import SpaceConfig
from autodistill.job import Job
from autodistill.measure import accuracy, latency, model_size
from autodistill.space import TrialSettings
from autodistill.student import build_student
from autodistill.train import DistillRecipe, StepCallback, distill


@dataclass
class TrialOutcome:
    metrics: dict[str, float]  # the objective and reference metrics, MLflow and Optuna hold these
    losses: list[float]  # training loss per step
    timings: dict[str, float]  # seconds per phase
    student: Any


def recipe_for(settings: TrialSettings, space: SpaceConfig) -> DistillRecipe:
    t = space.train
    return DistillRecipe(
        steps=t.steps,
        batch_size=t.batch_size,
        learning_rate=settings.learning_rate,
        lam=settings.lam,
        temperature=settings.temperature,
        warmup_ratio=t.warmup_ratio,
        weight_decay=t.weight_decay,
        seed=t.seed,
    )


def measure_model(
    model: Any, validation: Any, space: SpaceConfig, device: str
) -> tuple[dict[str, float], dict[str, float]]:
    """Accuracy on ``validation``, size, and batch-1 CPU latency; returns (metrics, seconds per phase)."""
    timings: dict[str, float] = {}
    start = time.perf_counter()
    acc = accuracy(model, validation, space.train.eval_batch_size, device)
    timings["eval"] = time.perf_counter() - start
    start = time.perf_counter()
    size = model_size(model)
    timings["size"] = time.perf_counter() - start
    start = time.perf_counter()
    lat = space.latency
    timed = latency(model, lat.sequence_length, lat.threads, lat.warmup, lat.repeats)
    timings["latency"] = time.perf_counter() - start
    metrics = {
        "accuracy": acc,
        "latency_ms": timed.p50_ms,
        "latency_p95_ms": timed.p95_ms,
        "latency_threads": float(timed.threads),
        "latency_sequence_length": float(timed.sequence_length),
        "peak_memory_mb": timed.peak_memory_mb,
        "params": float(size.params),
        "params_no_embeddings": float(size.params_no_embeddings),
        "size_mb": size.size_bytes / 1e6,
    }
    return metrics, timings


def run_trial(settings: TrialSettings, job: Job, on_step: StepCallback | None = None) -> TrialOutcome:
    """Build a random-init student of ``settings.arch``, distil it for the job's budget against the
    cached teacher logits, and measure it."""
    space = job.space
    start = time.perf_counter()
    student = build_student(job.teacher_config, settings.arch, seed=space.train.seed)
    build_seconds = time.perf_counter() - start
    result = distill(student, job.train, job.teacher_logits, recipe_for(settings, space), job.device, on_step)
    metrics, timings = measure_model(student, job.validation, space, job.device)
    bad = [k for k, v in metrics.items() if not math.isfinite(v)]
    if bad:  # Optuna would fail such a trial after MLflow had it complete: fail it here, in both
        raise FloatingPointError(f"non-finite {', '.join(bad)} after training")
    return TrialOutcome(
        metrics=metrics,
        losses=result.losses,
        timings={"build": build_seconds, "train": result.seconds, **timings},
        student=student,
    )
