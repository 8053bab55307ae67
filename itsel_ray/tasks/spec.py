"""What a task is: where its rows come from, how a row becomes text-to-text examples, and how predictions score.

A task is one `TaskSpec` registered in `TASKS`; nothing outside its declaration and its named formatter branches on
a task name. Row -> text formatting is pure (`examples_from_rows`), so the golden-string tests need no dataset;
`load` adds the only I/O (a `datasets` loader picked by `DataSource.kind`).
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from itsel_ray.tasks.carve import authors_permutation
from itsel_ray.tasks.limits import check_lengths
from itsel_ray.tasks.mirror import Mirror, MirrorError, file_stamps, read_parquet, split_files
from itsel_ray.tasks.raw_labels import LabelValueError, note_reading, read_label
from itsel_ray.tasks.rows import ArrowRows, RowFileError, Rows, as_rows, read_jsonl
from itsel_ray.examples import Example
from itsel_ray.metrics.task_metrics import TASK_METRICS
from itsel_ray.registry import Registry

CATEGORIES = ("classification", "multiple_choice", "qa")
LABEL_STYLES = ("text", "abstract")
SPLITS = ("train", "validation")
EVAL_SPLITS = ("validation", "heldout")
DATA_DIR_ENV = "ITSEL_RAY_DATA_DIR"


class TaskDataError(ValueError):
    """Bad or missing data for a task; the message names the task, split and column or row."""


@dataclass(frozen=True)
class DataSource:
    """Where a task's rows come from.

    kind: `hub` (`datasets.load_dataset(path, name, revision=...)`), `json` (local JSON-lines files named in
    `splits`, read from the data folder), `local` (JSON-lines files in the folder `path` relative to the task file
    that declares the task, shipped with it to every node) or `generated` (a function registered in `GENERATORS`
    under `path`, called with the split name and `options`). splits maps our split names to the dataset's.
    carve_validation: the validation split is that many rows carved from train under the trial seed (ReCoRD, as
    the authors). mirror: a folder holding a local copy of the Hub dataset (relative to the task file), read
    instead of the Hub unless the sweep names a folder for the task itself (data.task_mirrors).
    """

    kind: str
    path: str
    name: str | None = None
    splits: Mapping[str, str] = field(default_factory=lambda: {"train": "train", "validation": "validation"})
    revision: str | None = None
    carve_validation: int | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    mirror: str | None = None


@dataclass(frozen=True)
class Labels:
    """A closed label set: `words` are the PROMPT-TEXT verbalizer, `abstract` the PROMPT-ABSTRACT ids.

    words=None: in the text style the target is free text chosen per row (CosmosQA's answer text), so only the
    abstract style has a closed set; `abstract` must then be given.
    """

    words: tuple[str, ...] | None
    abstract: tuple[str, ...] | None = None
    encoding: tuple[str, ...] | None = None  # the dataset's raw label values by index, when not the ints 0..n-1

    def __post_init__(self):
        if self.words is None and self.abstract is None:
            raise ValueError("Labels needs words, abstract ids, or both")

    def index_of(self, raw: Any) -> int:
        """The label index of a raw dataset label (-1 when it names no class: hidden test labels are -1 or "");
        class ids, the dataset's own values and unambiguous label words are read (`tasks.raw_labels`)."""
        try:
            return read_label(self, raw)[0]
        except LabelValueError:
            return -1

    def for_style(self, style: str) -> tuple[str, ...] | None:
        if style == "text":
            return self.words
        if style == "abstract":
            return self.abstract or tuple(str(i) for i in range(len(self.words)))
        raise TaskDataError(f"unknown label style {style!r}; valid: {', '.join(LABEL_STYLES)}")


Formatter = Callable[[Mapping[str, Any], "TaskSpec", "FormatContext"], list[Example]]


@dataclass(frozen=True)
class FormatContext:
    """What a formatter may depend on besides the row: the split, the label style and the row's position.

    split is the logical split ("train" or "validation"; rows carved from train for validation format as
    validation); where names the rows' origin for error messages.
    """

    split: str
    label_style: str = "text"
    index: int = 0
    where: str = ""

    @property
    def is_train(self) -> bool:
        return self.split == "train"

    def error(self, message: str) -> "TaskDataError":
        return TaskDataError(f"split {self.where or self.split}, row {self.index}: {message}")


@dataclass(frozen=True)
class TaskSpec:
    """One task, declared once.

    name: the registry key. prefix: the task-name prefix of every input (the authors' spelling). columns: the
    dataset columns the formatter reads (checked up front). formatter: a `FORMATTERS` name; format_options: its
    parameters (e.g. which columns become "name: value" fields), so one formatter serves many tasks. labels: the
    closed label set, None for free-text targets. metrics: `TASK_METRICS` names, x100; select_metric: one of them, or
    "average" (their mean), picks the best checkpoint. train_size: rows in the training split (SIZE uses it).
    validation_size: rows in the declared validation split, when known (the cost model counts evaluation with it
    before the data is prepared; nothing else reads it).
    origin: the task file that declared the task ("" for one declared in Python); `local` data and a declared
    mirror are found relative to it. It is not part of what the task *is* (the prepared-data key leaves it out),
    since the same file lies at a different path on every node it is shipped to.
    """

    name: str
    category: str
    task_type: str
    prefix: str
    data: DataSource
    columns: tuple[str, ...]
    formatter: str
    metrics: tuple[str, ...]
    select_metric: str
    train_size: int
    labels: Labels | None = None
    max_source_length: int = 128
    max_target_length: int = 128
    role: str = "source"
    description: str = ""
    format_options: Mapping[str, Any] = field(default_factory=dict)
    origin: str = ""
    validation_size: int | None = None

    def __post_init__(self):
        if self.category not in CATEGORIES:
            raise ValueError(f"task {self.name}: category {self.category!r} not in {CATEGORIES}")
        if self.select_metric != "average" and self.select_metric not in self.metrics:
            raise ValueError(f"task {self.name}: select_metric {self.select_metric!r} is not one of {self.metrics}")

    def relative_path(self, path: str) -> Path:
        """`path` as declared: absolute, or relative to the folder of the declaring task file (else the current
        folder)."""
        p = Path(path).expanduser()
        return p if p.is_absolute() or not self.origin else Path(self.origin).parent / p

    # ------------------------------------------------------------------ labels
    def label_words(self, label_style: str = "text") -> tuple[str, ...] | None:
        """The closed label set in `label_style`, or None when targets are free text."""
        return None if self.labels is None else self.labels.for_style(label_style)

    # ------------------------------------------------------------------ rows -> examples
    def examples_from_rows(
        self,
        rows: Iterable[Mapping[str, Any]],
        *,
        split: str,
        label_style: str = "text",
        columns=None,
        where: str | None = None,
        start: int = 0,
    ) -> list[Example]:
        """Format dataset rows into examples; a missing column names task, split and column.

        split: the logical split the examples are for ("train" formats training examples, anything else
        evaluation examples); where: the rows' origin named in errors (default: split); start: the index of the
        first row in its split, so that errors name the right row when a split is formatted piece by piece.
        """
        if label_style not in LABEL_STYLES:
            raise TaskDataError(f"unknown label style {label_style!r}; valid: {', '.join(LABEL_STYLES)}")
        where = where or split
        if columns is not None:
            self.check_columns(columns, split=where)
        fmt = FORMATTERS.get(self.formatter)
        out: list[Example] = []
        for i, row in enumerate(rows, start):
            if columns is None:
                self.check_columns(row.keys(), split=where, row=i)
            ctx = FormatContext(split=split, label_style=label_style, index=i, where=where)
            try:
                out.extend(check_lengths(self, fmt(row, self, ctx), ctx))
            except TaskDataError as err:
                msg = str(err)
                msg = msg if msg.startswith(("task ", "split ")) else f"split {where}, row {i}: {msg}"
                raise TaskDataError(msg if msg.startswith("task ") else f"task {self.name}, {msg}") from None
            except (KeyError, IndexError, TypeError, ValueError) as err:
                raise TaskDataError(f"task {self.name}, split {where}, row {i}: cannot format ({err!r})") from None
        return out

    def check_columns(self, present: Iterable[str], *, split: str, row: int | None = None) -> None:
        present = set(present)
        for col in self.columns:
            if col not in present:
                where = f", row {row}" if row is not None else ""
                raise TaskDataError(
                    f"task {self.name}, split {split}{where}: missing column {col!r} (found: {', '.join(sorted(present))})"
                )

    def label_target(self, label: Any, ctx: FormatContext) -> tuple[str, int]:
        """Map a raw dataset label to (target text, label index); a label outside the label set raises."""
        words = self.label_words(ctx.label_style)
        if words is None:
            raise TaskDataError(f"task {self.name} has no closed label set in the {ctx.label_style!r} style")
        try:
            idx, how = read_label(self.labels, label)
        except LabelValueError as err:
            raise TaskDataError(f"task {self.name}, split {ctx.where or ctx.split}, row {ctx.index}: {err}") from None
        note_reading(how, label, idx)
        return words[idx], idx

    # ------------------------------------------------------------------ loading
    def load(
        self,
        split: str,
        *,
        label_style: str = "text",
        data_dir: str | os.PathLike | None = None,
        eval_split: str = "validation",
        heldout_size: int = 1000,
        seed: int = 0,
        limit: int | None = None,
        mirror: "Mirror | str | os.PathLike | None" = None,
    ) -> list[Example]:
        """Examples of `split` ("train" or "validation").

        eval_split="heldout" carves `heldout_size` training rows (under `seed`) as the validation split and drops
        them from train, so checkpoint selection and the reported score use different data. mirror: a local copy
        of the Hub dataset (`Mirror`, or its root folder) read instead of the Hub.
        """
        if split not in SPLITS:
            raise TaskDataError(f"task {self.name}: unknown split {split!r}; valid: {', '.join(SPLITS)}")
        carve = self.carve_size(eval_split, heldout_size)
        if carve:
            rows, columns = fetch_rows(self, "train", data_dir, mirror)
            held, kept = carve_rows(self, len(rows), carve, seed)
            rows = [rows[i] for i in (held if split == "validation" else kept)]
            source_split = CARVED_WHERE[split]
        else:
            rows, columns = fetch_rows(self, split, data_dir, mirror)
            source_split = split
        if limit is not None:
            rows = rows[:limit]
        examples = self.examples_from_rows(
            rows, split=split, label_style=label_style, columns=columns, where=source_split
        )
        if not examples:
            raise TaskDataError(f"task {self.name}, split {source_split}: no examples")
        return examples

    def carve_size(self, eval_split: str = "validation", heldout_size: int = 1000) -> int | None:
        """How many training rows become the validation split (None: the declared validation split is used)."""
        if eval_split not in EVAL_SPLITS:
            raise TaskDataError(f"unknown eval split {eval_split!r}; valid: {', '.join(EVAL_SPLITS)}")
        return heldout_size if eval_split == "heldout" else self.data.carve_validation

    # ------------------------------------------------------------------ scoring
    def score(self, predictions: Sequence[str], examples: Sequence[Example], *, label_style: str = "text") -> dict:
        """Every metric x100, plus "score": the selection metric (or the mean of all metrics for "average").

        Invalid predictions (outside the label set, unparsable numbers) count as wrong. A metric that is undefined
        (e.g. a correlation of constant predictions) is NaN, never 0.
        """
        if len(predictions) != len(examples):
            raise ValueError(f"task {self.name}: {len(predictions)} predictions for {len(examples)} examples")
        labels = self.label_words(label_style)
        out = {m: float(TASK_METRICS.get(m)(list(predictions), list(examples), labels)) for m in self.metrics}
        if self.select_metric == "average":
            out["score"] = sum(out[m] for m in self.metrics) / len(self.metrics)
        else:
            out["score"] = out[self.select_metric]
        return out


# ------------------------------------------------------------------------------------------------ registries

TASKS: Registry[TaskSpec] = Registry("task")
FORMATTERS: Registry[Formatter] = Registry("formatter")
LOADERS: Registry[Callable[..., Any]] = Registry("data source kind")
GENERATORS: Registry[Callable[..., Any]] = Registry("data generator")


def register_task(spec: TaskSpec) -> TaskSpec:
    """Declare a task: this is the one step a new task needs (plus a formatter, if no existing one fits)."""
    FORMATTERS.get(spec.formatter)  # fail at declaration time on a typo
    LOADERS.get(spec.data.kind)
    return TASKS.add(spec.name, spec)


# ------------------------------------------------------------------------------------------------ data access

CARVED_WHERE = {"validation": "train (carved validation)", "train": "train (minus carved rows)"}


def carve_rows(spec: TaskSpec, n: int, carve: int, seed: int) -> tuple[list[int], list[int]]:
    """(validation rows in carve order, the remaining training rows in order) of a training split of `n` rows.

    One permutation under `seed` decides both, so a trial that carves from a prepared split gets the rows that
    `TaskSpec.load` gets. The permutation is the authors' draw: `torch.randperm(n)` from a CPU `torch.Generator`
    seeded with the trial seed, its first `carve` rows the validation split (`tasks.carve.authors_permutation`).
    """
    if not 0 < carve < n:
        raise TaskDataError(f"task {spec.name}: cannot carve {carve} validation rows from {n} training rows")
    order = authors_permutation(n, seed)
    return order[:carve], sorted(order[carve:])


def data_dir_for(data_dir: str | os.PathLike | None, mirror: "Mirror | None" = None) -> Path:
    """The folder for local task files: the argument, else $ITSEL_RAY_DATA_DIR, else the mirror root (which holds
    them as `<root>/cr/train.jsonl`, beside the Hub datasets), else ~/.cache/itsel_ray/data."""
    if data_dir:
        return Path(data_dir).expanduser()
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV]).expanduser()
    if mirror is not None and mirror.root:
        return Path(mirror.root).expanduser()
    return Path.home() / ".cache" / "itsel_ray" / "data"


