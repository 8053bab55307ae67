"""The prepare step: per task, load each split once, check it against the declaration, tokenise it once into the
cache that trials memory-map, and say what was found.

The sweep calls `prepare_task(task, settings, cache_root=...)` for each (task, settings) of `prepare_plan(configs)`
(in parallel if it likes: tasks share nothing but the model download) and prints `format_report(reports)`. A task
whose data does not match its declaration fails here, with the task, split, column or row named, before any trial
starts. Calling it again is cheap: a complete cache whose sources are unchanged is reported, not rebuilt.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from itsel_ray.data.cache import (
    TRAIN, VALIDATION, carve_part, cache_key, key_fields, read_manifest, write_manifest, write_part,
)
from itsel_ray.data.checks import ExampleDigest, Findings, duplicates, overlap, scan_columns
from itsel_ray.data.encoded import Encoded, encode_examples, scoring_examples
from itsel_ray.tasks.mirror import Mirror
from itsel_ray.registry import UnknownNameError
from itsel_ray.tasks import get_task
from itsel_ray.tasks.formats import noting_formats
from itsel_ray.tasks.raw_labels import describe_readings, noting_labels
from itsel_ray.tasks.spec import CARVED_WHERE, TaskDataError, TaskSpec, carve_rows, read_split, split_source
from itsel_ray.trial_config import DataConfig, ModelConfig, TrialConfig

BATCH_ROWS = 2048  # rows formatted and tokenised at a time: bounds the Python objects alive at once
MAX_ROW_ERRORS = 3  # row errors quoted per split (all are counted)


class PrepareError(RuntimeError):
    """Something the prepare step cannot do (fetch a model offline, load a tokenizer); the message says what."""


@dataclass(frozen=True)
class PrepareSettings:
    """What a task's prepared data depends on, taken from the trial configs that will read it.

    model: its tokenizer (`model.tokenizer` or `model.name`) tokenises; its weights are fetched unless the backbone
    is built from `model.config`. data: label style, eval split, heldout size and the data locations. seeds: the
    trial seeds, needed where validation rows are carved from train under the seed (ReCoRD, eval_split heldout).
    """

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    seeds: tuple[int, ...] = ()


def prepare_plan(configs: Iterable[TrialConfig]) -> list[tuple[str, PrepareSettings]]:
    """One (task, settings) per distinct task, model and data config among `configs`, with their seeds merged
    (kept only where the task carves). Order: first appearance."""
    groups: dict[str, tuple[str, ModelConfig, DataConfig, set[int]]] = {}
    for cfg in configs:
        key = json.dumps([cfg.task, asdict(cfg.model), asdict(cfg.data)], sort_keys=True)
        task, model, data, seeds = groups.setdefault(key, (cfg.task, cfg.model, cfg.data, set()))
        if cfg.data.eval_split == "heldout" or get_task(cfg.task).data.carve_validation:
            seeds.add(cfg.seed)
    return [(task, PrepareSettings(model, data, tuple(sorted(seeds)))) for task, model, data, seeds in groups.values()]


# ------------------------------------------------------------------------------------------------- reports


@dataclass(frozen=True)
class SplitReport:
    """One prepared split. name: "train", "validation" or "carve-<size>-seed<seed>"; rows: rows read; examples:
    examples made of them; labels: examples per label word (closed label sets); at_cap: inputs that fill the
    task's max source length (probably truncated)."""

    name: str
    origin: str
    rows: int
    examples: int
    labels: dict[str, int] = field(default_factory=dict)
    at_cap: int = 0


