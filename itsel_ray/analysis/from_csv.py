"""Build a `Study` from an external ground-truth matrix (CSV: one row per source, one column per target).

Layout: the first column names the row (a source task, or a baseline row such as "prompt-text"); for each target
a column `<target>` (the mean over seeds), optionally `<target>_std`, and optionally per-seed columns
`<target>_s<seed>` (e.g. `boolq_s28`). With per-seed columns the study has those seeds; without, it has one
pseudo-seed `MEAN_SEED` whose scores are the means (the paper's Table 7 is such a file). Task names are mapped to
the project's spelling with `meta.canonical_name`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from itsel_ray.analysis.from_sweep import order_tasks
from itsel_ray.analysis.inputs import InputError, check_scores
from itsel_ray.analysis.meta import PAPER_SOURCES, PAPER_TARGETS, TaskMeta, canonical_name, resolve_metadata
from itsel_ray.analysis.study import MEAN_SEED, Study

BASELINE_ROWS = ("prompt-text", "prompt-abstract")
_SEED_COLUMN = re.compile(r"^(.+)_s(\d+)$")


def _numeric(df: pd.DataFrame, column: str, path: Path, *, task: str | None = None) -> np.ndarray:
    """The column's numbers (an empty cell: NaN, a missing score). Text, "nan" and "inf" are refused, and so is a
    score outside its task's range when `task` is given (a std column: any negative or non-finite value)."""
    text = df[column].fillna("").astype(str).str.strip()
    values = pd.to_numeric(text.where(text != ""), errors="coerce")
    bad = values.isna() & (text != "")
    if bad.any():
        row = df.index[bad][0]
        raise InputError(f"{path}: row {row!r}, column {column!r}: {df.loc[row, column]!r} is not a number "
                         "(leave the cell empty for a missing score)")
    out = values.to_numpy(dtype=np.float64)
    if task is not None:
        check_scores(out, [task] * len(out), where=lambda i: f"{path}: row {df.index[i]!r}, column {column!r}")
    else:
        wrong = ~np.isnan(out) & ~(np.isfinite(out) & (out >= 0))
        if wrong.any():
            row = df.index[np.flatnonzero(wrong)[0]]
            raise InputError(f"{path}: row {row!r}, column {column!r}: {df.loc[row, column]!r} is not a standard "
                             "deviation (a finite number >= 0)")
    return out


def _columns(df: pd.DataFrame, path: Path) -> tuple[dict[str, str], dict[str, str], dict[str, dict[int, str]]]:
    """(target -> mean column, target -> std column, target -> {seed: column})."""
    means, stds, per_seed = {}, {}, {}
    for column in df.columns:
        match = _SEED_COLUMN.match(column)
        if match:
            per_seed.setdefault(canonical_name(match.group(1)), {})[int(match.group(2))] = column
        elif column.endswith("_std"):
            stds[canonical_name(column[: -len("_std")])] = column
        else:
            means[canonical_name(column)] = column
    orphans = sorted((set(stds) | set(per_seed)) - set(means))
    if orphans:
        raise InputError(f"{path}: std or per-seed columns for {orphans} but no mean column")
    if per_seed and set(per_seed) != set(means):
        raise InputError(f"{path}: per-seed columns for {sorted(per_seed)} only; give them for every target "
                         f"({sorted(means)}) or for none")
    seed_sets = {tuple(sorted(v)) for v in per_seed.values()}
    if len(seed_sets) > 1:
        raise InputError(f"{path}: targets have different seeds: {sorted(seed_sets)}")
    return means, stds, per_seed


def study_from_csv(path: str | Path, *, metadata: Mapping[str, TaskMeta] | None = None,
                   baseline_row: str = "prompt-text") -> Study:
    """Read a ground-truth CSV into a Study (no prompts: only the prompt-free selectors apply).

    Args:
        path: the CSV file.
        metadata: task -> TaskMeta; default: the tasks registry, else the paper's table.
        baseline_row: the row holding the no-transfer baseline (other BASELINE_ROWS rows are ignored).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"ground-truth file not found: {path}")
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)  # "nan" and "NA" stay text, to be refused
    except Exception as err:
        raise InputError(f"{path}: cannot read CSV ({type(err).__name__}: {err})") from None
    if raw.shape[1] < 2:
        raise InputError(f"{path}: expected a row-name column and at least one target column")
    names = [canonical_name(n) for n in raw.iloc[:, 0].fillna("")]
    if len(set(names)) != len(names):
        raise InputError(f"{path}: duplicate row names {sorted({n for n in names if names.count(n) > 1})}")
    df = raw.iloc[:, 1:].set_axis(names, axis=0)
    baseline_key = canonical_name(baseline_row)
    if baseline_key not in df.index:
        raise InputError(f"{path}: no baseline row {baseline_row!r}; rows are {names}")
    means, stds, per_seed = _columns(df, path)

    targets = order_tasks(means, PAPER_TARGETS)
    sources = order_tasks([n for n in names if n not in BASELINE_ROWS and n != baseline_key], PAPER_SOURCES)
    both = [t for t in targets if t in sources]
    if both:
        raise InputError(f"{path}: {both} are both a source row and a target column; a task's transfer to itself is "
                         "not an intermediate-task transfer (drop the row or the column)")
    seeds = tuple(sorted(next(iter(per_seed.values())))) if per_seed else (MEAN_SEED,)
    src_rows = df.loc[list(sources)]
    base_row = df.loc[[baseline_key]]

    def matrix(rows: pd.DataFrame) -> np.ndarray:
        if per_seed:
            for t in targets:  # the mean columns are read too: a bad one is refused like a per-seed one
                _numeric(rows, means[t], path, task=t)
            return np.stack([np.stack([_numeric(rows, per_seed[t][r], path, task=t) for r in seeds], axis=-1)
                             for t in targets], axis=1)
        return np.stack([_numeric(rows, means[t], path, task=t) for t in targets], axis=1)[..., None]

    transfer = matrix(src_rows)
    baseline = matrix(base_row)[0]
    transfer_std = baseline_std = None
    if not per_seed and stds:
        def std_of(rows: pd.DataFrame) -> np.ndarray:
            return np.stack([_numeric(rows, stds[t], path) if t in stds else np.full(len(rows), np.nan)
                             for t in targets], axis=1)

        transfer_std, baseline_std = std_of(src_rows), std_of(base_row)[0]
    notes = []
    if not per_seed:
        notes.append("the file gives means over seeds only: every (target, seed) cell is the single 'mean' cell")
    n_missing = int(np.isnan(transfer).sum())
    if n_missing:
        notes.append(f"{n_missing} of {transfer.size} transfer scores are empty (missing)")
    meta = resolve_metadata((*sources, *targets), metadata, notes=notes)
    return Study(
        sources=sources, targets=targets, seeds=seeds, transfer=transfer, baseline=baseline,
        meta=meta, transfer_std=transfer_std,
        baseline_std=baseline_std, origin=f"ground-truth file {path}", notes=tuple(notes),
    )