@dataclass(frozen=True)
class SplitSource:
    """Where one split's rows come from, found without reading them.

    origin: a description for reports and errors. files: the local files (mirror parquet shards, a JSON-lines
    file), empty for the Hub and generated tasks. kind: "mirror", "json", "hub" or "generated".
    """

    kind: str
    origin: str
    files: tuple[Path, ...] = ()

    def stamps(self) -> tuple[tuple[str, int, int], ...] | None:
        """(path, size, mtime) of the local files; None when the rows cannot be checked without loading them."""
        return file_stamps(self.files) if self.files else None


def split_source(spec: TaskSpec, split: str, data_dir=None, mirror=None) -> SplitSource:
    """The source of logical split `split` ("train" or "validation"): a mirror folder when one covers the task
    (hub tasks), the local file (json tasks), else the Hub or the generator. A missing mirror file raises here."""
    if split not in spec.data.splits:
        raise TaskDataError(f"task {spec.name}: no {split!r} split declared (declared: {', '.join(spec.data.splits)})")
    name, mirror = spec.data.splits[split], mirror_for(spec, mirror)
    if spec.data.kind == "hub" and mirror.folder(spec.name, spec.data.path) is not None:
        folder = mirror.folder(spec.name, spec.data.path)
        try:
            files = split_files(folder, spec.data.name, name)
        except MirrorError as err:
            raise TaskDataError(f"task {spec.name}, split {split}: {err}") from None
        shown = ", ".join(str(f) for f in files) if len(files) <= 2 else f"{files[0]} ... ({len(files)} files)"
        return SplitSource("mirror", f"mirror {shown}", tuple(files))
    if spec.data.kind == "json":
        path = data_dir_for(data_dir, mirror) / spec.data.path / name
        return SplitSource("json", str(path), (path,) if path.is_file() else ())
    if spec.data.kind == "local":
        path = local_file(spec, name)
        return SplitSource("local", str(path), (path,) if path.is_file() else ())
    if spec.data.kind == "hub":
        config = f" ({spec.data.name})" if spec.data.name else ""
        revision = f" @ {spec.data.revision}" if spec.data.revision else ""
        return SplitSource("hub", f"Hub {spec.data.path}{config}{revision}, split {name}")
    return SplitSource(spec.data.kind, f"{spec.data.kind} {spec.data.path}, split {name}")


