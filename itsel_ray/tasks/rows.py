"""One interface over the row tables a loader may return: an Arrow table (a mirror's parquet files, a `datasets`
split), or plain dicts (local JSON lines).

The prepare step walks a split in batches and takes a few rows by index (the carved validation rows), so a split
is never turned into one Python dict per row; `to_list` is kept for the in-trial path that still does.

`read_jsonl` and `check_data_file` read and recognise local files the way users hand them in: a file that is not
UTF-8, an empty file, a Git LFS pointer saved in place of the data, or a line too long to be a row is refused with
the file and line named, before anything is parsed into memory.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
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


# ------------------------------------------------------------------------------------------------ local files

LFS_POINTER = b"version https://git-lfs.github.com/spec/"  # how every Git LFS pointer file starts
MAX_LINE_BYTES = 64 * 2**20  # one JSON line = one row; a longer line is not a row of any task here
PARQUET_MAGIC = b"PAR1"


class RowFileError(ValueError):
    """A local data file that cannot be read as rows; the message names the file (and line) and what is wrong."""


def check_data_file(path: str | os.PathLike, *, kind: str) -> None:
    """Refuse a file that cannot hold `kind` rows ("parquet" or "JSON lines") before it is parsed: empty, a Git LFS
    pointer instead of the data, or (parquet) without the format's magic bytes. The file's bytes are never quoted."""
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise RowFileError(f"{path} is empty (0 bytes); expected {kind} rows")
    with open(path, "rb") as f:
        head = f.read(max(len(LFS_POINTER), len(PARQUET_MAGIC)))
        if kind == "parquet" and size >= 8:
            f.seek(-4, os.SEEK_END)
            tail = f.read(4)
        else:
            tail = b""
    if head.startswith(LFS_POINTER):
        raise RowFileError(f"{path} is a Git LFS pointer ({size} bytes), not the {kind} data: fetch the file itself "
                           "(`git lfs pull` in the clone, or download it again with huggingface_hub)")
    if kind == "parquet" and (not head.startswith(PARQUET_MAGIC) or tail != PARQUET_MAGIC):
        raise RowFileError(f"{path} is not a parquet file ({size:,} bytes without the format's PAR1 markers at both "
                           "ends; a truncated download or another format saved as .parquet)")


def iter_jsonl(path: str | os.PathLike, *, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[tuple[int, dict]]:
    """(line number, object) of each non-blank line of a JSON-lines file, streamed (a UTF-8 byte-order mark
    allowed). Refused with the file and line named: an empty file, a Git LFS pointer, a line that is not UTF-8
    (Latin-1 files), not JSON or not an object, a line longer than `max_line_bytes`, and a file without rows."""
    path = Path(path)
    check_data_file(path, kind="JSON lines")
    found = False
    with open(path, "rb") as f:
        lineno = 0
        while True:
            raw = f.readline(max_line_bytes + 1)
            if not raw:
                break
            lineno += 1
            if len(raw) > max_line_bytes:
                raise RowFileError(f"{path} line {lineno} is longer than {max_line_bytes / 2**20:.0f} MiB; one line "
                                   "holds one row, and no row of a text task is that long")
            if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise RowFileError(f"{path} line {lineno} is not UTF-8 (byte 0x{raw[err.start]:02x} at byte "
                                   f"{err.start + 1} of the line); re-save the file as UTF-8, e.g. "
                                   f"`iconv -f latin1 -t utf-8`") from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise RowFileError(f"{path} line {lineno} is not JSON ({err.msg} at column {err.colno})") from None
            if not isinstance(row, dict):
                raise RowFileError(f"{path} line {lineno} is a JSON {type(row).__name__}, not an object of columns")
            found = True
            yield lineno, row
    if not found:
        raise RowFileError(f"{path} holds no rows (only blank lines); expected one JSON object per line")


def read_jsonl(path: str | os.PathLike, *, max_line_bytes: int = MAX_LINE_BYTES) -> ListRows:
    """Rows of a JSON-lines file (one object per line, blank lines skipped), refused as `iter_jsonl` says."""
    rows: list[dict] = []
    columns: dict[str, None] = {}
    for _, row in iter_jsonl(path, max_line_bytes=max_line_bytes):
        rows.append(row)
        columns.update(dict.fromkeys(row))
    return ListRows(rows, list(columns), str(path))
