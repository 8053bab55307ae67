"""Task metadata the analysis needs (training-set size, Table 6 category, task type) and task-name spelling.

Metadata comes from the tasks registry (`itsel_ray.tasks.get_task`) when it knows every task; otherwise from
`PAPER_TASKS`, the one fallback table in the project (paper Table 6; sizes are the exact row counts of each
training split, whose order reproduces the authors' SIZE ordinals; CxC's is inferred, and CR's 3,012 is the
authors' training file although Table 6 prints 4K). A caller may also hand a mapping in directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

CATEGORIES = ("classification", "multiple_choice", "qa")
CATEGORY_LABELS = {"classification": "CLASSIFICATION", "multiple_choice": "M. CHOICE", "qa": "QA"}


@dataclass(frozen=True)
class TaskMeta:
    """train_size: rows in the training split. category: one of CATEGORIES. task_type: e.g. "NLI" (Tables 5, 8)."""

    train_size: int
    category: str
    task_type: str = ""

    def __post_init__(self):
        if self.category not in CATEGORIES:
            raise ValueError(f"category {self.category!r} is not one of {', '.join(CATEGORIES)}")
        if self.train_size < 0:
            raise ValueError(f"train_size must be >= 0, got {self.train_size}")


_C, _M, _Q = CATEGORIES
PAPER_TASKS: dict[str, TaskMeta] = {
    # 13 source tasks
    "mnli": TaskMeta(392_702, _C, "NLI"),
    "qqp": TaskMeta(363_846, _C, "paraphrase detection"),
    "qnli": TaskMeta(104_743, _C, "NLI"),
    "record": TaskMeta(100_730, _M, "QA"),
    "cxc": TaskMeta(87_054, _C, "semantic similarity"),
    "squad": TaskMeta(87_599, _Q, "QA"),
    "drop": TaskMeta(77_400, _Q, "QA"),
    "sst2": TaskMeta(67_349, _C, "sentiment analysis"),
    "winogrande": TaskMeta(40_398, _M, "commonsense reasoning"),
    "hellaswag": TaskMeta(39_905, _M, "commonsense reasoning"),
    "multirc": TaskMeta(27_243, _C, "QA"),
    "cosmosqa": TaskMeta(25_262, _M, "commonsense reasoning"),
    "race": TaskMeta(25_421, _M, "QA"),
    # 10 target tasks
    "boolq": TaskMeta(9_427, _C, "QA"),
    "cola": TaskMeta(8_551, _C, "grammatical acceptability"),
    "stsb": TaskMeta(5_749, _C, "semantic similarity"),
    "wic": TaskMeta(5_428, _C, "word sense disambiguation"),
    "cr": TaskMeta(3_012, _C, "sentiment analysis"),
    "mrpc": TaskMeta(3_668, _C, "paraphrase detection"),
    "rte": TaskMeta(2_490, _C, "NLI"),
    "wsc": TaskMeta(554, _C, "coreference resolution"),
    "copa": TaskMeta(400, _M, "QA"),
    "cb": TaskMeta(250, _C, "NLI"),
}
PAPER_SOURCES = ("mnli", "qqp", "qnli", "record", "cxc", "squad", "drop", "sst2", "winogrande", "hellaswag",
                 "multirc", "cosmosqa", "race")
PAPER_TARGETS = ("boolq", "cola", "stsb", "wic", "cr", "mrpc", "rte", "wsc", "copa", "cb")

# Other spellings of the paper's task names (the authors' scripts, the paper's tables) -> the project's names.
NAME_ALIASES = {
    "superglue-record": "record", "superglue-multirc": "multirc", "superglue-wic": "wic", "superglue-wsc": "wsc",
    "superglue-wsc.fixed": "wsc", "superglue-copa": "copa", "superglue-boolq": "boolq", "superglue-cb": "cb",
    "superglue-rte": "rte", "cosmos_qa": "cosmosqa", "sst-2": "sst2", "sts-b": "stsb", "wingrande": "winogrande",
}


def canonical_name(name: str) -> str:
    """The project's spelling of a task name (lower case, aliases resolved)."""
    key = str(name).strip().lower()
    return NAME_ALIASES.get(key, key)


def _normalise_category(value: str) -> str:
    return str(value).strip().lower().replace("-", "_").replace(" ", "_").replace("m._choice", "multiple_choice")


def from_registry(names: Iterable[str]) -> dict[str, TaskMeta]:
    """Metadata of `names` from the tasks registry; raises if the registry is unavailable or lacks a name."""
    from itsel_ray.tasks import get_task

    out = {}
    for name in names:
        task = get_task(name)
        out[name] = TaskMeta(int(task.train_size), _normalise_category(task.category),
                             str(getattr(task, "task_type", "") or ""))
    return out


def resolve_metadata(names: Iterable[str], metadata: Mapping[str, TaskMeta] | None = None, *,
                     notes: list[str] | None = None) -> dict[str, TaskMeta]:
    """TaskMeta for every name: from `metadata` if given, else the tasks registry, else PAPER_TASKS (a line
    saying so, and why, is appended to `notes`).

    Raises ValueError naming the tasks no source knows.
    """
    names = list(names)
    if metadata is not None:
        missing = [n for n in names if n not in metadata]
        if missing:
            raise ValueError(f"no metadata for task(s) {missing}; the mapping has {sorted(metadata)}")
        return {n: metadata[n] for n in names}
    try:
        return from_registry(names)
    except Exception as err:  # registry not built yet, or a task it does not declare
        registry_error = err
    missing = [n for n in names if n not in PAPER_TASKS]
    if missing:
        raise ValueError(
            f"no metadata for task(s) {missing}: the tasks registry failed ({registry_error}) and the paper's "
            f"table knows only {', '.join(sorted(PAPER_TASKS))}"
        )
    if notes is not None:
        notes.append(f"task metadata from the paper's Table 6 (the tasks registry: {registry_error})")
    return {n: PAPER_TASKS[n] for n in names}
