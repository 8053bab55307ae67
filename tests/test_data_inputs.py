"""Real files, real faults, before any trial: how the prepare step reads label words, null and empty cells, files
that are not what their name says, a runaway row, duplicates and train/validation overlap (each one line naming
the file, row or column), and the authors' ReCoRD evaluation and carve draw."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pytest

from itsel_ray.data.prepare import PrepareSettings, prepare_task
from itsel_ray.runs.prepared import console_lines
from itsel_ray.tasks import get_task
from itsel_ray.tasks import spec as spec_module
from itsel_ray.tasks.carve import authors_permutation
from itsel_ray.tasks.raw_labels import LabelValueError, read_label
from itsel_ray.tasks.rows import RowFileError, read_jsonl
from itsel_ray.tasks.spec import TaskDataError, carve_rows, clear_row_cache
from itsel_ray.trial_config import DataConfig, ModelConfig
from tests.mirrors import TOKENIZER, fixture, split_path, write_parquet, write_task

TINY = {"d_model": 8, "d_ff": 8, "num_layers": 1, "num_decoder_layers": 1, "num_heads": 1, "d_kv": 8}


@pytest.fixture(autouse=True)
def _isolated(monkeypatch):
    for var in ("ITSEL_RAY_DATA_MIRROR", "ITSEL_RAY_DATA_CACHE", "ITSEL_RAY_DATA_DIR"):
        monkeypatch.delenv(var, raising=False)
    clear_row_cache()
    yield
    clear_row_cache()


def prepare(task: str, root: Path, tmp_path: Path, **data):
    settings = PrepareSettings(ModelConfig(config=TINY, tokenizer=TOKENIZER), DataConfig(**data), (0,))
    return prepare_task(task, settings, cache_root=tmp_path / "cache", mirror=root)


def rows_of(task: str, n: int, split: str = "train", **change) -> list[dict]:
    base = fixture(task)[split]
    return [{**base[i % len(base)], **{k: (v(i) if callable(v) else v) for k, v in change.items()}}
            for i in range(n)]


# ------------------------------------------------------------------------------------------------ labels


@pytest.mark.parametrize("task,raw,index,how", [
    ("rte", 1, 1, "id"), ("rte", "1", 1, "id"), ("rte", 1.0, 1, "id"),
    ("rte", "not_entailment", 1, "word"), ("rte", "Not Entailment", 1, "word"), ("mnli", "contradiction", 2, "word"),
    ("cr", "positive", 1, "word"), ("cr", "postive", 1, "word"), ("cr", "negative", 0, "word"),
    ("boolq", True, 1, "bool"), ("boolq", "false", 0, "word"), ("winogrande", "2", 1, "value"),
    ("winogrande", 2, 1, "value"), ("hellaswag", "3", 3, "value"), ("hellaswag", "X", 1, "word"),
    ("race", "C", 2, "value"), ("cosmosqa", 3, 3, "id"),
])
def test_class_ids_dataset_values_booleans_and_unambiguous_words_are_read(task, raw, index, how):
    assert read_label(get_task(task).labels, raw) == (index, how)


@pytest.mark.parametrize("task,raw,message", [
    ("rte", "entailed", "expected a class id 0..1 or a label word (entailment, not_entailment)"),
    ("rte", True, "is a boolean, which names no class of this task"),
    ("cr", False, "is a boolean"),
    ("mnli", 3, "label 3 is outside the label set: expected a class id 0..2"),
    ("mnli", -1, "hidden test labels are -1 or empty"),
    ("mnli", None, "label is empty (null)"),
    ("winogrande", 0, "expected one of the dataset's values 1, 2"),
    ("rte", 0.5, "label 0.5 is outside"),
    ("hellaswag", "", "hidden test labels"),
])
def test_labels_that_name_no_class_say_what_is_expected(task, raw, message):
    with pytest.raises(LabelValueError) as err:
        read_label(get_task(task).labels, raw)
    assert message in str(err.value)


def test_label_words_prepare_and_the_mapping_is_said_once(tmp_path):
    train = rows_of("rte", 40, label=lambda i: ["entailment", "not_entailment"][i % 2])
    root = write_task(tmp_path / "m", "rte", {"train": train, "validation": fixture("rte")["validation"]})
    report = prepare("rte", root, tmp_path)
    assert report.ok, report.problems
    assert report.splits[0].labels == {"entailment": 20, "not_entailment": 20}
    assert report.notes == ("task rte, split train: labels given as label words ('entailment' -> 0, "
                            "'not_entailment' -> 1), mapped to class ids",)
    assert [line for line in console_lines([report]) if "note" in line] == [f"[prepare] note: {report.notes[0]}"]


def test_crs_hub_label_words_map_to_the_authors_verbalizer(tmp_path):
    rows = [{"text": f"review {i}", "label": ["negative", "positive"][i % 2]} for i in range(6)]
    root = write_task(tmp_path / "m", "cr", {"train": rows, "validation": fixture("cr")["validation"]})
    report = prepare("cr", root, tmp_path)
    assert report.ok, report.problems
    assert report.splits[0].labels == {"negative": 3, "postive": 3}
    assert "'positive' -> 1 (postive)" in report.notes[0]


def test_booleans_are_read_only_where_the_label_words_are_booleans(tmp_path):
    ok = write_task(tmp_path / "b", "boolq", {"train": rows_of("boolq", 4, label=lambda i: bool(i % 2)),
                                              "validation": fixture("boolq")["validation"]})
    report = prepare("boolq", ok, tmp_path / "1")
    assert report.ok and "booleans (False -> 0, True -> 1)" in report.notes[0]
    bad = write_task(tmp_path / "r", "rte", {"train": rows_of("rte", 4, label=lambda i: bool(i % 2)),
                                             "validation": fixture("rte")["validation"]})
    report = prepare("rte", bad, tmp_path / "2")
    assert not report.ok
    assert "row 0: label False is a boolean, which names no class of this task; expected a class id 0..1 or a " \
           "label word (entailment, not_entailment)" in report.problems[0]


# ------------------------------------------------------------------------------------------------ cells


def test_null_text_cells_are_refused_with_the_column_and_the_rows(tmp_path):
    train = rows_of("rte", 64, sentence1=lambda i: None if i % 5 == 2 else f"sentence number {i}")
    root = write_task(tmp_path / "m", "rte", {"train": train, "validation": fixture("rte")["validation"]})
    report = prepare("rte", root, tmp_path)
    assert not report.ok and report.cache is None
    assert report.problems == ("task rte, split train: column 'sentence1' is null (an empty cell) in 13 of 64 rows "
                               "(rows 2, 7, 12, ...); fill the cells or drop the rows",)


def test_null_cells_never_become_the_text_none_when_formatted_directly():
    row = {**fixture("rte")["train"][0], "sentence1": None}
    with pytest.raises(TaskDataError, match="task rte, split train, row 0: column 'sentence1' is null"):
        get_task("rte").examples_from_rows([row], split="train")


def test_an_all_empty_text_column_is_refused_and_some_empty_cells_are_a_warning(tmp_path):
    root = write_task(tmp_path / "a", "rte", {"train": rows_of("rte", 8, sentence2=""),
                                              "validation": fixture("rte")["validation"]})
    report = prepare("rte", root, tmp_path / "1")
    assert report.problems == ("task rte, split train: column 'sentence2' is empty in every row; the task reads its "
                               "text",)
    root = write_task(tmp_path / "b", "rte", {"train": rows_of("rte", 8, sentence2=lambda i: " " if i < 2 else "x y"),
                                              "validation": fixture("rte")["validation"]})
    report = prepare("rte", root, tmp_path / "2")
    assert report.ok
    assert "task rte, split train: column 'sentence2' is empty in 2 of 8 rows" in report.warnings


def test_a_runaway_row_is_refused_quickly_naming_it(tmp_path):
    huge = "word " * 2_000_000  # 10 MB in one cell
    train = rows_of("rte", 3, sentence1=lambda i: huge if i == 1 else "short")
    root = write_task(tmp_path / "m", "rte", {"train": train, "validation": fixture("rte")["validation"]})
    t0 = time.perf_counter()
    report = prepare("rte", root, tmp_path)
    assert time.perf_counter() - t0 < 20
    assert not report.ok
    assert "task rte, split train: 1 row(s) hold more text than the most a row of task rte may hold (100,000 " \
           "characters; its inputs are cut at 128 tokens): row 1 holds 10,000,0" in report.problems[0]


def test_json_lines_rows_are_scanned_too(tmp_path):
    rows = [{"text": None if i == 3 else f"review {i}", "label": i % 2} for i in range(6)]
    root = write_task(tmp_path / "m", "cr", {"train": rows, "validation": fixture("cr")["validation"]})
    report = prepare("cr", root, tmp_path)
    assert report.problems == ("task cr, split train: column 'text' is null (an empty cell) in 1 of 6 rows (rows "
                               "3); fill the cells or drop the rows",)


# ------------------------------------------------------------------------------------------------ files


def test_a_latin1_json_lines_file_names_the_file_and_the_line(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_bytes(b'{"text": "good", "label": 1}\n{"text": "caf\xe9 noir", "label": 0}\n')
    with pytest.raises(RowFileError) as err:
        read_jsonl(path)
    assert str(err.value) == (f"{path} line 2 is not UTF-8 (byte 0xe9 at byte 14 of the line); re-save the file as "
                              "UTF-8, e.g. `iconv -f latin1 -t utf-8`")


def test_an_empty_json_lines_file_is_named_as_empty(tmp_path):
    root = write_task(tmp_path / "m", "cr", {"train": [], "validation": fixture("cr")["validation"]})
    report = prepare("cr", root, tmp_path)
    path = split_path(root, "cr", "train")
    assert report.problems == (f"task cr: {path} is empty (0 bytes); expected JSON lines rows",)
    path.write_text("\n\n")
    clear_row_cache()
    assert "holds no rows (only blank lines)" in prepare("cr", root, tmp_path / "2").problems[0]


def test_a_bom_blank_lines_and_non_objects(tmp_path):
    path = tmp_path / "f.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}\n\n{"a": 2}\n')
    assert read_jsonl(path).rows == [{"a": 1}, {"a": 2}]
    path.write_text('{"a": 1}\n[1, 2]\n')
    with pytest.raises(RowFileError, match="line 2 is a JSON list, not an object of columns"):
        read_jsonl(path)
    path.write_text('{"a": 1}\n{"a": \n')
    with pytest.raises(RowFileError, match="line 2 is not JSON"):
        read_jsonl(path)


def test_a_line_longer_than_the_cap_is_refused_without_reading_it_whole(tmp_path):
    path = tmp_path / "f.jsonl"
    path.write_text('{"a": "' + "x" * 5000 + '"}\n')
    with pytest.raises(RowFileError, match="line 1 is longer than"):
        read_jsonl(path, max_line_bytes=1000)


LFS = ("version https://git-lfs.github.com/spec/v1\noid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e"
       "2ca24d17e2393\nsize 1234567\n")


def test_a_git_lfs_pointer_saved_as_parquet_is_recognised(tmp_path):
    root = write_task(tmp_path / "m", "rte")
    path = split_path(root, "rte", "train")
    path.write_text(LFS)
    report = prepare("rte", root, tmp_path)
    assert report.problems == (f"task rte, split train: {path} is a Git LFS pointer ({len(LFS)} bytes), not the "
                               "parquet data: fetch the file itself (`git lfs pull` in the clone, or download it "
                               "again with huggingface_hub)",)


def test_an_lfs_pointer_in_place_of_json_lines_and_a_file_that_is_not_parquet(tmp_path):
    root = write_task(tmp_path / "m", "cr")
    split_path(root, "cr", "train").write_text(LFS)
    assert "is a Git LFS pointer" in prepare("cr", root, tmp_path / "1").problems[0]
    root = write_task(tmp_path / "n", "rte")
    path = split_path(root, "rte", "validation")
    path.write_text("sentence1,sentence2,label\nroot:x:0:0,b,1\n")
    problem = prepare("rte", root, tmp_path / "2").problems[0]
    assert f"{path} is not a parquet file" in problem and "root:x" not in problem
    path.write_bytes(b"")
    assert f"{path} is empty (0 bytes)" in prepare("rte", root, tmp_path / "3").problems[0]


# ------------------------------------------------------------------------------------------------ duplicates


def test_duplicates_and_train_validation_overlap_are_warnings_on_the_console(tmp_path):
    train = rows_of("rte", 10, sentence1=lambda i: f"premise {i % 8}", sentence2="a claim", label=lambda i: i % 8 % 2)
    validation = rows_of("rte", 4, "validation", sentence1=lambda i: f"premise {i + 6}", sentence2="a claim",
                         label=lambda i: (i + 6) % 2)
    root = write_task(tmp_path / "m", "rte", {"train": train, "validation": validation})
    report = prepare("rte", root, tmp_path)
    assert report.ok, report.problems
    assert "task rte, split train: 2 of 10 examples (20.0%) repeat an earlier one (same input and target)" \
        in report.warnings
    assert "task rte: 2 of 4 validation examples (50.0%) have an input that also occurs in the training split" \
        in report.warnings
    assert "task rte, split train: repeated examples come from rows 8, 9" in report.details
    assert any("validation row 0 = train row 6; validation row 1 = train row 7" in d for d in report.details)
    lines = console_lines([report])
    assert sum(line.startswith("warning: [prepare]") for line in lines) == len(report.warnings)
    assert not any("train row 6" in line for line in lines)  # the rows go to the log only


def test_a_training_split_of_another_size_is_a_console_warning(tmp_path):
    root = write_task(tmp_path / "m", "rte")
    report = prepare("rte", root, tmp_path)
    assert any("the training split has 2 rows, the declaration says 2,490" in line for line in console_lines([report]))


# ------------------------------------------------------------------------------------------------ ReCoRD


def test_record_evaluates_one_example_per_answer_as_the_authors_with_a_switch(monkeypatch):
    row = fixture("record")["validation"][0]
    spec = get_task("record")
    authors = spec.examples_from_rows([row], split="validation")
    assert [(e.target, e.answers) for e in authors] == [("Chelsea", ("Chelsea", "The Blues")),
                                                        ("The Blues", ("Chelsea", "The Blues"))]
    per_query = dataclasses.replace(spec, format_options={"evaluate": "per_query"})
    assert [(e.target, e.answers) for e in per_query.examples_from_rows([row], split="validation")] == \
        [("Chelsea", ("Chelsea", "The Blues"))]
    bad = dataclasses.replace(spec, format_options={"evaluate": "per_passage"})
    with pytest.raises(TaskDataError, match="format option evaluate 'per_passage' is not one of"):
        bad.examples_from_rows([row], split="validation")


def test_the_carve_is_the_authors_torch_randperm_draw():
    import torch

    for n, seed in ((10, 42), (1001, 28), (5000, 112)):
        g = torch.Generator()
        g.manual_seed(seed)
        assert authors_permutation(n, seed) == torch.randperm(n, generator=g).tolist()
    # pinned: a torch release that changes its CPU randperm would change which rows the authors' seeds carve
    assert authors_permutation(10, 42) == [2, 6, 1, 8, 4, 5, 0, 9, 3, 7]
    held, kept = carve_rows(get_task("record"), 10, 3, 42)
    assert held == [2, 6, 1] and kept == [0, 3, 4, 5, 7, 8, 9]


def test_python_random_is_not_the_carve(monkeypatch):
    import random

    order = list(range(1001))
    random.Random(28).shuffle(order)
    assert carve_rows(get_task("record"), 1001, 1000, 28)[0] != order[:1000]


def test_load_in_a_trial_uses_the_same_draw(tmp_path, monkeypatch):
    record = get_task("record")
    monkeypatch.setitem(spec_module.TASKS._items, "record",
                        dataclasses.replace(record, data=dataclasses.replace(record.data, carve_validation=1)))
    root = write_task(tmp_path / "m", "record")
    held, _ = carve_rows(get_task("record"), 2, 1, 7)
    examples = get_task("record").load("validation", seed=7, mirror=root)
    query = fixture("record")["train"][held[0]]["query"]
    assert all(query in e.input for e in examples)


def test_fixture_rows_json_roundtrip():  # the helper above builds what write_task writes
    assert json.loads(json.dumps(rows_of("rte", 3)))[2] == fixture("rte")["train"][0]


def test_truncation_rates_are_one_console_line_per_prepare_run():
    from itsel_ray.data.prepare import SplitReport, TaskReport
    from itsel_ray.runs.prepared import truncation_line

    reports = [TaskReport("record", splits=(SplitReport("train", "", 10, 40, at_cap=10),)),
               TaskReport("rte", splits=(SplitReport("train", "", 10, 10, at_cap=1),)),
               TaskReport("cb", splits=(SplitReport("train", "", 10, 10, at_cap=0),))]
    assert truncation_line(reports) == ("[prepare] training inputs cut at the max source length: record 25.0%, rte "
                                        "10.0%; 1 other task(s) none (details in the log)")
    assert truncation_line(reports[2:]) is None
    assert console_lines(reports)[-1].startswith("[prepare] training inputs cut")


def test_a_wsc_span_that_cannot_be_marked_is_a_warning(tmp_path):
    bad = {**fixture("wsc")["train"][0], "span1_text": "Marc."}  # not in the text: the authors leave it unmarked
    root = write_task(tmp_path / "m", "wsc", {"train": [bad, fixture("wsc")["train"][1]],
                                             "validation": fixture("wsc")["validation"]})
    report = prepare("wsc", root, tmp_path)
    assert report.ok
    assert ("task wsc, split train: 1 of 2 rows: span text not found at its word index, left unmarked (the Hub's "
            "wsc.fixed repairs most such rows: itsel-ray data import applies it)") in report.warnings
