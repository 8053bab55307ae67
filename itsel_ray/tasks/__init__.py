"""The task registry: the paper's 23 tasks and the offline synthetic family, each declared once.

`get_task(name)` returns a `TaskSpec`; `SOURCE_TASKS` and `TARGET_TASKS` list the paper's tasks in Table 2 order.
"""

from itsel_ray.tasks.spec import (
    CATEGORIES,
    FORMATTERS,
    GENERATORS,
    LOADERS,
    TASKS,
    DataSource,
    Example,
    FormatContext,
    Labels,
    TaskDataError,
    TaskSpec,
    register_task,
)
from itsel_ray.tasks import formats as _formats  # noqa: F401  (registers the formatters)
from itsel_ray.tasks.paper import SOURCE_TASKS, TARGET_TASKS  # registers the paper's tasks
from itsel_ray.tasks import synthetic as _synthetic  # noqa: F401  (registers the offline synthetic tasks)


def get_task(name: str) -> TaskSpec:
    """The task called `name` (every declared task is registered by importing this package); an unknown name
    raises with the list of valid names."""
    return TASKS.get(name)


def task_names(role: str | None = None) -> list[str]:
    """Registered task names, optionally only those with `role` ("source", "target", ...)."""
    return [n for n in TASKS.names() if role is None or TASKS.get(n).role == role]


__all__ = [
    "CATEGORIES", "FORMATTERS", "GENERATORS", "LOADERS", "TASKS", "DataSource", "Example", "FormatContext",
    "Labels", "TaskDataError", "TaskSpec", "get_task", "register_task", "task_names", "SOURCE_TASKS", "TARGET_TASKS",
]
