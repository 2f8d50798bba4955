"""Latency is a property of a student's shape, not of its weights: measure it once per shape and study.

Timing one shape twice gives two figures (noise put one 3×64 shape on the front twice, at 2.64 and
4.05 ms). So the first trial of a shape measures its latency and peak memory and keeps them in the
study's storage (one Optuna study user attribute per shape and machine); every later trial of that
shape timed on the same machine, after a resume or in another worker, reuses them and says which trial
measured them.
Size and parameter counts are exact and cheap: every trial computes its own.

One attribute per shape means workers storing different shapes never overwrite each other. Two workers
measuring the same shape at the same moment both write; each re-reads first, so the window is the
moment between that read and its write, and whichever figure stands is what every later trial reuses.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any, Protocol

from autodistill.config.schema import LatencySpec, SearchSpec
from autodistill.distill.student import StudentArch
from autodistill.measure.cost import measure_cost
from autodistill.measure.latency import Latency, measure_latency
from autodistill.measure.machine import machine_name
from autodistill.measure.size import model_size
from autodistill.util.hashing import short_hash

# What ``measure_cost`` returns that the latency passes produce: the figures a shape's later trials reuse.
LATENCY_METRICS = (
    "latency_ms",
    "latency_p95_ms",
    "latency_threads",
    "latency_sequence_length",
    "peak_memory_mb",
    "prefill_ms",  # causal LMs only
    "latency_fraction",  # when the space reads it: timed in turns with the teacher
)
ATTR_PREFIX = "shape_latency:"


class LatencyMemo(Protocol):
    """The latency figures of one trial's shape, as far as the study knows them."""

    def recall(self) -> dict[str, float] | None:
        """The figures an earlier trial measured for this shape, or None."""

    def keep(self, figures: dict[str, float]) -> dict[str, float]:
        """Store freshly measured figures; returns those the trial should report (another worker's,
        if it stored this shape first)."""


def shape_key(arch: StudentArch, spec: LatencySpec, teacher_config: Any, machine: str | None = None) -> str:
    """The study user attribute holding a shape's figures: the graph (architecture, and the teacher's
    family, vocabulary and labels it is built from), how it was timed and on which machine (default this
    one: workers on other machines time the shape again on theirs). Initialisation is not in it: it
    changes the weights, not the graph."""
    graph = {
        **{k: v for k, v in asdict(arch).items() if v is not None},  # as before kv_heads existed
        "model_type": getattr(teacher_config, "model_type", None),
        "vocab_size": getattr(teacher_config, "vocab_size", None),
        "num_labels": getattr(teacher_config, "num_labels", None),
    }
    where = machine if machine is not None else machine_name(spec.device)
    return ATTR_PREFIX + short_hash({"graph": graph, "latency": spec.identity(), "machine": where})


def latency_out_of_bounds(search: SearchSpec) -> Callable[[dict[str, float]], bool] | None:
    """Whether a shape's latency figures break one of ``search.constraints``; None when none bounds
    them (size is exact: it needs no second opinion)."""
    if not any(metric in LATENCY_METRICS for metric in search.constraints):
        return None
    return lambda cost: bool(search.cost_violations({k: v for k, v in cost.items() if k in LATENCY_METRICS}))


def shape_cost(
    model: Any,
    spec: LatencySpec,
    memo: LatencyMemo | None,
    latency: Callable[[Any, LatencySpec], Latency] = measure_latency,
    out_of_bounds: Callable[[dict[str, float]], bool] | None = None,
    beside: Any = None,
) -> tuple[dict[str, float], dict[str, float]]:
    """``measure_cost``'s metrics and seconds per phase, with latency and peak memory taken from
    ``memo`` when this shape was measured before (then no latency phase is timed). With a ``beside``
    model (the teacher), the shape is timed in turns with it and its ``latency_fraction`` is kept too.

    When ``out_of_bounds`` says a fresh figure breaks a latency bound, the shape is timed once more and
    the second figure is kept if it is within the bounds or faster: on a shared machine noise only adds
    time, and one slow figure (a 2 × 384 student timed at 7.33 ms, 0.27 of the teacher, where it
    measures about 0.20 beside it) would rule a shape out of the study for good."""
    known = memo.recall() if memo else None
    if known is None:
        metrics, timings = measure_cost(model, spec, latency, beside)
        if out_of_bounds and out_of_bounds(metrics):
            again, more = measure_cost(model, spec, latency, beside)
            timings["latency"] += more["latency"]
            speed = "latency_fraction" if beside is not None else "latency_ms"
            if not out_of_bounds(again) or again[speed] < metrics[speed]:
                metrics.update({k: again[k] for k in LATENCY_METRICS if k in again})
        figures = {k: metrics[k] for k in LATENCY_METRICS if k in metrics}
        # A non-finite figure fails its trial: kept, it would fail every later trial of the shape.
        if memo and all(math.isfinite(v) for v in figures.values()):
            metrics.update(memo.keep(figures))
        return metrics, timings
    start = time.perf_counter()
    size = model_size(model)
    seconds = time.perf_counter() - start
    metrics = {
        **known,
        "params": float(size.params),
        "params_no_embeddings": float(size.params_no_embeddings),
        "size_mb": size.size_bytes / 1e6,
    }
    return metrics, {"size": seconds}


class StudyLatencyMemo:
    """A ``LatencyMemo`` on an Optuna trial's study (duck-typed: this module imports no Optuna).

    ``on_reuse`` is called with the number of the trial that measured the figures whenever this trial
    reports figures it did not measure.
    """

    def __init__(self, trial: Any, key: str, shape: StudentArch, on_reuse: Callable[[int], None]):
        self.trial, self.key, self.shape, self.on_reuse = trial, key, shape, on_reuse

    def recall(self) -> dict[str, float] | None:
        # Read from the storage each time: another worker may have stored the shape since.
        stored = self.trial.study.user_attrs.get(self.key)
        if stored is None:
            return None
        self.on_reuse(int(stored["trial"]))
        return {k: float(v) for k, v in stored["metrics"].items()}

    def keep(self, figures: dict[str, float]) -> dict[str, float]:
        earlier = self.recall()  # stored by another worker while this one was timing: theirs stands
        if earlier is not None:
            return earlier
        self.trial.study.set_user_attr(
            self.key, {"trial": self.trial.number, "shape": asdict(self.shape), "metrics": figures}
        )
        return figures