@dataclass(frozen=True)
class TaskReport:
    """What prepare found for one task. cache: the prepared folder (None when nothing was written). problems:
    what stops the task (wrong schema, labels, null or over-long cells, empty splits); warnings: what does not
    (duplicates, train/validation overlap, a size other than declared, empty cells); notes: how the data was read
    where it could have been meant otherwise (labels given as words); details: the rows behind the warnings (for
    the log). reused: the cache was already complete and its sources unchanged."""

    task: str
    cache: str | None = None
    splits: tuple[SplitReport, ...] = ()
    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    model: str = ""
    reused: bool = False
    seconds: float = 0.0
    notes: tuple[str, ...] = ()
    details: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        """JSON-ready; label counts as [word, count] pairs, so that the label order survives sorted JSON keys."""
        d = asdict(self)
        for s in d["splits"]:
            s["labels"] = [list(item) for item in s["labels"].items()]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TaskReport":
        splits = tuple(SplitReport(**{**s, "labels": dict(s.get("labels", ()))}) for s in d.get("splits", ()))
        return cls(**{**d, "splits": splits, **{k: tuple(d.get(k, ())) for k in ("problems", "warnings", "notes",
                                                                                 "details")}})


def format_report(reports: Sequence[TaskReport]) -> str:
    """A plain-text table of every task's splits, then a summary line, then the problems and warnings by task."""
    head = ("task", "split", "rows", "examples", "labels", "at cap", "origin")
    lines = [head]
    for r in reports:
        for s in r.splits:
            labels = ", ".join(f"{w} {n:,}" for w, n in s.labels.items()) or "-"
            lines.append((r.task, s.name, f"{s.rows:,}", f"{s.examples:,}", labels, f"{s.at_cap:,}", s.origin))
        if not r.splits:
            lines.append((r.task, "-", "-", "-", "-", "-", "FAILED" if r.problems else "-"))
    widths = [max(len(row[i]) for row in lines) for i in range(len(head) - 1)]
    right = {2, 3, 5}
    out = ["  ".join([*(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))),
                      row[-1]]).rstrip() for row in lines]
    failed = [r for r in reports if not r.ok]
    reused = sum(r.reused for r in reports if r.ok)
    out.append(f"{len(reports)} task(s): {len(reports) - len(failed)} prepared ({reused} already up to date), "
               f"{len(failed)} failed")
    for title, attr in (("problems", "problems"), ("warnings", "warnings"), ("notes", "notes"),
                        ("details", "details")):
        items = [(r.task, m) for r in reports for m in getattr(r, attr)]
        if items:
            out.append(f"{title}:")
            out += [f"  {task}: {m}" for task, m in items]
    for r in reports:
        if r.cache:
            out.append(f"cache {r.task}: {r.cache}")
    return "\n".join(out)


# ------------------------------------------------------------------------------------------------- model


def fetch_model(model: ModelConfig) -> str:
    """Make the backbone's weights and tokenizer available locally (the Hugging Face cache) and say where they are.

    Nothing is fetched for a backbone built from `model.config` with a "vocab:" tokenizer, or for local folders.
    A Hub id already in the cache is not fetched again; with HF_HUB_OFFLINE=1 a missing one raises PrepareError.
    """
    wanted = []
    if model.config is None:
        wanted.append((model.name, True))
    tokenizer = model.tokenizer or model.name
    if not tokenizer.startswith("vocab:") and tokenizer != (model.name if model.config is None else None):
        wanted.append((tokenizer, False))
    if not wanted:
        return f"nothing to fetch (model built from model.config, tokenizer {tokenizer})"
    return "; ".join(_fetch_repo(name, weights) for name, weights in wanted)


WEIGHT_GLOBS, TOKENIZER_GLOBS = ("*.safetensors", "*.bin"), ("tokenizer.json", "*.model", "vocab.*")


def _complete(folder: Path, weights: bool) -> bool:
    has = lambda globs: any(next(folder.glob(g), None) for g in globs)  # noqa: E731
    return has(TOKENIZER_GLOBS) and (not weights or ((folder / "config.json").is_file() and has(WEIGHT_GLOBS)))


