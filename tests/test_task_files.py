"""Task files: the strict schema (an unknown key names the file and the key), the shorthand and defaults, local rows
beside the file, a declared mirror, the counted training size, and loading a file again (unchanged, edited, broken)."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from itsel_ray.schema import ConfigError
from itsel_ray.tasks import TASKS, get_task
from itsel_ray.tasks.declare import forget, load_task_file, task_files_in
from itsel_ray.tasks.spec import clear_row_cache

ROWS = {
    "train": [{"text": "great battery", "label": 1}, {"text": "broke in a day", "label": 0},
              {"text": "works well", "label": 1}],
    "validation": [{"text": "too loud", "label": 0}],
}


@pytest.fixture
def study(tmp_path):
    """A folder with local rows (data/*.jsonl) and a writer of task files in it; every task declared is forgotten."""
    (tmp_path / "data").mkdir()
    for split, rows in ROWS.items():
        (tmp_path / "data" / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    declared: list = []

    def write(tasks, name="tasks.yaml", **top):
        path = tmp_path / name
        path.write_text(yaml.safe_dump({**top, "tasks": tasks}, sort_keys=False))
        return path

    def load(path):
        specs = load_task_file(path)
        declared.extend(specs)
        return specs

    write.load, write.root = load, tmp_path
    yield write
    forget([s for s in declared if s.name in TASKS])
    from itsel_ray.tasks import declare

    declare._LOADED.clear()
    clear_row_cache()


REVIEWS = {"name": "reviews", "description": "product reviews", "data": {"kind": "local", "path": "data"},
           "fields": ["text"], "labels": ["negative", "positive"]}


def test_a_local_task_from_a_file_formats_scores_and_counts_its_rows(study):
    (spec,) = study.load(study([REVIEWS]))
    assert get_task("reviews") is spec
    assert (spec.prefix, spec.formatter, spec.columns, spec.metrics, spec.select_metric) == (
        "reviews", "fields", ("text", "label"), ("accuracy",), "accuracy")
    assert spec.train_size == 3  # counted: not declared
    assert dict(spec.data.splits) == {"train": "train.jsonl", "validation": "validation.jsonl"}
    examples = spec.load("validation")
    assert [(e.input, e.target) for e in examples] == [("reviews text: too loud", "negative")]
    assert spec.score(["negative"], examples) == {"accuracy": 100.0, "score": 100.0}


def test_defaults_apply_under_every_task_and_a_declared_size_wins(study):
    tasks = [REVIEWS, {**REVIEWS, "name": "reviews2", "train_size": 1000, "metrics": ["accuracy", "f1"]}]
    specs = study.load(study(tasks, defaults={"category": "multiple_choice", "max_source_length": 64}))
    assert [(s.category, s.max_source_length) for s in specs] == [("multiple_choice", 64)] * 2
    assert specs[1].train_size == 1000 and specs[1].select_metric == "average"


@pytest.mark.parametrize("change, message", [
    ({"colums": ["text"]}, r"unknown key 'tasks\.reviews\.colums' in .*tasks\.yaml; valid keys: .*columns"),
    ({"data": {"kind": "local", "path": "data", "split": {}}}, r"unknown key 'tasks\.reviews\.data\.split' in"),
    ({"labels": {"word": ["a", "b"]}}, r"unknown key 'tasks\.reviews\.labels\.word'"),
    ({"formatter": "field"}, r"tasks\.reviews: unknown formatter 'field'; valid names: .*fields.* in .*tasks\.yaml"),
    ({"metrics": ["acc"]}, r"tasks\.reviews: unknown task metric 'acc'; valid names: .*accuracy"),
    ({"data": {"kind": "csv", "path": "x"}}, r"unknown data source kind 'csv'"),
    ({"name": "My Task"}, r"name 'My Task' must be lower case"),
    ({"max_target_length": 0}, r"max_target_length must be >= 1"),
    ({"labels": ["a", "a"]}, r"labels\.words must be distinct"),
    ({"data": {"kind": "local", "path": "data", "splits": {"test": "t.jsonl"}}}, r"unknown split 'test'"),
    ({"data": {"kind": "local", "path": "nowhere"}}, r"train_size is not given .*/nowhere/train\.jsonl not found"),
    ({"name": "boolq"}, r"tasks\.boolq: task 'boolq' is already registered in .*tasks\.yaml"),
    ({"fields": None}, r"give `formatter`"),
])
def test_a_bad_declaration_names_the_file_the_task_and_the_key(study, change, message):
    with pytest.raises(ConfigError, match=message):
        study.load(study([{**REVIEWS, **change}]))
    assert get_task("boolq").origin.endswith("paper.yaml")  # a clash leaves the packaged task alone


def test_a_file_is_declared_whole_or_not_at_all_and_reloads_when_edited(study):
    path = study([REVIEWS, {**REVIEWS, "name": "broken", "formatter": "nope"}])
    with pytest.raises(ConfigError, match="unknown formatter 'nope'"):
        study.load(path)
    assert "reviews" not in TASKS  # the good task before the broken one is not left behind
    path = study([REVIEWS])
    first = study.load(path)
    assert study.load(path) == first and get_task("reviews") is first[0]  # unchanged: a no-op
    study([{**REVIEWS, "prefix": "rev"}])
    (again,) = study.load(path)
    assert get_task("reviews").prefix == "rev" and again is get_task("reviews")


def test_a_declared_mirror_is_read_instead_of_the_hub(study):
    folder = study.root / "copy"
    folder.mkdir()
    for split, rows in ROWS.items():
        pq.write_table(pa.Table.from_pylist(rows), folder / f"{split}-00000-of-00001.parquet")
    (spec,) = study.load(study([{**REVIEWS, "data": {"kind": "hub", "path": "someone/reviews", "mirror": "copy"}}]))
    assert spec.train_size == 3  # counted from the mirror, no Hub metadata needed
    assert [e.target for e in spec.load("train")] == ["positive", "negative", "positive"]


def test_the_paper_tasks_come_from_the_packaged_file():
    assert get_task("mnli").origin.endswith("itsel_ray/tasks/paper.yaml")
    assert get_task("syn_has0").origin == ""  # declared in Python, through the same function


def test_a_folder_of_task_files(tmp_path):
    (tmp_path / "a.yaml").write_text("tasks: []\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.yml").write_text("tasks: []\n")
    assert [p.name for p in task_files_in(tmp_path)] == ["a.yaml", "b.yml"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no task files"):
        task_files_in(tmp_path / "empty")
