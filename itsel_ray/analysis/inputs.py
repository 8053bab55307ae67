"""The contract between the sweep and the analysis: the tables a sweep writes, and their loaders.

A sweep's results folder holds `results.parquet` (or `results.csv`), `prompts.parquet` (or `prompts.csv`) and,
optionally, `probe.parquet` (or `probe.csv`).

results: one row per trial.
    stage       "tune" | "transfer"
    role        "source" | "target" | "transfer"
    task        the task trained on (for transfer rows: the target)
    source      transfer rows: the source task; otherwise empty / None
    target      transfer rows and tune-target rows: the target task; None for source tuning
    seed        int
    status      "done" | "failed" | "running" | "damaged" | "pending"
    score       best selection-metric value (the trial's best_score) x100: a number in [0, 100] ([-100, 100]
                for a correlation metric) when done, NaN otherwise
    best_step, steps, wall_s, metric_<name>..., trial_dir
    best_prompt path of the best prompt file (relative paths are relative to the folder), or empty
prompts: one row per saved prompt file.
    stage, role, task, source, seed, step (int), path, is_best (bool)
probe (optional; the sweep's analyze stage writes it for the torch engine): one row per (target, source) pair.
    target, source  task names
    score           the source's best prompt, zero-shot on the target: minus the mean training loss of the target's
                    objective over a fixed sample of the target's training rows (higher = better); NaN/empty = none
    examples, loss  optional: the rows probed and the loss used (informative only)
logme (optional; written like probe): one row per (target, source) pair.
    target, source  task names
    score           LogME of the frozen encoder's pooled features of the same training sample under the source's
                    best prompt, against the target's labels (higher = better); NaN/empty = none
    examples        optional: the rows used (informative only)

Meaning: transfer rows give the ground truth (source, target, seed) -> score; tune rows with role "target" give
the no-transfer baseline (task, seed) -> score; the best prompt of each source (best score over its seeds, ties ->
the smallest seed) is the source's prompt; the target's own tune run at seed s, at every saved step, is the
target prompt of the (target, s) cell; a probe row is the PROBE selector's score of that source for that target
(the same for every seed of the target); a logme row likewise the LOGME selector's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

RESULTS_STEM = "results"
PROMPTS_STEM = "prompts"
PROBE_STEM = "probe"
LOGME_STEM = "logme"
PAIR_TABLES = (PROBE_STEM, LOGME_STEM)  # per (target, source) selector inputs, one table each
PAIR_REQUIRED = ("target", "source", "score")
RESULTS_COLUMNS = ("stage", "role", "task", "source", "target", "seed", "status", "score", "best_step", "steps",
                   "wall_s", "trial_dir", "best_prompt")
RESULTS_REQUIRED = ("stage", "role", "task", "source", "target", "seed", "status", "score", "best_prompt")
PROMPTS_COLUMNS = ("stage", "role", "task", "source", "seed", "step", "path", "is_best")
STAGES = ("tune", "transfer")
ROLES = ("source", "target", "transfer")
STATUSES = ("done", "failed", "running", "damaged", "pending")
METRIC_PREFIX = "metric_"


class InputError(ValueError):
    """A results folder or ground-truth file that does not follow the contract; names the file and field."""


# Task metrics (x100) that can be negative: correlations. Every other one lies in [0, 100].
SIGNED_METRICS = ("mcc", "pearson", "spearman")


def score_range(task: str) -> tuple[float, float, str]:
    """(low, high, why) of a score of `task`: [-100, 100] when its selection metric (or, for "average", one of its
    metrics) is a correlation, else [0, 100]; [0, 100] for a task the registry does not declare."""
    try:
        from itsel_ray.tasks import get_task

        spec = get_task(task)
    except Exception:  # not a declared task: the common 0-100 scale
        return 0.0, 100.0, f"task {task} is not declared, so its score is taken to be on the 0-100 scale"
    metrics = spec.metrics if spec.select_metric == "average" else (spec.select_metric,)
    signed = [m for m in metrics if m in SIGNED_METRICS]
    if signed:
        return -100.0, 100.0, f"task {task} is scored by {signed[0]} x100"
    return 0.0, 100.0, f"task {task} is scored by {', '.join(metrics)} x100"


def check_scores(values: np.ndarray, tasks, *, where) -> None:
    """Raise InputError unless every non-NaN value is finite and in its task's range. `where(i)` names the cell
    of value i (file, row, column) for the message."""
    values = np.asarray(values, dtype=np.float64)
    ranges = {}
    for i, (value, task) in enumerate(zip(values, tasks)):
        if np.isnan(value):
            continue
        low, high, why = ranges.setdefault(task, score_range(task))
        if not (np.isfinite(value) and low <= value <= high):
            raise InputError(f"{where(i)}: {float(value)!r} is outside the score range [{low:g}, {high:g}] ({why})")


def find_table(folder: str | Path, stem: str) -> Path:
    """`<folder>/<stem>.parquet`, else `<stem>.csv`; raises InputError naming both when neither exists."""
    folder = Path(folder)
    for suffix in (".parquet", ".csv"):
        path = folder / f"{stem}{suffix}"
        if path.is_file():
            return path
    raise InputError(f"{folder}: no {stem}.parquet or {stem}.csv (is this a sweep's results folder?)")


def read_table(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, keep_default_na=True)
    except Exception as err:
        raise InputError(f"{path}: cannot read the table ({type(err).__name__}: {err})") from None


def _text(series: pd.Series) -> pd.Series:
    """Strings with None/NaN/"" all as ""."""
    return series.astype(object).where(series.notna(), "").astype(str).str.strip().replace({"None": "", "nan": ""})


def _check_values(df: pd.DataFrame, column: str, allowed: tuple[str, ...], path: Path) -> None:
    bad = sorted(set(df[column]) - set(allowed))
    if bad:
        row = int(df.index[df[column].isin(bad)][0])
        raise InputError(f"{path}: column {column!r} has {bad} (first at row {row}); valid: {', '.join(allowed)}")


def _int_column(df: pd.DataFrame, column: str, path: Path) -> pd.Series:
    values = pd.to_numeric(df[column], errors="coerce")
    bad = values.isna() | (values != values.round())
    if bad.any():
        row = int(df.index[bad][0])
        raise InputError(f"{path}: column {column!r} must hold integers; row {row} has {df[column].iloc[row]!r}")
    return values.astype("int64")


def _require(df: pd.DataFrame, columns: tuple[str, ...], path: Path) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {missing}; the table has {list(df.columns)}")


def load_results(folder: str | Path) -> pd.DataFrame:
    """The validated results table: text columns as str ("" for none), seed int, score float (NaN unless done)."""
    path = find_table(folder, RESULTS_STEM)
    df = read_table(path).reset_index(drop=True)
    _require(df, RESULTS_REQUIRED, path)
    for column in ("stage", "role", "task", "source", "target", "status", "best_prompt"):
        df[column] = _text(df[column])
    _check_values(df, "stage", STAGES, path)
    _check_values(df, "role", ROLES, path)
    _check_values(df, "status", STATUSES, path)
    df["seed"] = _int_column(df, "seed", path)
    raw = df["score"]
    df["score"] = pd.to_numeric(raw, errors="coerce").astype("float64")
    done = df["status"] == "done"
    no_number = done & df["score"].isna()
    if no_number.any():
        i = int(df.index[no_number][0])
        raise InputError(f"{path}: row {i} ({df.at[i, 'stage']} {df.at[i, 'task']} seed {df.at[i, 'seed']}) is "
                         f"done but its 'score' (the trial's best_score) is {str(raw.iloc[i])!r}; a finished trial "
                         "needs a number")
    df.loc[~done, "score"] = float("nan")
    check_scores(df["score"].to_numpy(), df["task"], where=lambda i: f"{path}: row {i}, column 'score'")
    df.attrs["path"] = str(path)
    return df


def load_prompts(folder: str | Path) -> pd.DataFrame:
    """The validated prompts table (an empty table with the right columns if the file is absent)."""
    try:
        path = find_table(folder, PROMPTS_STEM)
    except InputError:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in PROMPTS_COLUMNS})
    df = read_table(path).reset_index(drop=True)
    _require(df, PROMPTS_COLUMNS, path)
    for column in ("stage", "role", "task", "source", "path"):
        df[column] = _text(df[column])
    _check_values(df, "stage", STAGES, path)
    _check_values(df, "role", ROLES, path)
    df["seed"] = _int_column(df, "seed", path)
    df["step"] = _int_column(df, "step", path)
    flags = df["is_best"].astype(str).str.strip().str.lower()
    _check_values(df.assign(is_best=flags), "is_best", ("true", "false", "1", "0"), path)
    df["is_best"] = flags.isin(("true", "1"))
    df.attrs["path"] = str(path)
    return df


def load_pair_table(folder: str | Path, stem: str) -> pd.DataFrame | None:
    """A validated (target, source) -> score table such as probe or logme (target, source: str; score: float,
    NaN = no score), or None if absent.

    An empty task name, a score that is not a number, or two rows for one (target, source) pair raise
    InputError naming the file, the column and the row.
    """
    try:
        path = find_table(folder, stem)
    except InputError:
        return None
    df = read_table(path).reset_index(drop=True)
    _require(df, PAIR_REQUIRED, path)
    for column in ("target", "source"):
        df[column] = _text(df[column])
        empty = df.index[df[column] == ""]
        if len(empty):
            raise InputError(f"{path}: column {column!r} is empty in row {int(empty[0])}")
    score = pd.to_numeric(df["score"], errors="coerce").astype("float64")
    bad = score.isna() & (_text(df["score"]) != "")
    if bad.any():
        row = int(df.index[bad][0])
        raise InputError(f"{path}: column 'score' must hold numbers; row {row} has {df['score'].iloc[row]!r}")
    df["score"] = score.where(np.isfinite(score))
    dupes = df.duplicated(["target", "source"], keep=False)
    if dupes.any():
        row = df[dupes].iloc[0]
        raise InputError(f"{path}: {int(dupes.sum())} rows for target {row['target']!r}, source {row['source']!r}")
    df.attrs["path"] = str(path)
    return df


def load_probe(folder: str | Path) -> pd.DataFrame | None:
    """The validated probe table, or None if absent (`load_pair_table`)."""
    return load_pair_table(folder, PROBE_STEM)


def results_folder(location: str | Path) -> Path:
    """A results folder to read: a local path as it is; a store URI (s3://BUCKET/.../results) as a managed
    node-local copy of its tables and the prompt files they name (itsel_ray.runs.stored_results)."""
    if "://" in str(location):
        from itsel_ray.runs.stored_results import local_results

        return local_results(str(location))
    return Path(location)


def resolve_path(folder: str | Path, path: str) -> Path:
    """A path from a table: absolute as is, relative to the results folder otherwise."""
    p = Path(path)
    return p if p.is_absolute() else Path(folder) / p
