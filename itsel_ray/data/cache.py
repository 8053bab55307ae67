"""The prepared-data cache: one folder per (task, tokenizer, label style), holding each split tokenised once as
flat .npy arrays that trials memory-map.

Layout, under a cache root (shared storage, or a node-local folder):

    <root>/<task>/<key>/manifest.json               what was prepared from where, and the prepare report
    <root>/<task>/<key>/train/                      every row of the declared training split
    <root>/<task>/<key>/validation/                 the declared validation split (tasks that do not carve)
    <root>/<task>/<key>/carve-<size>-seed<seed>/    validation rows carved from train under a seed

Each split folder ("part") holds input_ids / input_offsets / target_ids / target_offsets (int32 ids, int64
offsets), labels (int32, -1 = none), rows (the split row each example came from), part.json, and for evaluation
parts golds.json (target, answers, group: what scoring reads). A part is written to a temporary folder and renamed
into place, so a part that exists is complete. Limits and carving are applied when a trial reads the parts (a
prefix of rows, or the rows a seed keeps), so one cache serves every seed, limit and eval split of a task.

The key covers the task declaration, the source code that turns rows into examples, the tokenizer's content and
the label style; not where the rows came from (Hub, mirror), which the prepare step checks instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from itsel_ray.artifacts import make_temp_dir, os_error_at, read_json, write_json
from itsel_ray.data.encoded import Encoded, Ragged
from itsel_ray.examples import Example
from itsel_ray.tasks.spec import CARVED_WHERE, TaskDataError, TaskSpec, carve_rows

CACHE_ENV = "ITSEL_RAY_DATA_CACHE"
CACHE_FORMAT = 1
MANIFEST = "manifest.json"
TRAIN, VALIDATION = "train", "validation"
ARRAYS = ("input_ids", "input_offsets", "target_ids", "target_offsets", "labels", "rows")
PACKAGE = Path(__file__).resolve().parents[1]
# The code that turns a row into an example's text: editing it makes every key new, so no stale text is served.
CODE = ("tasks/*.py", "numbers.py", "examples.py", "data/encoded.py")


def cache_root_for(cache_dir: str | os.PathLike | None) -> Path | None:
    """The cache root: the argument, else $ITSEL_RAY_DATA_CACHE, else None (trials load and tokenise themselves).
    A URI (an object store) is not a folder: the sweep puts the node-local copy of it in $ITSEL_RAY_DATA_CACHE."""
    for value in (cache_dir, os.environ.get(CACHE_ENV)):
        if value and "://" not in str(value):
            return Path(value).expanduser()
    return None


def carve_part(size: int, seed: int) -> str:
    return f"carve-{size}-seed{seed}"


# ------------------------------------------------------------------------------------------------- keys


@lru_cache(maxsize=1)
def code_digest() -> str:
    h = hashlib.sha256()
    for pattern in CODE:
        for path in sorted(PACKAGE.glob(pattern)):
            h.update(path.relative_to(PACKAGE).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def tokenizer_digest(tokenizer) -> str:
    """The tokenizer's content (its serialised fast tokenizer, or its vocabulary), not its name: two nodes that
    load the same files agree, a changed file gives a new key."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        state = json.loads(backend.to_str())
        for key in ("truncation", "padding"):  # set by each call (truncation=True, max_length=...), not content
            state.pop(key, None)
        content = json.dumps(state, sort_keys=True)
    else:
        content = json.dumps(sorted(tokenizer.get_vocab().items()))
    extra = json.dumps([type(tokenizer).__name__, getattr(tokenizer, "truncation_side", None),
                        getattr(tokenizer, "pad_token_id", None), getattr(tokenizer, "eos_token_id", None)])
    return hashlib.sha256((content + extra).encode("utf-8")).hexdigest()[:16]


def declaration(spec: TaskSpec) -> dict:
    """The parts of a task declaration that decide its examples."""
    return {
        "task": spec.name, "data": asdict(spec.data), "columns": list(spec.columns), "formatter": spec.formatter,
        "format_options": dict(spec.format_options), "labels": asdict(spec.labels) if spec.labels else None,
        "prefix": spec.prefix, "max_source_length": spec.max_source_length,
        "max_target_length": spec.max_target_length,
    }


def key_fields(spec: TaskSpec, tokenizer, label_style: str) -> dict:
    return {"format": CACHE_FORMAT, "declaration": declaration(spec), "code": code_digest(),
            "tokenizer": tokenizer_digest(tokenizer), "label_style": label_style}


def cache_key(fields: dict) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=list).encode()).hexdigest()[:20]


def task_folder(root: str | os.PathLike, spec: TaskSpec, tokenizer, label_style: str) -> Path:
    """<root>/<task>/<key> for this task, tokenizer and label style (it may not exist)."""
    return Path(root) / spec.name / cache_key(key_fields(spec, tokenizer, label_style))


# ------------------------------------------------------------------------------------------------- parts


