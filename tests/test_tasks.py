"""The paper's task declarations, bad-input errors, and `TaskSpec.load` with the loaders swapped (no network)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from itsel_ray.registry import UnknownNameError
from itsel_ray.tasks import (
    LOADERS,
    SOURCE_TASKS,
    TARGET_TASKS,
    TASKS,
    DataSource,
    Labels,
    TaskDataError,
    TaskSpec,
    get_task,
    register_task,
    task_names,
)
from itsel_ray.tasks.spec import RowTable, clear_row_cache

FIXTURES = Path(__file__).parent / "fixtures" / "tasks"
ANCHORS = Path(__file__).resolve().parents[2] / "shared" / "anchors" / "uds-lsv_intermediate-task-selection" / "seq2seq"

# name -> (data path, config, prefix, category, Table 6 task type, train size, metrics, select, max source length)
DECLARED = {
    "mnli": ("nyu-mll/glue", "mnli", "mnli", "classification", "NLI", 392_702, ("accuracy",), "accuracy", 128),
    "qqp": ("nyu-mll/glue", "qqp", "qqp", "classification", "Paraphrase detection", 363_846, ("f1", "accuracy"),
            "average", 128),
    "qnli": ("nyu-mll/glue", "qnli", "qnli", "classification", "NLI", 104_743, ("accuracy",), "accuracy", 128),
    "record": ("aps/super_glue", "record", "superglue-record", "multiple_choice", "QA", 100_730,
               ("squad_em", "squad_f1"), "average", 512),
    "cxc": ("cxc", None, "cxc", "classification", "Semantic similarity", 87_054, ("pearson", "spearman"),
            "average", 128),
    "squad": ("rajpurkar/squad", None, "squad", "qa", "QA", 87_599, ("squad_em", "squad_f1"), "average", 512),
    "drop": ("ucinlp/drop", None, "drop", "qa", "QA", 77_400, ("squad_em", "squad_f1"), "average", 512),
    "sst2": ("nyu-mll/glue", "sst2", "sst2", "classification", "Sentiment analysis", 67_349, ("accuracy",),
             "accuracy", 128),
    "winogrande": ("allenai/winogrande", "winogrande_xl", "winogrande", "multiple_choice", "Commonsense reasoning",
                   40_398, ("accuracy",), "accuracy", 128),
    "hellaswag": ("Rowan/hellaswag", None, "hellaswag", "multiple_choice", "Commonsense reasoning", 39_905,
                  ("accuracy",), "accuracy", 512),
    "multirc": ("aps/super_glue", "multirc", "superglue-multirc", "classification", "QA", 27_243,
                ("multirc_f1a", "multirc_em"), "average", 512),
    "cosmosqa": ("allenai/cosmos_qa", None, "cosmos_qa", "multiple_choice", "Commonsense reasoning", 25_262,
                 ("accuracy",), "accuracy", 512),
    "race": ("ehovy/race", "middle", "race", "multiple_choice", "QA", 25_421, ("accuracy",), "average", 512),
    "boolq": ("aps/super_glue", "boolq", "superglue-boolq", "classification", "QA", 9_427, ("accuracy",),
              "accuracy", 128),
    "cola": ("nyu-mll/glue", "cola", "cola", "classification", "Grammatical acceptability", 8_551, ("mcc",), "mcc",
             128),
    "stsb": ("nyu-mll/glue", "stsb", "stsb", "classification", "Semantic similarity", 5_749, ("pearson", "spearman"),
             "average", 128),
    "wic": ("aps/super_glue", "wic", "superglue-wic", "classification", "Word sense disambiguation", 5_428,
            ("accuracy",), "accuracy", 128),
    "cr": ("cr", None, "CR", "classification", "Sentiment analysis", 3_012, ("accuracy",), "accuracy", 128),
    "mrpc": ("nyu-mll/glue", "mrpc", "mrpc", "classification", "Paraphrase detection", 3_668, ("f1", "accuracy"),
             "average", 128),
    "rte": ("nyu-mll/glue", "rte", "rte", "classification", "NLI", 2_490, ("accuracy",), "accuracy", 128),
    "wsc": ("aps/super_glue", "wsc.fixed", "superglue-wsc.fixed", "classification", "Coreference resolution", 554,
            ("accuracy",), "accuracy", 128),
    "copa": ("aps/super_glue", "copa", "superglue-copa", "multiple_choice", "QA", 400, ("accuracy",), "accuracy",
             128),
    "cb": ("aps/super_glue", "cb", "superglue-cb", "classification", "NLI", 250, ("macro_f1", "accuracy"),
           "average", 128),
}

# name -> (text-style label words, abstract-style ids); None = free-text targets
LABEL_WORDS = {
    "mnli": (("entailment", "neutral", "contradiction"), ("0", "1", "2")),
    "qqp": (("not_duplicate", "duplicate"), ("0", "1")),
    "qnli": (("entailment", "not_entailment"), ("0", "1")),
    "sst2": (("negative", "positive"), ("0", "1")),
    "winogrande": (("1", "2"), ("1", "2")),
    "hellaswag": (("W", "X", "Y", "Z"), ("0", "1", "2", "3")),
    "multirc": (("False", "True"), ("0", "1")),
    "cosmosqa": (None, ("0", "1", "2", "3")),
    "race": (("A", "B", "C", "D"), ("A", "B", "C", "D")),
    "boolq": (("False", "True"), ("0", "1")),
    "cola": (("unacceptable", "acceptable"), ("0", "1")),
    "wic": (("False", "True"), ("0", "1")),
    "cr": (("negative", "postive"), ("0", "1")),
    "mrpc": (("not_equivalent", "equivalent"), ("0", "1")),
    "rte": (("entailment", "not_entailment"), ("0", "1")),
    "wsc": (("False", "True"), ("0", "1")),
    "copa": (("choice1", "choice2"), ("0", "1")),
    "cb": (("entailment", "contradiction", "neutral"), ("0", "1", "2")),
    **{t: (None, None) for t in ("record", "cxc", "squad", "drop", "stsb")},
}


def fixture(task: str) -> dict[str, list[dict]]:
    return json.loads((FIXTURES / f"{task}.json").read_text())


@pytest.fixture(autouse=True)
def _fresh_rows():
    clear_row_cache()
    yield
    clear_row_cache()


@pytest.fixture
def fake_hub(monkeypatch):
    """Swap the Hub loader for one serving the fixture rows (or `fake_hub.rows[task]`); records each request."""
    calls, overrides = [], {}

    def load(spec, split, data_dir):
        calls.append((spec.name, split))
        by_dataset_split = {v: k for k, v in spec.data.splits.items()}
        rows = overrides.get(spec.name) or fixture(spec.name)[by_dataset_split[split]]
        return RowTable(rows, list(dict.fromkeys(k for r in rows for k in r)))

    monkeypatch.setitem(LOADERS._items, "hub", load)
    load.calls, load.rows = calls, overrides
    return load


# ------------------------------------------------------------------------------------------------ declarations


def test_tasks_in_table_2_order_with_roles():
    assert SOURCE_TASKS == ("mnli", "qqp", "qnli", "record", "cxc", "squad", "drop", "sst2", "winogrande",
                            "hellaswag", "multirc", "cosmosqa", "race")
    assert TARGET_TASKS == ("boolq", "cola", "stsb", "wic", "cr", "mrpc", "rte", "wsc", "copa", "cb")
    assert set(task_names("source")) == set(SOURCE_TASKS) and set(task_names("target")) == set(TARGET_TASKS)


@pytest.mark.parametrize("name", sorted(DECLARED))
def test_declaration(name):
    s = get_task(name)
    got = (s.data.path, s.data.name, s.prefix, s.category, s.task_type, s.train_size, s.metrics, s.select_metric,
           s.max_source_length)
    assert got == DECLARED[name]
    assert (s.label_words("text"), s.label_words("abstract")) == LABEL_WORDS[name]


def test_splits_and_sources_that_differ_from_the_default():
    assert get_task("mnli").data.splits["validation"] == "validation_mismatched"
    assert get_task("record").data.carve_validation == 1000
    assert get_task("cosmosqa").data.revision == "refs/convert/parquet"
    assert dict(get_task("cr").data.splits) == {"train": "train.jsonl", "validation": "test.jsonl"}
    assert dict(get_task("cxc").data.splits) == {"train": "cxc.train", "validation": "cxc.val_1k"}
    assert {get_task(t).data.kind for t in ("cr", "cxc")} == {"json"}


def test_size_ranks_sources_as_the_authors_size_table():
    by_size = sorted(SOURCE_TASKS, key=lambda t: -get_task(t).train_size)
    assert by_size == ["mnli", "qqp", "qnli", "record", "squad", "cxc", "drop", "sst2", "winogrande", "hellaswag",
                       "multirc", "race", "cosmosqa"]


# ------------------------------------------------------------------------------------------------ bad input


def test_unknown_task_lists_the_valid_names():
    with pytest.raises(UnknownNameError, match=r"unknown task 'mnlii'; valid names: .*cb.*mnli.*wsc"):
        get_task("mnlii")


def test_missing_column_names_task_split_and_column():
    row = {k: v for k, v in fixture("boolq")["train"][0].items() if k != "passage"}
    with pytest.raises(TaskDataError, match=r"task boolq, split train, row 0: missing column 'passage'"):
        get_task("boolq").examples_from_rows([row], split="train")


@pytest.mark.parametrize("task,column,bad", [
    ("boolq", "label", -1), ("winogrande", "answer", ""), ("race", "answer", "E"), ("hellaswag", "label", ""),
    ("cosmosqa", "label", -1),
])
def test_label_outside_the_verbalizer_raises_saying_so(task, column, bad):
    row = {**fixture(task)["validation"][0], column: bad}
    with pytest.raises(TaskDataError, match=rf"task {task}, split validation, row 0: label {bad!r} is outside"):
        get_task(task).examples_from_rows([row], split="validation")


def test_hidden_scores_and_answers_raise():
    with pytest.raises(TaskDataError, match=r"task stsb, split test, row 0: score -1.0 is not a number in \[0, 5\]"):
        get_task("stsb").examples_from_rows([{**fixture("stsb")["train"][0], "label": -1.0}], split="test")
    with pytest.raises(TaskDataError, match="task record, split test, row 0: no gold answer"):
        get_task("record").examples_from_rows([{**fixture("record")["train"][0], "answers": []}], split="test")


def test_unknown_label_style_and_split():
    with pytest.raises(TaskDataError, match="unknown label style 'words'"):
        get_task("rte").examples_from_rows(fixture("rte")["train"], split="train", label_style="words")
    with pytest.raises(TaskDataError, match="unknown split 'test'"):
        get_task("rte").load("test")


# ------------------------------------------------------------------------------------------------ load


def test_load_reads_the_declared_dataset_split(fake_hub):
    examples = get_task("mnli").load("validation")
    assert fake_hub.calls == [("mnli", "validation_mismatched")]
    assert [e.target for e in examples] == ["contradiction"]


def test_load_checks_columns_up_front(fake_hub):
    fake_hub.rows["rte"] = [{"sentence1": "A.", "label": 0}]
    with pytest.raises(TaskDataError, match=r"task rte, split train: missing column 'sentence2'"):
        get_task("rte").load("train")


def _boolq_rows(n: int) -> list[dict]:
    return [{"question": f"is it {i}", "passage": f"passage {i}", "idx": i, "label": i % 2} for i in range(n)]


def test_heldout_is_deterministic_disjoint_from_train_and_limited(fake_hub):
    fake_hub.rows["boolq"] = _boolq_rows(20)
    boolq = get_task("boolq")
    held = boolq.load("validation", eval_split="heldout", heldout_size=5, seed=3)
    train = boolq.load("train", eval_split="heldout", heldout_size=5, seed=3)
    assert held == boolq.load("validation", eval_split="heldout", heldout_size=5, seed=3)
    assert len(held) == 5 and len(train) == 15
    assert not {e.input for e in held} & {e.input for e in train}
    assert {e.input for e in held} | {e.input for e in train} == {e.input for e in boolq.load("train")}
    assert held != boolq.load("validation", eval_split="heldout", heldout_size=5, seed=4)
    assert boolq.load("train", limit=2) == boolq.load("train")[:2]
    assert fake_hub.calls.count(("boolq", "train")) == 1  # rows are fetched once per process


def test_carved_validation_rows_format_as_evaluation_examples(fake_hub):
    record = get_task("record")
    with pytest.raises(TaskDataError, match="cannot carve 1000 validation rows from 2 training rows"):
        record.load("validation")
    held = record.load("validation", eval_split="heldout", heldout_size=1, seed=0)
    train = record.load("train", eval_split="heldout", heldout_size=1, seed=0)
    assert len(held) == 1  # one example per query, even for the query with two answers
    assert len(held[0].answers) + len(train) == 3  # every answer of the other query is a training example


def test_json_tasks_read_local_files(tmp_path, monkeypatch):
    (tmp_path / "cr").mkdir()
    for split, name in (("train", "train.jsonl"), ("validation", "test.jsonl")):
        lines = [json.dumps(r) for r in fixture("cr")[split]]
        (tmp_path / "cr" / name).write_text("\n".join(lines) + "\n")
    cr = get_task("cr")
    assert [e.target for e in cr.load("train", data_dir=tmp_path)] == ["negative", "postive"]
    monkeypatch.setenv("ITSEL_RAY_DATA_DIR", str(tmp_path))
    assert [e.input for e in cr.load("validation")] == ["CR text: the battery life is excellent ."]
    with pytest.raises(TaskDataError, match=r"cxc\.val_1k not found.*docs/data\.md"):
        get_task("cxc").load("validation", data_dir=tmp_path)
    (tmp_path / "cr" / "train.jsonl").write_text('{"text": "ok", "label": 1}\nnot json\n')
    clear_row_cache()
    with pytest.raises(TaskDataError, match=r"train\.jsonl line 2 is not JSON"):
        cr.load("train", data_dir=tmp_path)


def test_load_reads_a_local_mirror_instead_of_the_hub(fake_hub, tmp_path, monkeypatch):
    from tests.mirrors import write_task

    expected = {t: get_task(t).load("validation") for t in ("mnli", "squad", "cosmosqa")}
    clear_row_cache()
    root = tmp_path / "mirror"
    for task in expected:
        write_task(root, task)
    monkeypatch.setitem(LOADERS._items, "hub", lambda *a: pytest.fail("the Hub loader was called"))
    for task, examples in expected.items():
        assert get_task(task).load("validation", mirror=root) == examples
    monkeypatch.setenv("ITSEL_RAY_DATA_MIRROR", str(root))
    clear_row_cache()
    assert get_task("mnli").load("validation") == expected["mnli"]


def test_a_per_task_mirror_folder_wins_and_a_missing_split_is_named(tmp_path):
    from itsel_ray.tasks.mirror import Mirror
    from tests.mirrors import write_task

    write_task(tmp_path / "copy", "rte", {"train": fixture("rte")["train"]})
    folder = tmp_path / "copy" / "nyu-mll" / "glue"
    mirror = Mirror.of(tmp_path / "elsewhere", {"rte": str(folder)})
    assert len(get_task("rte").load("train", mirror=mirror)) == 2
    with pytest.raises(TaskDataError, match=r"task rte, split validation: no parquet files for split 'validation' in "
                                            rf"{folder}; looked for rte/validation-\*\.parquet"):
        get_task("rte").load("validation", mirror=mirror)


def test_json_tasks_read_the_mirror_root_when_no_data_folder_is_set(tmp_path, monkeypatch):
    from tests.mirrors import write_task

    monkeypatch.delenv("ITSEL_RAY_DATA_DIR", raising=False)
    write_task(tmp_path, "cr")
    assert [e.target for e in get_task("cr").load("train", mirror=tmp_path)] == ["negative", "postive"]


# ------------------------------------------------------------------------------------------------ extension


@pytest.fixture
def scratch_task():
    yield "test_nli_task"
    TASKS._items.pop("test_nli_task", None)


def test_a_new_task_is_one_declaration(scratch_task, fake_hub):
    spec = register_task(TaskSpec(
        name=scratch_task, category="classification", task_type="NLI", prefix="anli",
        data=DataSource(kind="hub", path="example/anli"), columns=("premise", "hypothesis", "label"),
        formatter="fields", format_options={"fields": ("premise", "hypothesis")},
        labels=Labels(("entailment", "neutral", "contradiction")), metrics=("accuracy",), select_metric="accuracy",
        train_size=2, role="target",
    ))
    fake_hub.rows[scratch_task] = [{"premise": "A dog barks.", "hypothesis": "An animal makes noise.", "label": 0},
                                   {"premise": "It rains.", "hypothesis": "It is sunny.", "label": 2}]
    examples = get_task(scratch_task).load("train")
    assert [(e.input, e.target) for e in examples] == [
        ("anli premise: A dog barks. hypothesis: An animal makes noise.", "entailment"),
        ("anli premise: It rains. hypothesis: It is sunny.", "contradiction"),
    ]
    assert spec.score(["entailment", "neutral"], examples) == {"accuracy": 50.0, "score": 50.0}
    assert scratch_task in task_names("target")


# ------------------------------------------------------------------------------------------------ the authors' files

needs_anchors = pytest.mark.skipif(not ANCHORS.is_dir(), reason="../shared/anchors is not available")


@needs_anchors
def test_cr_reads_the_authors_training_file(tmp_path):
    (tmp_path / "cr").mkdir()
    os.symlink(ANCHORS / "train.jsonl", tmp_path / "cr" / "train.jsonl")
    examples = get_task("cr").load("train", data_dir=tmp_path)
    assert len(examples) == 3012
    assert sum(e.target == "postive" for e in examples) == 1933
    assert examples[0].input == "CR text: many of our disney movies do n 't play on this dvd player ."


@needs_anchors
def test_cxc_reads_the_authors_evaluation_file(tmp_path):
    (tmp_path / "cxc").mkdir()
    os.symlink(ANCHORS / "cxc.val_1k", tmp_path / "cxc" / "cxc.val_1k")
    examples = get_task("cxc").load("validation", data_dir=tmp_path)
    assert len(examples) == 1000
    # agg_score "3.05" -> numpy: 30.5 rounds to even 30 -> 3.0
    assert (examples[0].input, examples[0].target) == (
        "cxc sentence1: Two laptop computers sitting on top of a wooden table. sentence2: Two laptops next to each "
        "other and well-connected.", "three point zero")