def mirror_for(spec: TaskSpec, mirror=None) -> Mirror:
    """The mirror to read `spec` from: the sweep's (a folder named for the task wins), else the task's declared
    folder over the sweep's root (a user's dataset is rarely in a shared mirror of the paper's datasets)."""
    mirror = Mirror.of(mirror)
    if spec.data.mirror and spec.name not in mirror.tasks:
        return Mirror(mirror.root, {**mirror.tasks, spec.name: str(spec.relative_path(spec.data.mirror))})
    return mirror


def local_file(spec: TaskSpec, name: str) -> Path:
    """The JSON-lines file `name` of a `local` task: in its folder `data.path`, relative to its task file."""
    return spec.relative_path(spec.data.path) / name


def read_split(spec: TaskSpec, split: str, data_dir=None, mirror=None) -> Rows:
    """The rows of logical split `split` behind one interface (`itsel_ray.tasks.rows`): an Arrow table for mirrors,
    the Hub and generated tasks, so a caller can walk them in batches instead of holding one dict per row."""
    source = split_source(spec, split, data_dir, mirror)
    if source.kind == "mirror":
        try:
            return ArrowRows(read_parquet(source.files), source.origin)
        except RowFileError as err:
            raise TaskDataError(f"task {spec.name}, split {split}: {err}") from None
        except Exception as err:
            raise TaskDataError(f"task {spec.name}, split {split}: cannot read {source.origin}: {err}") from err
    folder = str(data_dir_for(data_dir, Mirror.of(mirror))) if spec.data.kind == "json" else data_dir
    return as_rows(LOADERS.get(spec.data.kind)(spec, spec.data.splits[split], folder), source.origin)


