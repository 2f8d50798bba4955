"""Which machine a latency was measured on.

A latency is a property of a shape *and* of the machine that timed it: workers of one study on several
machines (a shared database) time shapes each on their own CPU, and one machine's student time divided
by another's teacher time means nothing. So every latency carries the name of its machine: the shape
figures a study keeps, and the teacher's reference, are keyed by it, and the report names it.

The name is ``AUTODISTILL_MACHINE`` when set (users who name their machines, and tests), else built from
what decides the speed of a timing: the CPU model and its core count, the torch and onnxruntime versions
and, when latency is timed on a GPU, its model. Two machines alike in all of these share a name, and
their figures are comparable. The host name is left out: containers get a fresh one each start.
"""

from __future__ import annotations

import functools
import os
import platform
from importlib import metadata
from typing import Any

from autodistill.util.hashing import short_hash

MACHINE_ENV = "AUTODISTILL_MACHINE"


def cpu_model() -> str:
    """The CPU's model name as the kernel reports it (``platform.processor()`` is often empty on Linux)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return " ".join(line.split(":", 1)[1].split())
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


@functools.cache
def machine_facts(device: str = "cpu") -> dict[str, Any]:
    """What decides the speed of a timing on this machine, for latency timed on ``device``."""
    import torch

    facts: dict[str, Any] = {
        "cpu": cpu_model(),
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch": torch.__version__,
        "onnxruntime": _version("onnxruntime"),
    }
    if device == "cuda" and torch.cuda.is_available():
        facts["gpu"] = torch.cuda.get_device_name()
    return facts


def machine_name(device: str = "cpu") -> str:
    """This machine's name for latencies timed on ``device``: ``AUTODISTILL_MACHINE``, else its facts in
    short and a hash of them all (so that two names differ whenever the facts do)."""
    named = os.environ.get(MACHINE_ENV, "").strip()
    if named:
        return named
    facts = machine_facts(device)
    where = facts.get("gpu") or facts["cpu"]
    return f"{where}, {facts['cores']} cores [{short_hash(facts)[:6]}]"
