"""The paper's 23 tasks (Table 2), declared in the packaged `paper.yaml` and read by `load_task_file`, the loader
every task file goes through (`itsel_ray/tasks/declare.py` says why the paper's tasks are data, not Python).

`SOURCE_TASKS` and `TARGET_TASKS` list them in Table 2 order, as the file does.
"""

from __future__ import annotations

from pathlib import Path

from itsel_ray.tasks.declare import load_task_file

PAPER_FILE = Path(__file__).with_name("paper.yaml")

_DECLARED = load_task_file(PAPER_FILE)
SOURCE_TASKS: tuple[str, ...] = tuple(spec.name for spec in _DECLARED if spec.role == "source")
TARGET_TASKS: tuple[str, ...] = tuple(spec.name for spec in _DECLARED if spec.role == "target")
