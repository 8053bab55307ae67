"""Plain GitHub-flavoured Markdown tables (no extra dependency)."""

from __future__ import annotations

import math
from typing import Sequence

import pandas as pd


def fmt(value, digits: int = 2) -> str:
    """A cell: floats with `digits` decimals, NaN/None as "-", everything else as str."""
    if value is None or value is pd.NA:
        return "-"
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value).replace("|", "\\|")


def md_table(headers: Sequence[str], rows: Sequence[Sequence], *, align: str | None = None) -> str:
    """A Markdown table; `align` is one char per column (l/r), default: first left, rest right."""
    align = align or ("l" + "r" * (len(headers) - 1))
    rule = ["---:" if a == "r" else ":---" for a in align]
    lines = ["| " + " | ".join(str(h) for h in headers) + " |", "| " + " | ".join(rule) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def frame_to_md(df: pd.DataFrame, *, digits: int = 2, index: bool = True) -> str:
    """A DataFrame as a Markdown table (index as the first column when `index`)."""
    headers = ([df.index.name or ""] if index else []) + [str(c) for c in df.columns]
    rows = []
    for key, row in df.iterrows():
        cells = [fmt(v, digits) for v in row.tolist()]
        rows.append(([fmt(key)] if index else []) + cells)
    return md_table(headers, rows)
