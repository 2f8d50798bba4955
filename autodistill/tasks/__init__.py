"""Tasks: what is distilled, behind one interface (``Task``); a space picks one by name (``task:``)."""

from autodistill.tasks.base import Task, TaskData, TaskInputs
from autodistill.tasks.classification import SequenceClassification

TASKS: dict[str, type[Task]] = {SequenceClassification.name: SequenceClassification}


def get_task(name: str) -> Task:
    """The task a space names (``SpaceConfig.task``, already validated against ``TASKS``)."""
    return TASKS[name]()


__all__ = ["TASKS", "Task", "TaskData", "TaskInputs", "get_task"]
