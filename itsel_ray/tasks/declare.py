"""Tasks as data: the schema of a task declaration, `declare_task` (one declaration -> a registered `TaskSpec`) and
`load_task_file` (a YAML file of declarations).

Every task of the project goes through `declare_task`: the paper's 23 from the packaged `tasks/paper.yaml`, read by
`load_task_file` exactly as a user's own file is; the synthetic family from dicts built in `synthetic.py` (its
rows come from Python rules, the declarations do not need to); and a user's files named by a sweep (`tasks:`) or
`--include`. So the strict key check, the defaults, the computed training size and the error messages are the same
for all of them. The paper's tasks live in YAML, not in Python calls, because the packaged file is then the proof
that the format can say everything the paper needs (Hub configs and revisions, carved validation splits, local
files, abstract labels, label encodings, per-task lengths): a user's task never needs a feature that the
project's own tasks reach only through Python.

A task file:

    defaults: {category: classification}      # optional: merged under every task of the file
    tasks:
      - name: my_reviews                       # lower case; the registry key and the trial folders' name
        description: product reviews, positive or negative
        data: {kind: local, path: data}        # data/train.jsonl and data/validation.jsonl beside this file
        fields: [text]                         # shorthand: formatter "fields" over these columns + `label_column`
        labels: [negative, positive]           # or {words: [...], abstract: ["0", "1"], encoding: [...]}
        metrics: [accuracy]

Formatters stay Python functions referenced by name (`FORMATTERS`; a plugin module may register more), so the
paper's formats keep the authors' exact strings.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from itsel_ray.metrics.task_metrics import TASK_METRICS
from itsel_ray.registry import UnknownNameError
from itsel_ray.schema import ConfigError, from_dict, merge, read_yaml
from itsel_ray.tasks.spec import (
    FORMATTERS,
    LOADERS,
    SPLITS,
    TASKS,
    DataSource,
    Labels,
    TaskDataError,
    TaskSpec,
    clear_row_cache,
    read_split,
    register_task,
)

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")  # one folder name in every trial path
DEFAULT_SPLITS = {"train": "train", "validation": "validation"}


@dataclass(frozen=True)
class DataDecl:
    """Where the rows come from (`tasks.spec.DataSource`).

    kind: hub (path = the dataset id, name = its config, revision), local (path = a folder of JSON-lines files
    relative to the task file, shipped with it), json (path = a folder under the data folder: data.data_dir or
    $ITSEL_RAY_DATA_DIR), generated (path = a GENERATORS name, options = its arguments), or a kind a plugin
    registers in LOADERS. splits: our split (train, validation) -> the dataset's split or file name; a split not
    named keeps its default (train -> train, validation -> validation; `local` adds .jsonl). carve_validation:
    validation = that many training rows carved under the trial seed. mirror: a folder with a local copy of the
    Hub dataset, relative to the task file.
    """

    kind: str = "hub"
    path: str = ""
    name: str | None = None
    splits: dict = field(default_factory=dict)
    revision: str | None = None
    carve_validation: int | None = None
    options: dict = field(default_factory=dict)
    mirror: str | None = None


@dataclass(frozen=True)
class LabelsDecl:
    """A closed label set in both styles: words (PROMPT-TEXT; null = free-text targets), abstract (PROMPT-ABSTRACT
    ids; default "0", "1", ...), encoding (the dataset's raw label values by index, when not the ints 0..n-1)."""

    words: list[str] | None = None
    abstract: list[str] | None = None
    encoding: list[str] | None = None


@dataclass(frozen=True)
class TaskDecl:
    """One task as a file declares it; see `TaskSpec` for what each part does once declared.

    prefix: the task-name prefix of every input (default: the name). fields / label_column: the shorthand of the
    "fields" formatter ("<prefix> col1: v1 col2: v2" -> the verbalised label in `label_column`): it sets the
    formatter, its options and the columns unless they are given. columns: the dataset columns the formatter reads
    (checked before any row is formatted). select_metric: the metric that picks the best checkpoint (default: the
    only metric, or "average" of several). train_size: rows in the training split; counted from the data when not
    given (a Hub dataset is counted from its metadata, which needs the Hub or its local cache). validation_size:
    rows in the validation split, when known: only the cost model reads it, to count evaluation in `--dry-run`
    before `prepare` has seen the data.
    """

    name: str
    data: DataDecl
    description: str = ""
    role: str = ""
    category: str = "classification"
    task_type: str = ""
    prefix: str | None = None
    fields: list[str] | None = None
    label_column: str = "label"
    columns: list[str] | None = None
    formatter: str | None = None
    format_options: dict = field(default_factory=dict)
    labels: LabelsDecl | list[str] | None = None
    metrics: list[str] = field(default_factory=lambda: ["accuracy"])
    select_metric: str | None = None
    max_source_length: int = 128
    max_target_length: int = 128
    train_size: int | None = None
    validation_size: int | None = None


@dataclass(frozen=True)
class TaskFile:
    """A task file: `tasks` (declarations) and `defaults` (merged under each)."""

    tasks: list[dict]
    defaults: dict = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------ declaring


def declare_task(entry: Mapping[str, Any], *, where: str = "", origin: str = "", train_size: int | None = None,
                 register: bool = True) -> TaskSpec:
    """Check one declaration strictly, turn it into a `TaskSpec` and register it (unless `register` is False).

    Args:
        entry: the declaration (the keys of `TaskDecl`).
        where: the file (or module) named in errors.
        origin: the task file, for paths relative to it ("" for a declaration made in Python).
        train_size: the training split's size when it was counted before (a worker loading a shipped file gets
            the driver's count instead of reading the data again); a declared train_size wins.
    Raises:
        ConfigError naming `where`, the task and the key.
    """
    name = entry.get("name") if isinstance(entry, Mapping) else None
    key = f"tasks.{name}" if isinstance(name, str) else "tasks[]"
    decl = from_dict(TaskDecl, entry, where=where, path=key)
    try:
        spec = _spec(decl, origin)
        if decl.train_size is None:
            counted = train_size if train_size is not None else count_training_rows(spec)
            spec = dataclasses.replace(spec, train_size=counted)
        return register_task(spec) if register else spec
    except (ValueError, TaskDataError) as err:  # UnknownNameError, the TaskSpec checks, a duplicate name
        raise ConfigError(f"{key}: {err}{f' in {where}' if where else ''}") from None


def _spec(d: TaskDecl, origin: str) -> TaskSpec:
    if not NAME_PATTERN.fullmatch(d.name) or "__" in d.name:
        raise ValueError(f"name {d.name!r} must be lower case letters, digits, '_', '.', '-' (no '__'), at most 64 "
                         "characters: it names the task's trial folders")
    formatter, columns, options = d.formatter, d.columns, dict(d.format_options)
    if d.fields is not None:
        formatter = formatter or "fields"
        options.setdefault("fields", list(d.fields))
        options.setdefault("label", d.label_column)
        columns = columns if columns is not None else [*d.fields, d.label_column]
    if formatter is None:
        raise ValueError("give `formatter` (a registered formatter) or the `fields` shorthand")
    if columns is None:
        raise ValueError(f"columns: name the dataset columns formatter {formatter!r} reads")
    FORMATTERS.get(formatter)
    for metric in d.metrics:
        TASK_METRICS.get(metric)
    if not d.metrics:
        raise ValueError("metrics: give at least one metric")
    select = d.select_metric or (d.metrics[0] if len(d.metrics) == 1 else "average")
    return TaskSpec(
        name=d.name, category=d.category, task_type=d.task_type, prefix=d.name if d.prefix is None else d.prefix,
        data=_data(d.data), columns=tuple(columns), formatter=formatter, metrics=tuple(d.metrics),
        select_metric=select, train_size=d.train_size or 0, labels=_labels(d.labels),
        max_source_length=_positive("max_source_length", d.max_source_length),
        max_target_length=_positive("max_target_length", d.max_target_length), role=d.role,
        validation_size=None if d.validation_size is None else _positive("validation_size", d.validation_size),
        description=d.description, format_options=_frozen(options), origin=origin,
    )


def _data(d: DataDecl) -> DataSource:
    LOADERS.get(d.kind)
    if not d.path:
        raise ValueError("data.path: give the dataset id, folder or generator name")
    unknown = sorted(set(d.splits) - set(SPLITS))
    if unknown:
        raise ValueError(f"data.splits: unknown split {unknown[0]!r}; valid: {', '.join(SPLITS)}")
    suffix = ".jsonl" if d.kind == "local" else ""
    splits = {k: str(d.splits.get(k, f"{v}{suffix}")) for k, v in DEFAULT_SPLITS.items()}
    if d.carve_validation is not None and d.carve_validation < 1:
        raise ValueError(f"data.carve_validation must be >= 1, got {d.carve_validation}")
    return DataSource(kind=d.kind, path=d.path, name=d.name, splits=splits, revision=d.revision,
                      carve_validation=d.carve_validation, options=_frozen(d.options), mirror=d.mirror)


def _labels(value: LabelsDecl | list[str] | None) -> Labels | None:
    if value is None:
        return None
    if isinstance(value, LabelsDecl):
        words, abstract, encoding = value.words, value.abstract, value.encoding
    else:
        words, abstract, encoding = value, None, None
    for key, items in (("words", words), ("abstract", abstract), ("encoding", encoding)):
        if items is not None and (not items or len(set(items)) != len(items)):
            raise ValueError(f"labels.{key} must be distinct and not empty, got {list(items)}")
    sizes = {len(x) for x in (words, abstract, encoding) if x is not None}
    if len(sizes) > 1:
        raise ValueError("labels: words, abstract and encoding must have one entry per label")
    tup = lambda x: None if x is None else tuple(str(v) for v in x)  # noqa: E731
    return Labels(tup(words), tup(abstract), tup(encoding))


def _positive(key: str, value: int) -> int:
    if value < 1:
        raise ValueError(f"{key} must be >= 1, got {value}")
    return value


def _frozen(options: Mapping) -> dict:
    """Lists in options become tuples (a declaration is compared and hashed as a value)."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}


def count_training_rows(spec: TaskSpec) -> int:
    """Rows in `spec`'s training split: the Hub dataset's metadata for Hub tasks without a local copy (no rows
    are downloaded), else the rows themselves."""
    try:
        if spec.data.kind == "hub" and not spec.data.mirror:
            return _hub_train_rows(spec)
        return len(read_split(spec, "train"))
    except TaskDataError as err:
        raise ValueError(f"train_size is not given and the training split cannot be counted: {err}") from None


def _hub_train_rows(spec: TaskSpec) -> int:
    try:
        import datasets

        info = datasets.load_dataset_builder(spec.data.path, spec.data.name, revision=spec.data.revision).info
        return int(info.splits[spec.data.splits["train"]].num_examples)
    except Exception as err:
        raise TaskDataError(f"the Hub's metadata of {spec.data.path!r} is not available here "
                            f"({type(err).__name__}); give train_size") from None


# ------------------------------------------------------------------------------------------------ task files


@dataclass
class _Loaded:
    digest: str
    specs: list[TaskSpec]


_LOADED: dict[str, _Loaded] = {}


def load_task_file(path: str | Path, *, sizes: Mapping[str, int] | None = None) -> list[TaskSpec]:
    """Declare every task of a task file, in file order; loading the same unchanged file again is a no-op.

    A file edited since it was loaded in this process is declared afresh (its old tasks are removed first), so a
    notebook can reload it. sizes: training sizes counted before (see `declare_task`).
    """
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise ConfigError(f"task file not found: {path}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    loaded = _LOADED.get(str(path))
    if loaded is not None and loaded.digest == digest:
        return list(loaded.specs)
    if loaded is not None:
        forget(loaded.specs)
    where = str(path)
    raw = read_yaml(path, what="task file")
    spec_file = from_dict(TaskFile, raw, where=where)
    specs: list[TaskSpec] = []
    try:
        for i, entry in enumerate(spec_file.tasks):
            if not isinstance(entry, Mapping):
                raise ConfigError(f"tasks[{i}] must be a mapping of keys, got {type(entry).__name__} in {where}")
            entry = merge(spec_file.defaults, entry)
            specs.append(declare_task(entry, where=where, origin=where,
                                      train_size=(sizes or {}).get(str(entry.get("name")))))
    except ConfigError:
        forget(specs)  # all of the file or nothing
        raise
    _LOADED[str(path)] = _Loaded(digest, specs)
    return list(specs)


def forget(specs) -> None:
    for spec in specs:
        if TASKS._items.get(spec.name) is spec:
            TASKS.remove(spec.name)
    clear_row_cache()


def task_files_in(path: str | Path) -> list[Path]:
    """A task file, or every *.yaml / *.yml file under a folder (sorted)."""
    path = Path(path).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
        if not files:
            raise ConfigError(f"{path}: no task files (*.yaml) in this folder")
        return files
    if not path.is_file():
        raise ConfigError(f"task file not found: {path}")
    return [path]


__all__ = ["DataDecl", "LabelsDecl", "TaskDecl", "declare_task", "load_task_file", "count_training_rows",
           "task_files_in", "UnknownNameError"]
