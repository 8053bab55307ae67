"""Fixture mirrors: the fixture rows of tests/fixtures/tasks written as a local mirror in the Hub's layouts.

Each Hub dataset is written the way its repository lays it out (reference/datasets.md): `<config>/<split>-00000-
of-00001.parquet` for GLUE, SuperGLUE, WinoGrande and RACE, `plain_text/` for SQuAD, `data/` for DROP and
HellaSwag, and CosmosQA as its refs/convert/parquet export (`default/<split>/0000.parquet`). CR and CxC go in
the mirror root as JSON lines, beside the Hub datasets. A word-level tokenizer over the fixture text
("vocab:data_fixtures") keeps the tests offline.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from itsel_ray.tasks import SOURCE_TASKS, TARGET_TASKS, get_task
from itsel_ray.tasks.synthetic import VOCABULARIES

FIXTURES = Path(__file__).parent / "fixtures" / "tasks"
PAPER_TASKS = (*SOURCE_TASKS, *TARGET_TASKS)
SHARD = "{split}-00000-of-00001.parquet"
LAYOUT = {  # dataset id -> file path inside its folder, when not "<config>/<split>-00000-of-00001.parquet"
    "rajpurkar/squad": "plain_text/" + SHARD,
    "ucinlp/drop": "data/" + SHARD,
    "Rowan/hellaswag": "data/" + SHARD,
    "allenai/cosmos_qa": "default/{split}/0000.parquet",
}
TOKENIZER = "vocab:data_fixtures"


def fixture(task: str) -> dict[str, list[dict]]:
    return json.loads((FIXTURES / f"{task}.json").read_text())


def _strings(obj):
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)


def _vocabulary() -> list[str]:
    text = [s for f in sorted(FIXTURES.glob("*.json")) for s in _strings(json.loads(f.read_text()))]
    for name in PAPER_TASKS:
        for style in ("text", "abstract"):
            text += list(get_task(name).label_words(style) or ())
    text += ["zero one two three four five six seven eight nine point", "is it passage"]
    text += [str(i) for i in range(100)]
    return sorted({w for t in text for w in re.findall(r"\w+|[^\w\s]+", t)})


if "data_fixtures" not in VOCABULARIES:
    VOCABULARIES.add("data_fixtures", _vocabulary)


def write_parquet(path: Path, rows: list[dict], schema: pa.Schema | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist(rows, schema=schema) if rows or schema is None else schema.empty_table()
    pq.write_table(table, path)
    return path


def split_path(root: Path, task: str, split: str) -> Path:
    """Where the mirror holds logical split `split` ("train"/"validation") of `task`."""
    data = get_task(task).data
    name = data.splits[split]
    if data.kind == "json":
        return root / data.path / name
    layout = LAYOUT.get(data.path, f"{data.name}/" + SHARD)
    return root / data.path / layout.format(split=name)


def write_task(root: Path, task: str, rows: dict[str, list[dict]] | None = None) -> Path:
    """Write `task`'s splits (default: its fixture rows) into mirror `root`; returns the root."""
    rows = rows if rows is not None else fixture(task)
    for split, split_rows in rows.items():
        path = split_path(root, task, split)
        if get_task(task).data.kind == "json":
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(json.dumps(r) + "\n" for r in split_rows))
        else:
            write_parquet(path, split_rows)
    return root


def write_mirror(root: Path, tasks=PAPER_TASKS) -> Path:
    for task in tasks:
        write_task(root, task)
    return root
