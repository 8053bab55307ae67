"""One interface over the row tables a loader may return: an Arrow table (a mirror's parquet files, a `datasets`
split), or plain dicts (local JSON lines).

The prepare step walks a split in batches and takes a few rows by index (the carved validation rows), so a split
is never turned into one Python dict per row; `to_list` is kept for the in-trial path that still does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import pyarrow as pa


@dataclass(frozen=True)
class ArrowRows:
    """Rows of an Arrow table (memory-mapped when it comes from a `datasets` cache file)."""

    table: pa.Table
    origin: str = ""

    @property
    def column_names(self) -> list[str]:
        return list(self.table.column_names)

    def __len__(self) -> int:
        return self.table.num_rows

    def batches(self, size: int) -> Iterator[list[dict]]:
        for batch in self.table.to_batches(max_chunksize=size):
            yield batch.to_pylist()

    def take(self, indices: Sequence[int]) -> list[dict]:
        return self.table.take(pa.array(list(indices), type=pa.int64())).to_pylist()

    def to_list(self) -> list[dict]:
        return self.table.to_pylist()


@dataclass(frozen=True)
class ListRows:
    """Rows already held as dicts (local JSON lines, test doubles)."""

    rows: list[dict]
    columns: list[str] = field(default_factory=list)
    origin: str = ""

    @property
    def column_names(self) -> list[str]:
        return list(self.columns)

    def __len__(self) -> int:
        return len(self.rows)

    def batches(self, size: int) -> Iterator[list[dict]]:
        for start in range(0, len(self.rows), size):
            yield self.rows[start : start + size]

    def take(self, indices: Sequence[int]) -> list[dict]:
        return [self.rows[i] for i in indices]

    def to_list(self) -> list[dict]:
        return self.rows


Rows = ArrowRows | ListRows


def as_rows(obj: Any, origin: str = "") -> Rows:
    """Wrap what a loader returned: a pyarrow Table, a `datasets.Dataset`, or anything with `to_list()` and
    `column_names` (such as `tasks.spec.RowTable`)."""
    if isinstance(obj, (ArrowRows, ListRows)):
        return obj
    if isinstance(obj, pa.Table):
        return ArrowRows(obj, origin)
    if hasattr(obj, "with_format") and hasattr(obj, "column_names"):  # datasets.Dataset, without importing it
        return ArrowRows(obj.with_format("arrow")[0 : len(obj)], origin)
    if hasattr(obj, "to_list") and hasattr(obj, "column_names"):
        return ListRows(obj.to_list(), list(obj.column_names), origin)
    raise TypeError(f"cannot read rows from a {type(obj).__name__} ({origin or 'unknown origin'})")