def _fetch_repo(name: str, weights: bool) -> str:
    what = "weights and tokenizer" if weights else "tokenizer"
    if Path(name).expanduser().is_dir():
        folder = Path(name).expanduser()
        if not _complete(folder, weights):
            raise PrepareError(f"model folder {folder} lacks the {what} files (config.json, weights, tokenizer)")
        return f"{name}: local folder"
    from huggingface_hub import constants, snapshot_download

    patterns = ["*.json", "*.model", "*.txt", "vocab.*", "merges.txt"] + (["*.safetensors", "*.bin"] if weights else [])
    try:
        folder = Path(snapshot_download(name, allow_patterns=patterns, local_files_only=True))
        if _complete(folder, weights):
            return f"{name}: {folder} (already in the Hugging Face cache)"
    except Exception:  # not cached (or partly): fetch below
        pass
    if constants.HF_HUB_OFFLINE:
        raise PrepareError(f"model {name!r}: the {what} are not in the Hugging Face cache and HF_HUB_OFFLINE is set; "
                           "run prepare once with network access, or point model.name at a local folder")
    if weights:
        from huggingface_hub import list_repo_files

        if any(f.endswith(".safetensors") for f in list_repo_files(name)):
            patterns.remove("*.bin")  # the same weights twice otherwise
    try:
        folder = Path(snapshot_download(name, allow_patterns=patterns))
    except Exception as err:
        raise PrepareError(f"model {name!r}: could not download the {what}: {type(err).__name__}: {err}") from err
    return f"{name}: {folder} (downloaded)"


def load_tokenizer(model: ModelConfig):
    from itsel_ray.data.tokenizers import build_tokenizer

    spec = model.tokenizer or model.name
    try:
        return build_tokenizer(spec)
    except Exception as err:
        raise PrepareError(f"cannot load the tokenizer {spec!r}: {type(err).__name__}: {err}") from err


# ------------------------------------------------------------------------------------------------- the step


def prepare_task(task: str, settings: PrepareSettings | None = None, *, cache_root: str | os.PathLike,
                 mirror: Mirror | str | os.PathLike | None = None) -> TaskReport:
    """Prepare `task` under `cache_root` for `settings` and report; never raises for bad data (see `problems`).

    mirror overrides `settings.data.mirror` / `task_mirrors` (and $ITSEL_RAY_DATA_MIRROR). Only a task without
    problems is written; its folder is `<cache_root>/<task>/<key>`, which trials find from their own config.
    """
    t0, settings = time.perf_counter(), settings or PrepareSettings()
    d = settings.data
    mirror = Mirror.of(mirror if mirror is not None else d.mirror, d.task_mirrors)
    try:
        spec = get_task(task)
        model_info = fetch_model(settings.model)
        tokenizer = load_tokenizer(settings.model)
        carve = spec.carve_size(d.eval_split, d.heldout_size)
        spec.label_words(d.label_style)  # an unknown label style fails here
        if carve and not settings.seeds:
            raise TaskDataError(f"task {task} carves its {carve} validation rows from train under the trial seed: "
                                "pass the trials' seeds (prepare_plan does)")
        splits = [TRAIN] + ([] if carve else [VALIDATION])
        sources = {s: split_source(spec, s, d.data_dir, mirror) for s in splits}
    except (UnknownNameError, TaskDataError, PrepareError) as err:
        return TaskReport(task, problems=(str(err),), seconds=time.perf_counter() - t0)
    fields = key_fields(spec, tokenizer, d.label_style)
    folder = Path(cache_root) / task / cache_key(fields)
    stamps = json.loads(json.dumps({s: {"origin": src.origin, "stamps": src.stamps()} for s, src in sources.items()}))
    parts = [TRAIN] + ([carve_part(carve, s) for s in sorted(set(settings.seeds))] if carve else [VALIDATION])
    manifest = read_manifest(folder)
    if manifest is not None and {s: manifest["sources"].get(s) for s in stamps} != stamps:
        _discard(folder)  # a source changed: every part is rebuilt
        manifest = None
    # without a manifest nothing in the folder is vouched for: build every part
    missing = parts if manifest is None else [p for p in parts if not (folder / p / "part.json").is_file()]
    done = TaskReport.from_dict(manifest["report"]) if manifest else TaskReport(task)
    if manifest is not None and not missing:
        return _finish(done, folder, parts, model_info, t0, reused=True)
    built = _Builder(spec, tokenizer, d, mirror).build(missing, carve, sorted(set(settings.seeds)))
    if built.problems:
        return TaskReport(task, splits=built.reports, problems=built.problems, warnings=built.warnings,
                          model=model_info, seconds=time.perf_counter() - t0, notes=built.notes,
                          details=built.details)
    for name, (encoded, rows, n_rows, golds) in built.parts.items():
        write_part(folder, name, encoded, rows, n_rows=n_rows, golds=golds)
    kept = tuple(s for s in done.splits if s.name not in built.parts)
    merged = {k: tuple(dict.fromkeys(getattr(done, k) + getattr(built, k))) for k in ("warnings", "notes", "details")}
    report = TaskReport(task, str(folder), kept + built.reports, (), merged["warnings"], model_info,
                        notes=merged["notes"], details=merged["details"])
    write_manifest(folder, {"key": fields, "sources": {**(manifest or {}).get("sources", {}), **stamps},
                            "report": {**report.to_dict(), "seconds": 0.0},
                            "written": time.strftime("%Y-%m-%d %H:%M:%S")})
    return _finish(report, folder, parts, model_info, t0, reused=False)


