"""Tasks: what is distilled, behind one interface (``Task``); a space picks one by name (``task:``)."""

from autodistill.config.schema import SpaceConfig
from autodistill.tasks.base import Task, TaskData, TaskInputs
from autodistill.tasks.causal_lm.task import CausalLM
from autodistill.tasks.classification import SequenceClassification

TASKS: dict[str, type[Task]] = {SequenceClassification.name: SequenceClassification, CausalLM.name: CausalLM}


def get_task(space: SpaceConfig) -> Task:
    """The task ``space.task`` names, set up for the space (e.g. its quality metric)."""
    return TASKS[space.task].for_space(space)


__all__ = ["TASKS", "Task", "TaskData", "TaskInputs", "get_task"]
