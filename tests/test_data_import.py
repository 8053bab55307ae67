"""`itsel-ray data import`: small files written in each dataset's official distribution format (from the fixture
rows, so that the Hub schema they must become is known) are converted into a mirror, which then formats into
exactly the golden examples of the fixture rows; the Hub's repairs and drops are applied and said, and a wrong file
is one line naming it."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from itsel_ray.cli import main as cli_main
from itsel_ray.data.importer import main as import_main
from itsel_ray.data.official import GLUE, drop_answers, repair_wsc_spans
from itsel_ray.tasks import SOURCE_TASKS, TARGET_TASKS, get_task
from itsel_ray.tasks.spec import clear_row_cache, read_split
from tests.mirrors import fixture

HUB_TASKS = [t for t in (*SOURCE_TASKS, *TARGET_TASKS) if get_task(t).data.kind == "hub"]


@pytest.fixture(autouse=True)
def _isolated(monkeypatch):
    for var in ("ITSEL_RAY_DATA_MIRROR", "ITSEL_RAY_DATA_CACHE", "ITSEL_RAY_DATA_DIR"):
        monkeypatch.delenv(var, raising=False)
    clear_row_cache()
    yield
    clear_row_cache()


# ------------------------------------------------------------------------------------------------ official writers


def rows_for(task: str) -> dict[str, list[dict]]:
    """The fixture rows, made expressible in the official files: ReCoRD's official entities are character
    spans of the passage, so an entity the fixture passage lacks is appended to it as one more highlight."""
    rows = fixture(task)
    if task != "record":
        return rows
    out = {}
    for split, split_rows in rows.items():
        out[split] = []
        for r in split_rows:
            extra = [e for e in r["entities"] + r["answers"] if e not in r["passage"]]
            out[split].append({**r, "passage": r["passage"] + "".join(f"\n@highlight\n{e}" for e in extra)})
    return out


def _tsv(path: Path, header: list[str] | None, rows: list[list]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = (["\t".join(header)] if header else []) + ["\t".join(str(c) for c in r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


GLUE_FILES = {"train": "train.tsv", "validation": "dev.tsv", "validation_mismatched": "dev_mismatched.tsv"}
GLUE_HEADERS = {  # the official column lists (extra columns included), the text/label columns filled from rows
    "mnli": ["index", "promptID", "pairID", "genre", "sentence1_binary_parse", "sentence2_binary_parse",
             "sentence1_parse", "sentence2_parse", "sentence1", "sentence2", "label1", "gold_label"],
    "qqp": ["id", "qid1", "qid2", "question1", "question2", "is_duplicate"],
    "qnli": ["index", "question", "sentence", "label"], "rte": ["index", "sentence1", "sentence2", "label"],
    "sst2": ["sentence", "label"], "mrpc": ["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"],
    "stsb": ["index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1", "sentence2",
             "score"],
}


def write_glue(folder: Path, task: str) -> list[str]:
    config = get_task(task).data.name
    cfg = GLUE[config]
    out = []
    for logical, rows in fixture(task).items():
        split = get_task(task).data.splits[logical]
        path = folder / GLUE_FILES[split]
        if cfg.headerless:  # CoLA: source, label, original mark, sentence; no header
            _tsv(path, None, [["gj04", r["label"], "", r["sentence"]] for r in rows])
        else:
            header = GLUE_HEADERS[config]
            cols = {tsv: hub for hub, tsv in cfg.fields.items()}
            body = []
            for i, r in enumerate(rows):
                label = r["label"] if cfg.classes is None else (
                    cfg.classes[r["label"]] if config in ("mnli", "qnli", "rte") else r["label"])
                body.append([r[cols[c]] if c in cols else (label if c == cfg.label else f"x{i}") for c in header])
            _tsv(path, header, body)
        out.append(str(path))
    return out


SG_FILES = {"train": "train.jsonl", "validation": "val.jsonl"}


def write_superglue(folder: Path, task: str) -> list[str]:
    config = get_task(task).data.name
    out = []
    for logical, rows in rows_for(task).items():
        path = folder / SG_FILES[logical]
        if config == "multirc":
            passages: dict[int, dict] = {}
            for r in rows:
                p = passages.setdefault(r["idx"]["paragraph"], {"idx": r["idx"]["paragraph"], "version": 1.1,
                                                                 "passage": {"text": r["paragraph"], "questions": []}})
                qs = p["passage"]["questions"]
                q = next((q for q in qs if q["idx"] == r["idx"]["question"]), None)
                if q is None:
                    q = {"question": r["question"], "answers": [], "idx": r["idx"]["question"]}
                    qs.append(q)
                q["answers"].append({"text": r["answer"], "idx": r["idx"]["answer"], "label": r["label"]})
            official = list(passages.values())
        elif config == "record":
            official = []
            for r in rows:
                text = r["passage"]
                spans = [{"start": text.index(e), "end": text.index(e) + len(e) - 1} for e in r["entities"]]
                official.append({"idx": r["idx"]["passage"], "source": "Daily mail",
                                 "passage": {"text": text, "entities": spans},
                                 "qas": [{"query": r["query"], "idx": r["idx"]["query"],
                                          "answers": [{"start": text.index(a), "end": text.index(a) + len(a) - 1,
                                                       "text": a} for a in r["answers"]]}]})
        elif config.startswith("wsc"):
            official = [{"text": r["text"], "idx": r["idx"], "label": bool(r["label"]),
                         "target": {k: r[k] for k in ("span1_index", "span1_text", "span2_index", "span2_text")}}
                        for r in rows]
        else:
            official = []
            for r in rows:
                row = {k: v for k, v in r.items() if k != "label"}
                label = r["label"]
                if config in ("boolq", "wic"):
                    label = bool(label)
                elif config in ("cb", "rte"):
                    label = {"cb": ("entailment", "contradiction", "neutral"),
                             "rte": ("entailment", "not_entailment")}[config][label]
                official.append({**row, "label": label, **({"version": 1.1} if config == "wic" else {})})
        _jsonl(path, official)
        out.append(str(path))
    return out


def write_squad(folder: Path, task: str) -> list[str]:
    out = []
    for logical, rows in fixture(task).items():
        path = folder / ("train-v1.1.json" if logical == "train" else "dev-v1.1.json")
        articles = [{"title": r["title"], "paragraphs": [{"context": r["context"], "qas": [
            {"id": r["id"], "question": r["question"],
             "answers": [{"text": t, "answer_start": s} for t, s in zip(r["answers"]["text"],
                                                                        r["answers"]["answer_start"])]}]}]}
            for r in rows]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"version": "1.1", "data": articles}))
        out.append(str(path))
    return out


def _drop_answer(span: str, kind: str) -> dict:
    blank = {"number": "", "date": {"day": "", "month": "", "year": ""}, "spans": []}
    return {**blank, "number": span} if kind == "number" else {**blank, "spans": [span]}


def write_drop(folder: Path, task: str) -> list[str]:
    out = []
    for logical, rows in fixture(task).items():
        path = folder / f"drop_dataset_{'train' if logical == 'train' else 'dev'}.json"
        data: dict = {}
        for r in rows:
            answers = [_drop_answer(s, t) for s, t in zip(r["answers_spans"]["spans"], r["answers_spans"]["types"])]
            qa = {"question": r["question"], "query_id": r["query_id"], "answer": answers[0],
                  "validated_answers": answers}
            data.setdefault(r["section_id"], {"passage": r["passage"], "qa_pairs": []})["qa_pairs"].append(qa)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data))
        out.append(str(path))
    return out


def write_hellaswag(folder: Path, task: str) -> list[str]:
    out = []
    for logical, rows in fixture(task).items():
        path = folder / f"hellaswag_{'train' if logical == 'train' else 'val'}.jsonl"
        _jsonl(path, [{**r, "label": int(r["label"])} for r in rows])
        out.append(str(path))
    return out


def write_winogrande(folder: Path, task: str) -> list[str]:
    out = []
    for logical, rows in fixture(task).items():
        path = folder / ("train_xl.jsonl" if logical == "train" else "dev.jsonl")
        _jsonl(path, [{"qID": f"q{i}", **r} for i, r in enumerate(rows)])
        out.append(str(path))
    _jsonl(folder / "train_s.jsonl", [{"qID": "s", **fixture(task)["train"][0]}])  # another size: not this config
    return [*out, str(folder / "train_s.jsonl")]


def write_race(folder: Path, task: str) -> list[str]:
    for logical, rows in fixture(task).items():
        split = "train" if logical == "train" else "dev"
        articles: dict[str, dict] = {}
        for r in rows:
            a = articles.setdefault(r["example_id"], {"answers": [], "options": [], "questions": [],
                                                      "article": r["article"], "id": r["example_id"]})
            a["answers"].append(r["answer"])
            a["options"].append(r["options"])
            a["questions"].append(r["question"])
        for name, a in articles.items():
            path = folder / "RACE" / split / "middle" / name.removeprefix("middle")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(a))
        high = folder / "RACE" / split / "high" / "1.txt"  # the other level: not the task's config
        high.parent.mkdir(parents=True, exist_ok=True)
        high.write_text(json.dumps({"answers": ["A"], "options": [["a", "b", "c", "d"]], "questions": ["q"],
                                    "article": "a", "id": "high1.txt"}))
    return [str(folder / "RACE")]


def write_cosmosqa(folder: Path, task: str) -> list[str]:
    out = []
    for logical, rows in fixture(task).items():
        path = folder / ("train.csv" if logical == "train" else "valid.csv")
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        out.append(str(path))
    return out


WRITERS = {"nyu-mll/glue": write_glue, "aps/super_glue": write_superglue, "rajpurkar/squad": write_squad,
           "ucinlp/drop": write_drop, "Rowan/hellaswag": write_hellaswag, "allenai/winogrande": write_winogrande,
           "ehovy/race": write_race, "allenai/cosmos_qa": write_cosmosqa}


def run_import(capsys, *argv) -> tuple[int, str, str]:
    code = import_main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ------------------------------------------------------------------------------------------------ every format


def test_every_hub_task_has_a_writer_here():
    assert {get_task(t).data.path for t in HUB_TASKS} == set(WRITERS)


@pytest.mark.parametrize("task", HUB_TASKS)
def test_official_files_become_a_mirror_that_formats_into_the_golden_examples(task, tmp_path, capsys):
    files = WRITERS[get_task(task).data.path](tmp_path / "official", task)
    code, out, err = run_import(capsys, task, *files, "--out", tmp_path / "mirror")
    assert code == 0, err
    assert f"use it: data.mirror: {tmp_path / 'mirror'}" in out
    spec = get_task(task)
    for logical, rows in rows_for(task).items():
        want = spec.examples_from_rows(rows, split=logical)
        mirrored = read_split(spec, logical, mirror=tmp_path / "mirror")
        assert spec.examples_from_rows(mirrored.to_list(), split=logical) == want, (task, logical)
        assert f"checked: {logical} ({spec.data.splits[logical]}): {len(rows):,} rows format into" in out


def test_the_mirror_uses_the_hub_layout_and_schema(tmp_path, capsys):
    files = write_superglue(tmp_path / "o", "multirc")
    assert run_import(capsys, "multirc", *files, "--out", tmp_path / "m")[0] == 0
    path = tmp_path / "m" / "aps" / "super_glue" / "multirc" / "validation-00000-of-00001.parquet"
    table = pq.read_table(path)
    assert table.column_names == ["paragraph", "question", "answer", "idx", "label"]
    assert str(table.schema.field("idx").type) == "struct<paragraph: int32, question: int32, answer: int32>"
    assert table.column("label").to_pylist() == [r["label"] for r in fixture("multirc")["validation"]]


def test_files_of_another_config_are_ignored_and_said(tmp_path, capsys):
    files = write_race(tmp_path / "o", "race")
    code, out, _ = run_import(capsys, "race", *files, "--out", tmp_path / "m")
    assert code == 0 and "ignored" in out and "high/1.txt" in out
    files = write_winogrande(tmp_path / "w", "winogrande")
    code, out, _ = run_import(capsys, "winogrande", *files, "--out", tmp_path / "m")
    assert code == 0 and "ignored" in out and "train_s.jsonl" in out


def test_cr_json_lines_are_checked_and_copied(tmp_path, capsys):
    for logical, name in (("train", "train.jsonl"), ("validation", "test.jsonl")):
        _jsonl(tmp_path / "o" / name, fixture("cr")[logical])
    code, out, err = run_import(capsys, "cr", tmp_path / "o", "--out", tmp_path / "m")
    assert code == 0, err
    assert (tmp_path / "m" / "cr" / "train.jsonl").read_text() == (tmp_path / "o" / "train.jsonl").read_text()
    assert get_task("cr").load("validation", mirror=tmp_path / "m") == \
        get_task("cr").examples_from_rows(fixture("cr")["validation"], split="validation")


def test_a_split_can_be_named_and_a_missing_one_is_said(tmp_path, capsys):
    write_glue(tmp_path / "o", "rte")
    (tmp_path / "o" / "dev.tsv").rename(tmp_path / "o" / "my_heldout.tsv")
    code, out, _ = run_import(capsys, "rte", tmp_path / "o" / "train.tsv", "--out", tmp_path / "m")
    assert code == 0 and "not imported: the validation split (validation); give its file too" in out
    code, out, _ = run_import(capsys, "rte", tmp_path / "o" / "train.tsv",
                              f"validation={tmp_path / 'o' / 'my_heldout.tsv'}", "--out", tmp_path / "m")
    assert code == 0 and "not imported" not in out


def test_the_cli_has_a_data_command(tmp_path, capsys):
    files = write_glue(tmp_path / "o", "sst2")
    assert cli_main(["data", "import", "sst2", *files, "--out", str(tmp_path / "m")]) == 0
    assert cli_main(["data", "export"]) == 2
    assert "unknown data command 'export'" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ repairs, drops


WSC_ROW = {"text": "The trophy doesn't fit into the brown suitcase because it is too large.",
           "target": {"span1_index": 0, "span1_text": "the trophy.", "span2_index": 9, "span2_text": "it"},
           "idx": 0, "label": True}


def test_the_wsc_fixed_repair_restores_the_span_marks(tmp_path, capsys):
    _jsonl(tmp_path / "o" / "train.jsonl", [WSC_ROW])
    _jsonl(tmp_path / "o" / "val.jsonl", [{**WSC_ROW, "idx": 1}])
    code, out, _ = run_import(capsys, "wsc", tmp_path / "o", "--out", tmp_path / "m")
    assert code == 0
    assert "repaired 2 row(s): wsc.fixed span texts that were not substrings of the text (the Hub's repair)" in out
    example = get_task("wsc").load("train", mirror=tmp_path / "m")[0]
    assert example.input == ("superglue-wsc.fixed text: * The trophy * doesn't fit into the brown suitcase because "
                             "# it # is too large.")
    unrepaired = get_task("wsc").examples_from_rows([{**WSC_ROW["target"], "text": WSC_ROW["text"], "label": 1}],
                                                     split="train")[0]
    assert "*" not in unrepaired.input  # what a mirror without the repair would have trained on, silently


def test_the_wsc_repair_leaves_what_the_hub_leaves():
    ex = {"text": "Kamenev and Stalin met Zinoviev", "span1_index": 0, "span1_text": "Kamenev and Zinoviev",
          "span2_index": 3, "span2_text": "Zinoviev"}
    assert not repair_wsc_spans(dict(ex))
    ex = {"text": "When they scold him , he cries", "span1_index": 5, "span1_text": "he", "span2_index": 1,
          "span2_text": "theyscold"}
    fixed = dict(ex)
    repair_wsc_spans(fixed)
    assert fixed["span2_index"] == 10 and fixed["text"] == ex["text"]


def test_drop_answers_as_the_hub_builds_them():
    blank = {"number": "", "date": {"day": "", "month": "", "year": ""}, "spans": []}
    assert drop_answers([{**blank, "number": "23"}]) == {"spans": ["23"], "types": ["number"]}
    assert drop_answers([{**blank, "date": {"day": "3", "month": "May", "year": ""}}]) == \
        {"spans": ["3 May"], "types": ["date"]}
    assert drop_answers([{**blank, "spans": ["a", "b"]}, {**blank, "spans": ["c"]}]) == \
        {"spans": ["a", "b", "c"], "types": ["span", "span", "span"]}
    assert drop_answers([{**blank, "number": "2", "spans": ["x"]}]) is None
    assert drop_answers([blank]) is None


def test_dropped_rows_are_counted_like_the_hubs(tmp_path, capsys):
    header = GLUE_HEADERS["qqp"]
    rows = [[1, 1, 2, "How old is the sun?", "What is the age of the sun?", 1],
            [2, 3, 4, "A question without its pair"],  # a line cut short: the Hub drops it
            [3, 5, 6, "Is water wet?", "Why is the sky blue?", 0]]
    _tsv(tmp_path / "o" / "train.tsv", header, rows)
    _tsv(tmp_path / "o" / "dev.tsv", header, [rows[0]])
    code, out, _ = run_import(capsys, "qqp", tmp_path / "o", "--out", tmp_path / "m")
    assert code == 0
    assert "train  " in out and "2 rows" in out
    assert "skipped 1 row(s): train.tsv: lines without every field (dropped by the Hub's conversion too)" in out
    blank = {"number": "", "date": {"day": "", "month": "", "year": ""}, "spans": []}
    data = {"s1": {"passage": "p", "qa_pairs": [
        {"question": "q1", "query_id": "a", "answer": {**blank, "number": "1"}, "validated_answers": []},
        {"question": "q2", "query_id": "b", "answer": {**blank, "number": "1", "spans": ["x"]},
         "validated_answers": []}]}}
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "drop_dataset_train.json").write_text(json.dumps(data))
    code, out, _ = run_import(capsys, "drop", tmp_path / "d" / "drop_dataset_train.json", "--out", tmp_path / "m")
    assert code == 0 and "skipped 1 row(s): drop_dataset_train.json: questions whose answer is empty or two kinds" \
        in out


# ------------------------------------------------------------------------------------------------ bad input


def test_bad_inputs_are_one_line_naming_the_file(tmp_path, capsys):
    write_glue(tmp_path / "mnli", "mnli")
    squad = write_squad(tmp_path / "squad", "squad")
    cases = [
        (["mnlii", *squad], "unknown task 'mnlii'"),
        (["cxc", *squad], "the converted rows do not fit task cxc: task cxc, split train: missing column 'sentence1'"),
        (["mnli", squad[0]], f"{squad[0]}: no column(s) ['sentence1', 'sentence2'] in its header line"),
        (["mnli", str(tmp_path / "squad")], f"{squad[0]}: no column(s)"),
        (["race", str(tmp_path / "mnli")], f"{tmp_path / 'mnli'}: no ehovy/race files in this folder; expected RACE"),
        (["squad", str(tmp_path / "nope.json")], f"{tmp_path / 'nope.json'}: no such file or folder"),
        (["mnli", f"train={squad[0]}"], f"{squad[0]}: no column(s) ['sentence1', 'sentence2'] in its header"),
        (["race", squad[0]], "none of the files is a ehovy/race file of config middle"),
    ]
    for argv, message in cases:
        code, _, err = run_import(capsys, *argv, "--out", tmp_path / "m")
        assert code == 2 and message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert not [p for p in (tmp_path / "m").rglob("*") if p.is_file()]  # nothing half-imported is left
    (tmp_path / "latin1").mkdir()
    (tmp_path / "latin1" / "train.jsonl").write_bytes(b'{"question": "caf\xe9", "passage": "x", "idx": 0, '
                                                      b'"label": true}\n')
    code, _, err = run_import(capsys, "boolq", tmp_path / "latin1", "--out", tmp_path / "m")
    assert code == 2 and f"{tmp_path / 'latin1' / 'train.jsonl'} line 1 is not UTF-8" in err
    (tmp_path / "lfs").mkdir()
    (tmp_path / "lfs" / "train-v1.1.json").write_text("version https://git-lfs.github.com/spec/v1\noid sha256:ab\n")
    code, _, err = run_import(capsys, "squad", tmp_path / "lfs", "--out", tmp_path / "m")
    assert code == 2 and "is a Git LFS pointer" in err
    (tmp_path / "badsquad").mkdir()
    (tmp_path / "badsquad" / "train-v1.1.json").write_text(json.dumps({"data": [{"paragraphs": [{"qas": [
        {"id": "1", "question": "q", "answers": []}]}]}]}))
    code, _, err = run_import(capsys, "squad", tmp_path / "badsquad", "--out", tmp_path / "m")
    assert code == 2 and "article 0, paragraph 0: no 'context'" in err
    code, _, err = run_import(capsys, "squad", *squad)  # no --out, no $ITSEL_RAY_DATA_MIRROR
    assert code == 2 and "give --out MIRROR" in err


def test_a_converted_file_that_the_task_cannot_use_fails_here(tmp_path, capsys):
    header = GLUE_HEADERS["rte"]
    _tsv(tmp_path / "o" / "train.tsv", header, [[0, "", "b", "entailment"], [1, "", "d", "not_entailment"]])
    code, _, err = run_import(capsys, "rte", tmp_path / "o" / "train.tsv", "--out", tmp_path / "m")
    assert code == 2 and "column 'sentence1' is empty in every row" in err