def _finish(report: TaskReport, folder: Path, parts: list[str], model_info: str, t0: float, *,
            reused: bool) -> TaskReport:
    """The report limited to the parts these settings read, in their order (the folder as found now: a cache
    root may be mounted elsewhere than where it was written)."""
    by_name = {s.name: s for s in report.splits}
    return TaskReport(report.task, str(folder), tuple(by_name[p] for p in parts if p in by_name), report.problems,
                      report.warnings, model_info, reused, time.perf_counter() - t0, report.notes, report.details)


def _discard(folder: Path) -> None:
    if folder.exists():
        aside = folder.with_name(f".{folder.name}.stale.{os.getpid()}")
        os.replace(folder, aside)  # trials that mapped the old files keep reading them
        shutil.rmtree(aside, ignore_errors=True)


@dataclass
class _Built:
    parts: dict[str, tuple[Encoded, np.ndarray, int, list | None]] = field(default_factory=dict)
    reports: tuple[SplitReport, ...] = ()
    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    details: tuple[str, ...] = ()


class _Builder:
    """Formats and tokenises the missing parts of one task, collecting every problem instead of stopping."""

    def __init__(self, spec: TaskSpec, tokenizer, data: DataConfig, mirror: Mirror):
        self.spec, self.tokenizer, self.data, self.mirror = spec, tokenizer, data, mirror
        self.out = _Built()
        self.digests: dict[str, ExampleDigest] = {}

    def build(self, missing: list[str], carve: int | None, seeds: list[int]) -> _Built:
        needs_train = TRAIN in missing or any(p != VALIDATION for p in missing)
        train_rows = self._read(TRAIN) if needs_train else None
        if train_rows is not None and len(train_rows) != self.spec.train_size:
            self._warn(f"task {self.spec.name}: the training split has {len(train_rows):,} rows, the declaration "
                       f"says {self.spec.train_size:,} (SIZE ranks by the declared number)")
        if TRAIN in missing and train_rows is not None:
            self._part(TRAIN, train_rows, split="train", where="train")
        if VALIDATION in missing:
            rows = self._read(VALIDATION)
            if rows is not None:
                self._part(VALIDATION, rows, split="validation", where="validation")
        if TRAIN in self.digests and VALIDATION in self.digests:
            self._add(overlap(self.spec, self.digests[TRAIN], self.digests[VALIDATION], "validation"))
        for seed in seeds if carve and train_rows is not None else ():
            name = carve_part(carve, seed)
            if name not in missing:
                continue
            try:
                held, _ = carve_rows(self.spec, len(train_rows), carve, seed)
            except TaskDataError as err:
                self._problem(str(err))
                break
            self._part(name, _Taken(train_rows, held), split="validation", where=CARVED_WHERE["validation"])
        return self.out

    def _read(self, split: str):
        try:
            rows = read_split(self.spec, split, self.data.data_dir, self.mirror)
            self.spec.check_columns(rows.column_names, split=split)
        except TaskDataError as err:
            self._problem(str(err))
            return None
        if len(rows) == 0:
            self._problem(f"task {self.spec.name}, split {split}: no rows ({rows.origin})")
            return None
        found = scan_columns(self.spec, rows, split)
        self._add(found)
        return None if found.problems else rows

    def _part(self, name: str, rows, *, split: str, where: str) -> None:
        spec, style = self.spec, self.data.label_style
        chunks, row_ids, golds, errors, n_errors, digests = [], [], [], [], 0, []
        start = 0
        with noting_labels() as readings, noting_formats() as kept:
            for batch in rows.batches(BATCH_ROWS):
                examples, owners = [], []
                for i, row in enumerate(batch, start):
                    try:
                        made = spec.examples_from_rows([row], split=split, label_style=style,
                                                       columns=rows.column_names, where=where, start=i)
                    except TaskDataError as err:
                        n_errors += 1
                        errors += [str(err)] if len(errors) < MAX_ROW_ERRORS else []
                        continue
                    examples += made
                    owners += [i] * len(made)
                start += len(batch)
                if n_errors:  # keep counting, stop tokenising
                    continue
                chunks.append(encode_examples(self.tokenizer, examples, max_source=spec.max_source_length,
                                              max_target=spec.max_target_length))
                row_ids.append(np.asarray(owners, dtype=np.int32))
                digests.append(ExampleDigest.of(examples, owners))
                if split != "train":
                    golds += scoring_examples(examples)
        said = describe_readings(readings, spec.labels.words if spec.labels else None)
        if said:
            self.out.notes += (f"task {spec.name}, split {where}: {said}",)
        for what, n in kept.items():
            self.out.warnings += (f"task {spec.name}, split {where}: {n:,} of {len(rows):,} rows: {what}",)
        if n_errors:
            self._problem(f"task {spec.name}, split {where}: {n_errors:,} of {len(rows):,} rows cannot be made into "
                          f"examples; first: " + " | ".join(errors))
            return
        encoded = Encoded.concat(chunks)
        if len(encoded) == 0:
            self._problem(f"task {spec.name}, split {where}: no examples")
            return
        words = spec.label_words(style) or ()
        labels = encoded.labels[encoded.labels >= 0]
        counts = np.bincount(labels, minlength=len(words)) if len(words) else []
        at_cap = int((encoded.inputs.lengths() >= spec.max_source_length).sum())
        digest = ExampleDigest.concat(digests)
        self.digests[name] = digest
        self._add(duplicates(spec, digest, where))
        self.out.parts[name] = (encoded, np.concatenate(row_ids), len(rows), golds if split != "train" else None)
        self.out.reports += (SplitReport(name, getattr(rows, "origin", ""), len(rows), len(encoded),
                                         {w: int(c) for w, c in zip(words, counts)}, at_cap),)

    def _problem(self, message: str) -> None:
        self.out.problems += (message,)

    def _add(self, found: Findings) -> None:
        self.out.problems += tuple(found.problems)
        self.out.warnings += tuple(found.warnings)
        self.out.details += tuple(found.details)

    def _warn(self, message: str) -> None:
        self.out.warnings += (message,)


@dataclass(frozen=True)
class _Taken:
    """The carved rows of a training split, in carve order, walked like any split."""

    rows: object
    indices: list[int]

    @property
    def origin(self) -> str:
        return f"{len(self.indices):,} rows carved from {self.rows.origin}"

    def __len__(self) -> int:
        return len(self.indices)

    def batches(self, size: int):
        for start in range(0, len(self.indices), size):
            yield self.rows.take(self.indices[start : start + size])

    @property
    def column_names(self) -> list[str]:
        return self.rows.column_names