def fetch_rows(spec: TaskSpec, split: str, data_dir=None, mirror=None) -> tuple[list[dict], list[str]]:
    """Rows of `split` as plain dicts plus the column names, cached per process (reused Ray actors share it)."""
    mirror = mirror_for(spec, mirror)
    if spec.data.kind == "json":
        where = str(data_dir_for(data_dir, mirror))
    elif spec.data.kind == "hub" and mirror.folder(spec.name, spec.data.path) is not None:
        where = f"mirror:{mirror.folder(spec.name, spec.data.path)}"
    else:
        where = None
    return _fetch_rows_cached(spec.name, split, where)


def clear_row_cache() -> None:
    """Forget rows fetched in this process (tests that swap a loader call it)."""
    _fetch_rows_cached.cache_clear()


@lru_cache(maxsize=32)
def _fetch_rows_cached(name: str, split: str, where: str | None) -> tuple[list[dict], list[str]]:
    spec = TASKS.get(name)
    if where is not None and where.startswith("mirror:"):
        rows = read_split(spec, split, mirror=Mirror(tasks={name: where.removeprefix("mirror:")}))
    else:
        rows = read_split(spec, split, data_dir=where)
    return rows.to_list(), rows.column_names


@LOADERS.register("hub")
def _load_hub(spec: TaskSpec, split: str, data_dir: str | None):
    import datasets

    try:
        return datasets.load_dataset(spec.data.path, spec.data.name, split=split, revision=spec.data.revision)
    except Exception as err:
        raise TaskDataError(
            f"task {spec.name}: could not load {spec.data.path!r} (config {spec.data.name!r}, split {split!r}) "
            f"from the Hugging Face Hub: {type(err).__name__}: {err}"
        ) from err


