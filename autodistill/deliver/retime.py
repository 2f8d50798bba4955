"""``autodistill retime``: the latencies of a finished study's students, measured again on this machine.

A search times each shape on the machine of the worker that trained it; a study searched from several
machines holds latencies that do not compare, and a study searched on a build machine holds none from
the machine the student will run on. Retiming builds each chosen trial's student graph from its
settings (the weights do not change the time of a pass, so no student needs to be on this disk),
times it in turns with the teacher as ``latency_fraction`` does, and records the figures in the study
as one measurement per machine (``retimed@MACHINE``). The front is then recomputed on them by Optuna
(an in-memory study holding the same trials with the new latencies), constraints judged again.

Quality and size are the search's: only the latency figures are new.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from autodistill.config.schema import SpaceConfig
from autodistill.deliver.export import study_space
from autodistill.distill.student import build_student
from autodistill.measure.latency import measure_beside
from autodistill.measure.machine import machine_name
from autodistill.search.sampling import TrialSettings
from autodistill.store.caches import teacher_fingerprint
from autodistill.store.studies import StudyError, teacher_reference
from autodistill.tasks import get_task
from autodistill.util.errors import first_line

RETIMED_PREFIX = "retimed@"
# The figures a retiming replaces; every other metric of a trial is the search's.
RETIMED_METRICS = ("latency_ms", "latency_p95_ms", "latency_fraction", "peak_memory_mb", "prefill_ms")


def parse_trials(text: str) -> str | list[int]:
    """``--trials``: ``front``, ``all``, or trial numbers such as ``3,7,12``.

    Raises:
        ValueError: anything else (the message says what to give).
    """
    if text in ("front", "all"):
        return text
    try:
        numbers = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        numbers = []
    if not numbers or any(n < 0 for n in numbers):
        raise ValueError(f"--trials {text}: give front, all, or trial numbers such as 3,7,12")
    return sorted(set(numbers))


def chosen_trials(study: Any, which: str | list[int]) -> list[Any]:
    """The completed trials ``--trials`` names (those the search measured: with settings and metrics).

    Raises:
        StudyError: a number that is not such a trial, or nothing to retime.
    """
    from optuna.trial import TrialState

    measured = {
        t.number: t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if "settings" in t.user_attrs and "metrics" in t.user_attrs
    }
    if which == "front":
        trials = [t for t in study.best_trials if t.number in measured]
    elif which == "all":
        trials = list(measured.values())
    else:
        missing = [n for n in which if n not in measured]
        if missing:
            raise StudyError(
                f"--trials: {', '.join(map(str, missing))} not completed trial(s) of study "
                f"'{study.study_name}'; pick numbers from pareto.csv or give front or all"
            )
        trials = [measured[n] for n in which]
    if not trials:
        raise StudyError(f"--trials {which}: study '{study.study_name}' has no completed trial to retime")
    return trials


def retime_space(study: Any, teacher: str | None) -> SpaceConfig:
    """The study's space, its teacher at ``teacher`` when given (a copy on this machine).

    Raises:
        StudyError: that teacher is not the one the study was searched with.
    """
    space = study_space(study)
    if teacher is None:
        return space
    recorded = study.user_attrs.get("teacher_fingerprint")
    if recorded is not None and teacher_fingerprint(teacher) != recorded:
        raise StudyError(
            f"--teacher {teacher}: not the teacher study '{study.study_name}' was searched with (its files "
            "differ); give a copy of that teacher"
        )
    return space.model_copy(update={"teacher": teacher})


@dataclass
class Measurement:
    """One retiming: the machine, the teacher's latency there, and each trial's new latency figures."""

    machine: str
    when: str
    latency: dict[str, Any]  # the latency settings (the study's)
    teacher: dict[str, float]
    trials: dict[int, dict[str, float]]

    def stored(self) -> dict[str, Any]:
        return {**asdict(self), "trials": {str(n): f for n, f in self.trials.items()}}


def load_teacher(space: SpaceConfig) -> Any:
    """The study's teacher, on the CPU.

    Raises:
        StudyError: it cannot be loaded on this machine (the message says to give ``--teacher``).
    """
    try:
        teacher, _ = get_task(space).load_teacher(space)
    except (OSError, ValueError) as exc:
        raise StudyError(
            f"teacher {space.teacher}: cannot load it on this machine ({first_line(exc)}); "
            "give --teacher PATH to a copy of it here"
        ) from None
    return teacher


def retime(
    study: Any, trials: list[Any], space: SpaceConfig, teacher: Any, log: Callable[[str], None] = print
) -> Measurement:
    """Time ``teacher`` and each distinct shape among ``trials`` on this machine, in turns (a shape
    shared by several trials is timed once, as in the search), and record the measurement in the study,
    merged with an earlier one of this machine (its trials kept unless timed again)."""
    task = get_task(space)
    spec = space.latency
    machine = machine_name(spec.device)
    log(f"retime: {len(trials)} trial(s) and the teacher on {machine}")
    alone = task.measure_latency(teacher, spec)
    by_shape: dict[str, dict[str, float]] = {}
    figures: dict[int, dict[str, float]] = {}
    for trial in trials:
        arch = TrialSettings.from_params(trial.user_attrs["settings"]).arch
        shape = repr(asdict(arch))
        if shape not in by_shape:
            student = build_student(teacher.config, arch, space.train.seed, task.auto_class())
            timed, fraction = measure_beside(student, teacher, spec, task.measure_latency)
            by_shape[shape] = {
                "latency_ms": timed.p50_ms,
                "latency_p95_ms": timed.p95_ms,
                "latency_fraction": fraction,
                "peak_memory_mb": timed.peak_memory_mb,
                **({"prefill_ms": timed.prefill_ms} if timed.prefill_ms is not None else {}),
            }
            log(f"  trial {trial.number}: {timed.p50_ms:.3g} ms, {fraction:.3g} of the teacher")
        figures[trial.number] = by_shape[shape]
    earlier = study.user_attrs.get(RETIMED_PREFIX + machine) or {}
    kept = {int(n): f for n, f in (earlier.get("trials") or {}).items() if int(n) not in figures}
    measurement = Measurement(
        machine=machine,
        when=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        latency=spec.model_dump(mode="json"),
        teacher={
            "latency_ms": alone.p50_ms,
            "latency_p95_ms": alone.p95_ms,
            "peak_memory_mb": alone.peak_memory_mb,
            **({"prefill_ms": alone.prefill_ms} if alone.prefill_ms is not None else {}),
        },
        trials=dict(sorted({**kept, **figures}.items())),
    )
    study.set_user_attr(RETIMED_PREFIX + machine, measurement.stored())
    return measurement


def measurements(study: Any) -> dict[str, dict[str, Any]]:
    """Every retiming the study holds, by machine."""
    return {k[len(RETIMED_PREFIX) :]: v for k, v in study.user_attrs.items() if k.startswith(RETIMED_PREFIX)}


def retimed_trials(study: Any, measurement: Measurement, space: SpaceConfig) -> list[Any]:
    """The retimed trials as they would be had they been timed here: their latency figures replaced,
    their objective values and constraints computed again from them (a trial over a latency bound
    before may be within it here, and the other way round)."""
    import optuna

    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    objectives = list(study.user_attrs.get("objectives") or [])
    rebuilt = []
    for number, new in measurement.trials.items():
        trial = trials[number]
        metrics = {**trial.user_attrs["metrics"], **new}
        attrs = {
            **trial.user_attrs,
            "metrics": metrics,
            "latency_measured_with": {**measurement.latency, "machine": measurement.machine},
        }
        rebuilt.append(
            optuna.trial.create_trial(
                values=[metrics[o] for o in objectives],
                params=trial.params,
                distributions=trial.distributions,
                user_attrs=attrs,
                constraints=space.search.constraint_values(metrics) or None,
            )
        )
    return rebuilt


def retimed_front(study: Any, measurement: Measurement, space: SpaceConfig) -> list[Any]:
    """Optuna's front of the retimed trials (their numbers as in the study)."""
    import optuna

    holder = optuna.create_study(directions=study.directions)  # in memory: dominance only
    rebuilt = retimed_trials(study, measurement, space)
    holder.add_trials(rebuilt)
    by_position = dict(enumerate(measurement.trials))
    front = holder.best_trials  # copies
    for trial in front:
        trial.number = by_position[trial.number]  # the holder numbered them 0, 1, ...
    return front


def teacher_here(study: Any, measurement: Measurement) -> dict[str, Any]:
    """The teacher's row beside a retimed front: its quality and size as recorded, its latency here."""
    recorded = teacher_reference(study)
    return {**recorded, **measurement.teacher, "latency_fraction": 1.0, "machine": measurement.machine}


def file_label(machine: str) -> str:
    """A machine's name as part of a file name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", machine).strip("-")[:80] or "machine"
