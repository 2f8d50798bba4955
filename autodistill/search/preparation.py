"""Preparing a study once: load the teacher, let the task tokenise and cache the teacher's targets,
cache its hidden states when the space can weigh them, and measure the teacher as the reference.

Then the teacher waits on the CPU: trials read its caches, not the model, and N workers sharing one GPU
must not keep N idle teachers there. Its passes during trials are on the CPU anyway (latency timed
beside a student's, weights copied into a student), except when its hidden states are computed live at
every step: then it stays on the training device.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autodistill.config.schema import SpaceConfig, possible_ints
from autodistill.distill.student import StudentArch, select_layers, teacher_arch
from autodistill.distill.teacher_states import TeacherStates, teacher_states
from autodistill.measure.cost import measure_cost
from autodistill.measure.machine import machine_name
from autodistill.store.caches import cached
from autodistill.tasks import Task, TaskData, TaskInputs, get_task
from autodistill.util.devices import configure_device, default_device


@dataclass
class Job:
    """Everything trials share: the task, the teacher, tokenised data with its cached targets, and the
    teacher's reference metrics."""

    space: SpaceConfig
    task: Task
    inputs: TaskInputs
    data: TaskData
    reference: dict[str, float]  # the teacher's own quality, latency and size
    machine: str  # where the latencies are timed (measure/machine.py): the teacher's and the trials'
    device: str
    teacher: Any  # the model itself: teacher-based inits copy its weights
    tokenizer: Any  # the teacher's, which the students share
    teacher_states: TeacherStates | None = None  # when the space can weigh the hidden or relation loss

    @property
    def teacher_config(self) -> Any:
        return self.inputs.teacher_config

    @property
    def teacher_arch(self) -> StudentArch:
        return teacher_arch(self.teacher_config)


def matched_layers(space: SpaceConfig, teacher: StudentArch) -> list[int]:
    """Every teacher layer whose output a loss of the space reads: those some student depth is matched to
    (hidden-state loss), and the one entering the last layer (attention-relation loss; -1: embeddings)."""
    layers = set()
    if space.distill.uses_hidden_states():
        depths = [d for d in possible_ints(space.student.depth) if 1 <= d <= teacher.depth]
        how = space.student.layer_selection
        layers |= {layer for d in depths for layer in select_layers(teacher.depth, d, how)}
    if space.distill.uses_attention_relations():
        layers.add(teacher.depth - 2)
    return sorted(layers)


def measure_model(
    task: Task, model: Any, validation: Any, space: SpaceConfig, device: str
) -> tuple[dict[str, float], dict[str, float]]:
    """The task's quality metric on ``validation``, size, and latency (``space.latency``); returns
    (metrics, seconds per phase)."""
    start = time.perf_counter()
    quality = task.evaluate(model, validation, space.train.eval_batch_size, device)
    eval_seconds = time.perf_counter() - start
    metrics, timings = measure_cost(model, space.latency, task.measure_latency)
    return {task.metric: quality, **metrics}, {"eval": eval_seconds, **timings}


def teacher_home(states: TeacherStates | None, device: str) -> str:
    """Where the teacher waits once its caches are made: on the training ``device`` when a step runs it
    (hidden states computed live), else on the CPU."""
    return device if states is not None and states.source == "live" else "cpu"


def prepare_job(
    space: SpaceConfig,
    inputs: TaskInputs,
    cache_dir: Path,
    log: Callable[[str], None],
    full_length: bool = False,
) -> Job:
    """Load the teacher, tokenise once, compute (or reuse) its targets and reference metrics.

    The transfer set joins the training examples of a ``full_length`` run (``autodistill train``), and
    of the search's trials when ``transfer.in_trials`` says so."""
    task = get_task(space)
    device = default_device()
    # before any CUDA work: deterministic cuBLAS is only possible if set before its first matrix product
    configure_device(device, space.train.deterministic, space.train.mixed_precision)
    teacher, tokenizer = task.load_teacher(space, device)
    transfer = full_length or space.transfer.in_trials
    data = task.prepare(space, inputs, teacher, tokenizer, cache_dir, device, log, transfer)
    states = None
    layers = matched_layers(space, teacher_arch(teacher.config))  # none when no loss reads a layer
    if layers:
        states = teacher_states(
            teacher, data.train_tokens, layers, space.train.eval_batch_size, device, cache_dir, data.key, log
        )

    def reference() -> dict[str, float]:
        log(f"teacher: measuring its {task.metric} (validation and test), size and latency (once, cached)")
        # in float32, as the students are measured: latency_fraction is of the float32 teacher (a bfloat16
        # teacher, ``inference_dtype``, goes up and back down losslessly)
        dtype = next(teacher.parameters()).dtype
        teacher.float()
        metrics, _ = measure_model(task, teacher, data.validation, space, device)
        arch = teacher_arch(teacher.config)
        test = task.evaluate(teacher, data.test, space.train.eval_batch_size, device)
        teacher.to(dtype)
        return {**metrics, f"test_{task.metric}": test, "depth": arch.depth, "width": arch.width}

    examples = data.evaluation_key or data.key
    machine = machine_name(space.latency.device)  # a shared cache serves several machines
    ref_key = [examples, space.latency.identity(), len(data.validation), len(data.test), machine]
    measured = cached("teacher-reference", cache_dir, ref_key, reference, fmt="json", log=log)
    teacher.to(teacher_home(states, device))
    return Job(
        space=space,
        task=task,
        inputs=inputs,
        data=data,
        reference={**measured, "latency_fraction": 1.0},  # of itself: the report's teacher row
        machine=machine,
        device=device,
        teacher=teacher,
        tokenizer=tokenizer,
        teacher_states=states,
    )