@dataclass(frozen=True, eq=False)
class Part:
    """One prepared split: encoded examples, the split row of each, and the golds of evaluation parts."""

    encoded: Encoded
    rows: np.ndarray  # [n] int32, non-decreasing
    n_rows: int  # rows in the split the part was built from
    golds: list[Example] | None

    def count_below(self, limit: int | None) -> int:
        """How many examples come from the first `limit` rows (all when None)."""
        return len(self.rows) if limit is None else int(np.searchsorted(self.rows, limit, side="left"))


def write_part(folder: Path, name: str, encoded: Encoded, rows: np.ndarray, *, n_rows: int,
               golds: Sequence[Example] | None = None) -> Path:
    """Write part `name` of `folder` atomically (temporary folder, then rename; an older part is replaced)."""
    folder.mkdir(parents=True, exist_ok=True)
    inputs, targets = encoded.inputs.compact(), encoded.targets.compact()
    tmp = make_temp_dir(f".{name}.", folder)
    try:
        arrays = {"input_ids": inputs.values, "input_offsets": inputs.offsets, "target_ids": targets.values,
                  "target_offsets": targets.offsets, "labels": encoded.labels,
                  "rows": np.asarray(rows, dtype=np.int32)}
        for key, arr in arrays.items():
            try:
                np.save(tmp / f"{key}.npy", np.ascontiguousarray(arr), allow_pickle=False)
            except OSError as err:  # a full disk: name the file (numpy's short-write error does not)
                raise os_error_at(err, folder / name / f"{key}.npy") from None
        if golds is not None:
            try:
                (tmp / "golds.json").write_text(
                    json.dumps([[g.target, list(g.answers), g.group] for g in golds], ensure_ascii=False), "utf-8")
            except OSError as err:
                raise os_error_at(err, folder / name / "golds.json") from None
        write_json(tmp / "part.json", {"examples": len(encoded), "n_rows": int(n_rows), "golds": golds is not None,
                                       "tokens": int(inputs.values.size + targets.values.size)})
        dest = folder / name
        if dest.exists():  # replaced: trials that mapped the old files keep reading them until they close
            old = folder / f".{name}.old.{os.getpid()}"
            os.replace(dest, old)
            shutil.rmtree(old, ignore_errors=True)
        os.replace(tmp, dest)
        return dest
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_part(folder: Path, name: str) -> Part | None:
    """Part `name` memory-mapped, or None when it has not been prepared."""
    path = folder / name
    meta_path = path / "part.json"
    if not meta_path.is_file():
        return None
    meta = read_json(meta_path)
    a = {key: np.load(path / f"{key}.npy", mmap_mode="r", allow_pickle=False) for key in ARRAYS}
    golds = None
    if meta.get("golds"):
        raw = json.loads((path / "golds.json").read_text("utf-8"))
        golds = [Example("", t, None if int(lab) < 0 else int(lab), tuple(ans), grp)
                 for (t, ans, grp), lab in zip(raw, a["labels"])]
    encoded = Encoded(Ragged(a["input_ids"], a["input_offsets"]), Ragged(a["target_ids"], a["target_offsets"]),
                      a["labels"])
    return Part(encoded, a["rows"], int(meta["n_rows"]), golds)


def read_manifest(folder: Path) -> dict | None:
    path = folder / MANIFEST
    return read_json(path) if path.is_file() else None


def write_manifest(folder: Path, manifest: dict) -> None:
    write_json(folder / MANIFEST, manifest)


# ------------------------------------------------------------------------------------------------- trial view


@dataclass(frozen=True, eq=False)
class TrialSplits:
    train: Encoded
    eval: Encoded
    eval_examples: list[Example]
    folder: Path


def trial_splits(folder: Path, spec: TaskSpec, *, eval_split: str, heldout_size: int, seed: int,
                 max_train: int | None, max_eval: int | None) -> TrialSplits | None:
    """A trial's train and eval splits read from the prepared `folder`, exactly as `TaskSpec.load` would build them
    (same carve, same limits, same order), or None when a part they need was not prepared."""
    carve = spec.carve_size(eval_split, heldout_size)
    train = read_part(folder, TRAIN)
    held = read_part(folder, carve_part(carve, seed) if carve else VALIDATION)
    if train is None or held is None:
        return None
    if carve:
        _, kept = carve_rows(spec, train.n_rows, carve, seed)
        keep = np.zeros(train.n_rows, dtype=bool)
        keep[np.asarray(kept[:max_train] if max_train is not None else kept, dtype=np.int64)] = True
        train_enc = train.encoded.take(np.flatnonzero(keep[train.rows]))
    else:
        train_enc = train.encoded.head(train.count_below(max_train))
    n_eval = held.count_below(max_eval)
    for name, enc, n in (("train", train_enc, len(train_enc)), ("validation", held.encoded, n_eval)):
        if n == 0:
            raise TaskDataError(f"task {spec.name}, split {CARVED_WHERE[name] if carve else name}: no examples")
    return TrialSplits(train_enc, held.encoded.head(n_eval), held.golds[:n_eval], folder)