@dataclass(frozen=True)
class RowTable:
    """Rows read without `datasets`: what a loader returns when there is no `datasets.Dataset` to hand back."""

    rows: list[dict]
    column_names: list[str]

    def to_list(self) -> list[dict]:
        return self.rows


@LOADERS.register("json")
def _load_json(spec: TaskSpec, split: str, data_dir: str | None):
    """A local JSON-lines file, read directly: no `datasets` cache is written, and a bad line is named."""
    path = Path(data_dir or data_dir_for(None)) / spec.data.path / split
    if not path.is_file():
        raise TaskDataError(
            f"task {spec.name}: local data file {path} not found; put the file there or point "
            f"data.data_dir / ${DATA_DIR_ENV} at the folder holding {spec.data.path}/{split} (see docs/data.md)"
        )
    try:
        rows = read_jsonl(path)
    except RowFileError as err:
        raise TaskDataError(f"task {spec.name}: {err}") from None
    return RowTable(rows.rows, rows.columns)


@LOADERS.register("local")
def _load_local(spec: TaskSpec, split: str, data_dir: str | None):
    """A JSON-lines file beside the task file (`data.path` relative to it), read like a `json` task's file; the
    data folder plays no part."""
    path = local_file(spec, split)
    if not path.is_file():
        where = f" (declared in {spec.origin})" if spec.origin else ""
        raise TaskDataError(f"task {spec.name}: local data file {path} not found{where}")
    return _load_json(replace(spec, data=replace(spec.data, path=str(path.parent))), path.name, None)


@LOADERS.register("generated")
def _load_generated(spec: TaskSpec, split: str, data_dir: str | None):
    return GENERATORS.get(spec.data.path)(split, **dict(spec.data.options))
