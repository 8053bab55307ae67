"""Checks of a split's rows before they are formatted, and of its examples after: what the prepare step says about
the data beyond "it formats".

Before formatting (`scan_columns`, vectorised for Arrow tables): a null cell in a declared column (it would
become the text "None"), a text column that is empty in every row, and a row whose columns together hold more text
than any row of a text task (`tasks.limits`) are problems that name the column, the count and the first rows;
empty cells in some rows are a warning. After formatting (`ExampleDigest`): duplicated examples within a split and
validation inputs that also occur in training are warnings, with the first rows in the detail.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from itsel_ray.tasks.limits import limit_reason, row_char_limit

SHOWN = 3  # rows quoted per finding


@dataclass
class Findings:
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)


def _rows_text(indices) -> str:
    shown = ", ".join(str(int(i)) for i in indices[:SHOWN])
    return shown + (", ..." if len(indices) > SHOWN else "")


# ------------------------------------------------------------------------------------------------ before formatting


def _arrow_chars(arr) -> np.ndarray:
    """Characters per row of an Arrow array (strings, lists and structs of them, summed; other types 0)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    t = arr.type
    n = len(arr)
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return np.asarray(pc.utf8_length(arr).fill_null(0), dtype=np.int64)
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        child = _arrow_chars(arr.flatten())
        parents = np.asarray(pc.list_parent_indices(arr), dtype=np.int64)
        return np.bincount(parents, weights=child, minlength=n).astype(np.int64) if len(child) else np.zeros(n, np.int64)
    if pa.types.is_struct(t):
        total = np.zeros(n, np.int64)
        for i in range(t.num_fields):
            total += _arrow_chars(arr.field(i))
        return total
    return np.zeros(n, np.int64)


def _py_chars(value) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return sum(_py_chars(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_py_chars(v) for v in value)
    return 0


def _column_stats(rows, column: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(null rows, characters per row, blank rows or None when the column is not text) of one column."""
    table = getattr(rows, "table", None)
    if table is not None:
        import pyarrow as pa
        import pyarrow.compute as pc

        col = table.column(column)
        nulls = np.flatnonzero(np.asarray(col.is_null(), dtype=bool))
        chars = _arrow_chars(col)
        blank = None
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            trimmed = pc.utf8_length(pc.utf8_trim_whitespace(col)).fill_null(1)
            blank = np.flatnonzero(np.asarray(pc.equal(trimmed, 0), dtype=bool))
        return nulls, chars, blank
    values = [row.get(column) for row in rows.to_list()]
    nulls = np.flatnonzero([v is None for v in values])
    chars = np.asarray([_py_chars(v) for v in values], dtype=np.int64)
    texts = [v for v in values if v is not None]
    blank = np.flatnonzero([isinstance(v, str) and not v.strip() for v in values]) \
        if texts and all(isinstance(v, str) for v in texts) else None
    return nulls, chars, blank


def scan_columns(spec, rows, where: str) -> Findings:
    """Null, blank and over-long cells of the declared columns of one split (`rows`: a `tasks.rows` table)."""
    out = Findings()
    n = len(rows)
    total = np.zeros(n, np.int64)
    head = f"task {spec.name}, split {where}"
    for column in spec.columns:
        if column not in rows.column_names:
            continue  # check_columns reports it
        nulls, chars, blank = _column_stats(rows, column)
        total += chars
        if len(nulls):
            out.problems.append(f"{head}: column {column!r} is null (an empty cell) in {len(nulls):,} of {n:,} rows "
                                f"(rows {_rows_text(nulls)}); fill the cells or drop the rows")
        if blank is not None and len(blank):
            blank = np.setdiff1d(blank, nulls)
            if len(blank) == n - len(nulls) and n:
                out.problems.append(f"{head}: column {column!r} is empty in every row; the task reads its text")
            elif len(blank):
                out.warnings.append(f"{head}: column {column!r} is empty in {len(blank):,} of {n:,} rows")
                out.details.append(f"{head}: empty {column!r} in rows {_rows_text(blank)}")
    limit = row_char_limit(spec)
    long_rows = np.flatnonzero(total > limit)
    if len(long_rows):
        first = int(long_rows[0])
        out.problems.append(f"{head}: {len(long_rows):,} row(s) hold more text than {limit_reason(spec)}: row "
                            f"{first} holds {int(total[first]):,} characters (rows {_rows_text(long_rows)}); "
                            "shorten or drop them")
    return out


# ------------------------------------------------------------------------------------------------ after formatting


@dataclass
class ExampleDigest:
    """Hashes of one part's examples, in order, with the split row of each: enough to find duplicates within the
    part and inputs shared with another part, without keeping the texts."""

    pairs: np.ndarray  # hash of (input, target)
    inputs: np.ndarray  # hash of input
    rows: np.ndarray  # split row of each example

    @classmethod
    def of(cls, examples, rows) -> "ExampleDigest":
        return cls(np.fromiter((hash((e.input, e.target)) for e in examples), np.int64, len(examples)),
                   np.fromiter((hash(e.input) for e in examples), np.int64, len(examples)),
                   np.asarray(rows, dtype=np.int64))

    @classmethod
    def concat(cls, parts: list["ExampleDigest"]) -> "ExampleDigest":
        if not parts:
            return cls(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64))
        return cls(*(np.concatenate([getattr(p, k) for p in parts]) for k in ("pairs", "inputs", "rows")))


def duplicates(spec, digest: ExampleDigest, where: str) -> Findings:
    """Examples of one part that repeat an earlier one exactly (same input and target)."""
    out = Findings()
    _, first = np.unique(digest.pairs, return_index=True)
    repeated = np.setdiff1d(np.arange(len(digest.pairs)), first)
    if len(repeated):
        n = len(digest.pairs)
        out.warnings.append(f"task {spec.name}, split {where}: {len(repeated):,} of {n:,} examples "
                            f"({100 * len(repeated) / n:.1f}%) repeat an earlier one (same input and target)")
        out.details.append(f"task {spec.name}, split {where}: repeated examples come from rows "
                           f"{_rows_text(digest.rows[repeated])}")
    return out


def overlap(spec, train: ExampleDigest, held: ExampleDigest, where: str) -> Findings:
    """Evaluation examples whose input also occurs in training (a model can have seen the answer)."""
    out = Findings()
    shared = np.flatnonzero(np.isin(held.inputs, train.inputs))
    if len(shared):
        n = len(held.inputs)
        rows = np.unique(held.rows[shared])
        out.warnings.append(f"task {spec.name}: {len(shared):,} of {n:,} {where} examples ({100 * len(shared) / n:.1f}%) "
                            "have an input that also occurs in the training split")
        index = {int(h): int(r) for h, r in zip(train.inputs[::-1], train.rows[::-1])}
        pairs = [f"{where} row {int(held.rows[i])} = train row {index[int(held.inputs[i])]}" for i in shared[:SHOWN]]
        out.details.append(f"task {spec.name}: shared inputs in {len(rows):,} {where} rows, e.g. " + "; ".join(pairs))
    return out
