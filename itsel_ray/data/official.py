"""The datasets' official distribution files, read into the rows and columns the Hub's parquet conversions hold.

One `OfficialFormat` per Hub dataset (a registry entry, keyed by the dataset id a task declares): which files it
ships (split from the file name), how a file becomes rows in the Hub's schema (label ids in the Hub's class order,
MultiRC one row per answer, ReCoRD one row per query with sorted unique entities and answers, DROP's
`answers_spans`, the `wsc.fixed` span repair), the Arrow schema of those rows and the folder of the config inside
a mirror. The conversions follow the Hub's own loading scripts (GLUE, SuperGLUE, SQuAD, DROP, HellaSwag,
WinoGrande, RACE, CosmosQA), so a mirror built here holds what the Hub would have given; where those scripts drop
rows (GLUE rows without every field, DROP answers that are both a number and a span) the same rows are dropped and
counted. Pure reading: writing the mirror is `data.importer`.
"""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import pyarrow as pa

from itsel_ray.registry import Registry
from itsel_ray.tasks.rows import RowFileError, check_data_file

MAX_FIELD_CHARS = 10 * 2**20  # csv's default field limit is 128 KiB; no cell of these files is near 10 MiB


class OfficialFormatError(ValueError):
    """An official file that does not hold what its format says; the message names the file and line or record."""


@dataclass
class Tally:
    """What a conversion did besides copying: rows dropped (as the Hub's script drops them) and rows repaired."""

    skipped: Counter = field(default_factory=Counter)
    repaired: Counter = field(default_factory=Counter)
    ignored: list[str] = field(default_factory=list)  # files given that the task's config does not use

    def lines(self) -> list[str]:
        out = [f"skipped {n:,} row(s): {why}" for why, n in self.skipped.items()]
        out += [f"repaired {n:,} row(s): {why}" for why, n in self.repaired.items()]
        return out + [f"ignored {name}" for name in self.ignored]


Reader = Callable[[Path, str, "str | None", Tally], Iterator[dict]]


@dataclass(frozen=True)
class OfficialFormat:
    """How the official files of one Hub dataset become its rows.

    files: what the distribution calls them (for help and errors). split_of(path, config): the dataset's split
    name for a file (None: not a file of this config). read(path, split, config, tally): the rows of one file.
    schema(config): their Arrow schema. folder(config): the config's folder inside the mirror's dataset folder.
    """

    dataset: str
    files: str
    split_of: Callable[[Path, "str | None"], "str | None"]
    read: Reader
    schema: Callable[["str | None"], pa.Schema]
    folder: Callable[["str | None"], str]
    expand: Callable[[Path], list[Path]] = lambda p: sorted(f for f in p.iterdir() if f.is_file())


FORMATS: Registry[OfficialFormat] = Registry("official data format")


def split_from_name(path: Path, config: str | None = None) -> str | None:
    """train / validation / test from a file name (dev, val, valid = validation), with MNLI's _matched and
    _mismatched kept (validation_matched, test_mismatched, ...)."""
    name = path.name.lower()
    if "train" in name:
        return "train"
    base = "validation" if re.search(r"dev|val", name) else "test" if "test" in name else None
    if base is None:
        return None
    if "mismatched" in name:
        return f"{base}_mismatched"
    return f"{base}_matched" if "matched" in name else base


def _where(path: Path, line: int | None = None) -> str:
    return f"{path}" + (f" line {line}" if line is not None else "")


def _json_lines(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) of a JSON-lines file, streamed through the project's reader (UTF-8, LFS pointers,
    line lengths are checked there)."""
    from itsel_ray.tasks.rows import iter_jsonl

    try:
        yield from iter_jsonl(path)
    except RowFileError as err:
        raise OfficialFormatError(str(err)) from None


def _json_file(path: Path):
    try:
        check_data_file(path, kind="JSON")
        with open(path, encoding="utf-8-sig") as f:
            return json.load(f)
    except RowFileError as err:
        raise OfficialFormatError(str(err)) from None
    except UnicodeDecodeError as err:
        raise OfficialFormatError(f"{path} is not UTF-8 (byte 0x{err.object[err.start]:02x} at byte {err.start})") \
            from None
    except json.JSONDecodeError as err:
        raise OfficialFormatError(f"{path} is not JSON ({err.msg} at line {err.lineno}, column {err.colno})") from None


def _get(obj: dict, key: str, where: str):
    if not isinstance(obj, dict) or key not in obj:
        found = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
        raise OfficialFormatError(f"{where}: no {key!r} (found: {found})")
    return obj[key]


# ------------------------------------------------------------------------------------------------ GLUE (TSV)


@dataclass(frozen=True)
class GlueConfig:
    fields: dict[str, str]  # Hub column -> TSV column
    label: str  # the TSV label column
    classes: tuple[str, ...] | None  # None: a float score (STS-B)
    headerless: dict[str, int] | None = None  # CoLA's train and dev files have no header: column -> position


GLUE = {
    "cola": GlueConfig({"sentence": "sentence"}, "is_acceptable", ("unacceptable", "acceptable"),
                       headerless={"sentence": 3, "is_acceptable": 1}),
    "sst2": GlueConfig({"sentence": "sentence"}, "label", ("negative", "positive")),
    "mrpc": GlueConfig({"sentence1": "#1 String", "sentence2": "#2 String"}, "Quality",
                       ("not_equivalent", "equivalent")),
    "qqp": GlueConfig({"question1": "question1", "question2": "question2"}, "is_duplicate",
                      ("not_duplicate", "duplicate")),
    "stsb": GlueConfig({"sentence1": "sentence1", "sentence2": "sentence2"}, "score", None),
    "mnli": GlueConfig({"premise": "sentence1", "hypothesis": "sentence2"}, "gold_label",
                       ("entailment", "neutral", "contradiction")),
    "qnli": GlueConfig({"question": "question", "sentence": "sentence"}, "label", ("entailment", "not_entailment")),
    "rte": GlueConfig({"sentence1": "sentence1", "sentence2": "sentence2"}, "label", ("entailment", "not_entailment")),
}


def _glue_config(config: str | None) -> GlueConfig:
    if config not in GLUE:
        raise OfficialFormatError(f"GLUE config {config!r} has no converter; known: {', '.join(GLUE)}")
    return GLUE[config]


def _read_glue(path: Path, split: str, config: str | None, tally: Tally) -> Iterator[dict]:
    cfg = _glue_config(config)
    csv.field_size_limit(MAX_FIELD_CHARS)
    try:
        check_data_file(path, kind="TSV")
    except RowFileError as err:
        raise OfficialFormatError(str(err)) from None
    with open(path, encoding="utf-8-sig", newline="") as f:
        if cfg.headerless and not split.startswith("test"):
            reader = ({k: row[i] if i < len(row) else None for k, i in cfg.headerless.items()}
                      for row in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
        else:
            reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            missing = [c for c in cfg.fields.values() if c not in (reader.fieldnames or ())]
            if missing:
                raise OfficialFormatError(f"{path}: no column(s) {missing} in its header line (GLUE's tab-separated "
                                          f"{config} files have them); is this the {config} file?")
        try:
            for n, row in enumerate(reader):
                example = {name: row.get(col) for name, col in cfg.fields.items()}
                example["label"] = _glue_label(row, cfg, path, n + 2)
                example["idx"] = n
                if any(v is None for v in example.values()):  # the Hub's script drops such rows
                    tally.skipped[f"{path.name}: lines without every field (dropped by the Hub's conversion too)"] += 1
                    continue
                yield example
        except UnicodeDecodeError as err:
            raise OfficialFormatError(f"{path} is not UTF-8 (byte 0x{err.object[err.start]:02x})") from None
        except csv.Error as err:
            raise OfficialFormatError(f"{path} line {reader.line_num if hasattr(reader, 'line_num') else '?'}: "
                                      f"{err}") from None


def _glue_label(row: dict, cfg: GlueConfig, path: Path, line: int):
    if cfg.label not in row:
        return -1.0 if cfg.classes is None else -1  # test files have no label column
    value = row[cfg.label]
    if value is None:
        return None
    if cfg.classes is None:
        try:
            return float(value)
        except ValueError:
            raise OfficialFormatError(f"{_where(path, line)}: score {value!r} is not a number") from None
    if value in cfg.classes:
        return cfg.classes.index(value)
    if not value:
        return None
    try:
        index = int(value)
    except ValueError:
        raise OfficialFormatError(f"{_where(path, line)}: label {value!r} is neither a class id nor one of "
                                  f"{', '.join(cfg.classes)}") from None
    if not 0 <= index < len(cfg.classes):
        raise OfficialFormatError(f"{_where(path, line)}: label {index} is outside 0..{len(cfg.classes) - 1}")
    return index


def _glue_schema(config: str | None) -> pa.Schema:
    cfg = _glue_config(config)
    return pa.schema([*((name, pa.string()) for name in cfg.fields),
                      ("label", pa.float32() if cfg.classes is None else pa.int64()), ("idx", pa.int32())])


FORMATS.add("nyu-mll/glue", OfficialFormat(
    "nyu-mll/glue", "GLUE TSV files: train.tsv, dev.tsv (MNLI: dev_matched.tsv, dev_mismatched.tsv), test.tsv",
    split_from_name, _read_glue, _glue_schema, lambda config: config or ""))


# ------------------------------------------------------------------------------------------------ SuperGLUE


SUPERGLUE_CLASSES = {"cb": ("entailment", "contradiction", "neutral"), "rte": ("entailment", "not_entailment"),
                     "copa": ("choice1", "choice2")}
SUPERGLUE_FIELDS = {
    "boolq": ("question", "passage"), "cb": ("premise", "hypothesis"), "rte": ("premise", "hypothesis"),
    "copa": ("premise", "choice1", "choice2", "question"), "wic": ("word", "sentence1", "sentence2"),
    "wsc": ("text", "span1_text", "span2_text"), "wsc.fixed": ("text", "span1_text", "span2_text"),
}
INT_FIELDS = {"wic": ("start1", "start2", "end1", "end2"), "wsc": ("span1_index", "span2_index"),
              "wsc.fixed": ("span1_index", "span2_index")}
# The two WSC spans the Hub's repair leaves as they are: their words are not contiguous in the text.
WSC_UNFIXABLE = ("Kamenev and Zinoviev", "Kamenev, Zinoviev, and Stalin")


def repair_wsc_spans(example: dict) -> bool:
    """The Hub's `wsc.fixed` repair, in place: a span text that is not a substring of the text gets its first
    letter's case from the word at its index, loses trailing periods and has newlines replaced by spaces. Returns
    True when a span changed. Kept as the Hub keeps it: the "theyscold" row gets span2_index 10, its text is left."""
    changed = False
    for key in ("span1", "span2"):
        text, index = example[f"{key}_text"], int(example[f"{key}_index"])
        if text in example["text"] or text in WSC_UNFIXABLE:
            continue
        if "theyscold" in text:
            example["span2_index"] = 10
        words = example["text"].split()
        first = words[index] if 0 <= index < len(words) else text
        text = (text[0].lower() if first[:1].islower() else text[0].upper()) + text[1:]
        text = text.rstrip(".").replace("\n", " ")
        changed |= text != example[f"{key}_text"]
        example[f"{key}_text"] = text
    return changed


def _class_index(value, classes: tuple[str, ...], where: str) -> int:
    if isinstance(value, bool):
        value = "True" if value else "False"
    if isinstance(value, int) and 0 <= value < len(classes):
        return value
    if str(value) in classes:
        return classes.index(str(value))
    raise OfficialFormatError(f"{where}: label {value!r} is not one of {', '.join(classes)}")


def _read_superglue(path: Path, split: str, config: str | None, tally: Tally) -> Iterator[dict]:
    if config == "multirc":
        yield from _read_multirc(path)
        return
    if config == "record":
        yield from _read_record(path)
        return
    if config not in SUPERGLUE_FIELDS:
        raise OfficialFormatError(f"SuperGLUE config {config!r} has no converter; known: "
                                  f"{', '.join([*SUPERGLUE_FIELDS, 'multirc', 'record'])}")
    classes = SUPERGLUE_CLASSES.get(config, ("False", "True"))
    for line, row in _json_lines(path):
        where = _where(path, line)
        if config.startswith("wsc"):
            row = {**row, **_get(row, "target", where)}
        example = {name: _get(row, name, where) for name in SUPERGLUE_FIELDS[config]}
        for name in INT_FIELDS.get(config, ()):
            example[name] = int(_get(row, name, where))
        if config == "wsc.fixed" and repair_wsc_spans(example):
            tally.repaired["wsc.fixed span texts that were not substrings of the text (the Hub's repair)"] += 1
        example["idx"] = int(_get(row, "idx", where))
        if "label" not in row:
            example["label"] = -1
        elif config == "copa":
            example["label"] = 1 if row["label"] else 0
        else:
            example["label"] = _class_index(row["label"], classes, where)
        yield example


def _read_multirc(path: Path) -> Iterator[dict]:
    for line, row in _json_lines(path):
        where = _where(path, line)
        passage = _get(row, "passage", where)
        for question in _get(passage, "questions", where):
            for answer in _get(question, "answers", where):
                label = answer.get("label")
                yield {"paragraph": _get(passage, "text", where), "question": _get(question, "question", where),
                       "answer": _get(answer, "text", where), "label": -1 if label is None else int(bool(label)),
                       "idx": {"paragraph": int(_get(row, "idx", where)), "question": int(_get(question, "idx", where)),
                               "answer": int(_get(answer, "idx", where))}}


def _read_record(path: Path) -> Iterator[dict]:
    for line, row in _json_lines(path):
        where = _where(path, line)
        passage = _get(row, "passage", where)
        text = _get(passage, "text", where)
        entities = sorted({text[e["start"]: e["end"] + 1] for e in _get(passage, "entities", where)})
        for qa in _get(row, "qas", where):
            yield {"passage": text, "query": _get(qa, "query", where), "entities": entities,
                   "answers": sorted({a["text"] for a in qa.get("answers", ())}),
                   "idx": {"passage": int(_get(row, "idx", where)), "query": int(_get(qa, "idx", where))}}


def _superglue_schema(config: str | None) -> pa.Schema:
    if config == "multirc":
        return pa.schema([("paragraph", pa.string()), ("question", pa.string()), ("answer", pa.string()),
                          ("idx", pa.struct([("paragraph", pa.int32()), ("question", pa.int32()),
                                             ("answer", pa.int32())])), ("label", pa.int64())])
    if config == "record":
        return pa.schema([("passage", pa.string()), ("query", pa.string()), ("entities", pa.list_(pa.string())),
                          ("answers", pa.list_(pa.string())),
                          ("idx", pa.struct([("passage", pa.int32()), ("query", pa.int32())]))])
    if config not in SUPERGLUE_FIELDS:
        raise OfficialFormatError(f"SuperGLUE config {config!r} has no converter")
    ints = INT_FIELDS.get(config, ())
    order = {"wsc": ("text", "span1_index", "span2_index", "span1_text", "span2_text")}
    names = order.get(config.split(".")[0], SUPERGLUE_FIELDS[config] + ints)
    return pa.schema([*((n, pa.int32() if n in ints else pa.string()) for n in names), ("idx", pa.int32()),
                      ("label", pa.int64())])


FORMATS.add("aps/super_glue", OfficialFormat(
    "aps/super_glue", "SuperGLUE JSON lines: train.jsonl, val.jsonl, test.jsonl", split_from_name,
    _read_superglue, _superglue_schema, lambda config: config or ""))


# ------------------------------------------------------------------------------------------------ SQuAD, DROP


def _read_squad(path: Path, split: str, config: str | None, tally: Tally) -> Iterator[dict]:
    data = _json_file(path)
    for a, article in enumerate(_get(data, "data", str(path))):
        for p, paragraph in enumerate(_get(article, "paragraphs", f"{path} article {a}")):
            where = f"{path} article {a}, paragraph {p}"
            for qa in _get(paragraph, "qas", where):
                answers = qa.get("answers", [])
                yield {"id": str(_get(qa, "id", where)), "title": article.get("title", ""),
                       "context": _get(paragraph, "context", where), "question": _get(qa, "question", where),
                       "answers": {"text": [x["text"] for x in answers],
                                   "answer_start": [int(x["answer_start"]) for x in answers]}}


def _squad_schema(config: str | None) -> pa.Schema:
    return pa.schema([("id", pa.string()), ("title", pa.string()), ("context", pa.string()),
                      ("question", pa.string()),
                      ("answers", pa.struct([("text", pa.list_(pa.string())),
                                             ("answer_start", pa.list_(pa.int32()))]))])


FORMATS.add("rajpurkar/squad", OfficialFormat(
    "rajpurkar/squad", "SQuAD v1.1 JSON: train-v1.1.json, dev-v1.1.json", split_from_name, _read_squad,
    _squad_schema, lambda config: config or "plain_text"))


def drop_answers(answers: list[dict]) -> dict | None:
    """DROP's answers as the Hub's `answers_spans` ({spans, types}): a number, a date ("day month year", empty
    parts left out at the ends) or the spans of each answer; None where the Hub's script drops the question (an
    answer that is two kinds at once, or no answer at all)."""
    spans, types = [], []
    for answer in answers:
        date = answer.get("date") or {}
        parts = [str(date.get(k, "")) for k in ("day", "month", "year")]
        has_date = any(parts)
        number, texts = str(answer.get("number", "")), list(answer.get("spans", []))
        if number:
            if has_date or texts:
                return None
            spans.append(number)
            types.append("number")
        elif has_date:
            if texts:
                return None
            spans.append(" ".join(parts).strip())
            types.append("date")
        for text in texts:
            spans.append(text)
            types.append("span")
    return {"spans": spans, "types": types} if spans else None


def _read_drop(path: Path, split: str, config: str | None, tally: Tally) -> Iterator[dict]:
    data = _json_file(path)
    if not isinstance(data, dict):
        raise OfficialFormatError(f"{path}: expected an object of passages keyed by section id")
    for section_id, section in data.items():
        where = f"{path} section {section_id}"
        for qa in _get(section, "qa_pairs", where):
            answers = [_get(qa, "answer", where)] if split == "train" else _get(qa, "validated_answers", where)
            spans = drop_answers(answers)
            if spans is None:
                tally.skipped[f"{path.name}: questions whose answer is empty or two kinds at once (dropped by the "
                              "Hub's conversion too)"] += 1
                continue
            yield {"section_id": section_id, "query_id": _get(qa, "query_id", where),
                   "passage": _get(section, "passage", where), "question": _get(qa, "question", where),
                   "answers_spans": spans}


def _drop_schema(config: str | None) -> pa.Schema:
    return pa.schema([("section_id", pa.string()), ("query_id", pa.string()), ("passage", pa.string()),
                      ("question", pa.string()),
                      ("answers_spans", pa.struct([("spans", pa.list_(pa.string())),
                                                   ("types", pa.list_(pa.string()))]))])


FORMATS.add("ucinlp/drop", OfficialFormat(
    "ucinlp/drop", "DROP JSON: drop_dataset_train.json, drop_dataset_dev.json", split_from_name, _read_drop,
    _drop_schema, lambda config: config or "data"))


# ------------------------------------------------------------------------------------------------ HellaSwag, WinoGrande


def _read_hellaswag(path: Path, split: str, config: str | None, tally: Tally) -> Iterator[dict]:
    for line, row in _json_lines(path):
        where = _where(path, line)
        yield {"ind": int(_get(row, "ind", where)), "activity_label": _get(row, "activity_label", where),
               "ctx_a": row.get("ctx_a", ""), "ctx_b": row.get("ctx_b", ""), "ctx": _get(row, "ctx", where),
               "endings": list(row.get("endings", [])), "source_id": _get(row, "source_id", where),
               "split": _get(row, "split", where), "split_type": _get(row, "split_type", where),
               "label": str(row.get("label", ""))}


def _hellaswag_schema(config: str | None) -> pa.Schema:
    return pa.schema([("ind", pa.int32()), ("activity_label", pa.string()), ("ctx_a", pa.string()),
                      ("ctx_b", pa.string()), ("ctx", pa.string()), ("endings", pa.list_(pa.string())),
                      ("source_id", pa.string()), ("split", pa.string()), ("split_type", pa.string()),
                      ("label", pa.string())])


FORMATS.add("Rowan/hellaswag", OfficialFormat(
    "Rowan/hellaswag", "HellaSwag JSON lines: hellaswag_train.jsonl, hellaswag_val.jsonl", split_from_name,
    _read_hellaswag, _hellaswag_schema, lambda config: config or "data"))


def _winogrande_split(path: Path, config: str | None) -> str | None:
    """train_<size>.jsonl belongs to config winogrande_<size> only; dev and test are shared by every size."""
    split = split_from_name(path)
    if split == "train":
        size = (config or "winogrande_xl").removeprefix("winogrande_")
        return "train" if path.stem.lower() == f"train_{size}" else None
    return split


def _read_winogrande(path: Path, split: str, config: str | None, tally: Tally) -> Iterator[dict]:
    for line, row in _json_lines(path):
        where = _where(path, line)
        yield {"sentence": _get(row, "sentence", where), "option1": _get(row, "option1", where),
               "option2": _get(row, "option2", where), "answer": str(row.get("answer", ""))}


FORMATS.add("allenai/winogrande", OfficialFormat(
    "allenai/winogrande", "WinoGrande JSON lines: train_xl.jsonl (the config's size), dev.jsonl", _winogrande_split,
    _read_winogrande, lambda config: pa.schema([(n, pa.string()) for n in ("sentence", "option1", "option2", "answer")]),
    lambda config: config or "winogrande_xl"))


# ------------------------------------------------------------------------------------------------ RACE, CosmosQA

RACE_SPLITS = {"train": "train", "dev": "validation", "test": "test"}


def _race_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.txt") if p.is_file())


def _race_split(path: Path, config: str | None) -> str | None:
    """RACE/<train|dev|test>/<middle|high>/<n>.txt: the split from the folder, only the config's level."""
    parts = [p.lower() for p in path.parts]
    if len(parts) < 3 or parts[-2] != (config or "middle"):
        return None
    return RACE_SPLITS.get(parts[-3])


def _read_race(path: Path, split: str, config: str | None, tally: Tally) -> Iterator[dict]:
    data = _json_file(path)
    where = str(path)
    questions, answers, options = (_get(data, k, where) for k in ("questions", "answers", "options"))
    if not len(questions) == len(answers) == len(options):
        raise OfficialFormatError(f"{path}: {len(questions)} questions, {len(answers)} answers and {len(options)} "
                                  "option lists; they must match")
    for question, answer, option in zip(questions, answers, options):
        yield {"example_id": data.get("id", path.name), "article": _get(data, "article", where), "answer": answer,
               "question": question, "options": list(option)}


FORMATS.add("ehovy/race", OfficialFormat(
    "ehovy/race", "RACE folders: RACE/train/middle/*.txt, RACE/dev/middle/*.txt (one JSON article per file)",
    _race_split, _read_race,
    lambda config: pa.schema([("example_id", pa.string()), ("article", pa.string()), ("answer", pa.string()),
                              ("question", pa.string()), ("options", pa.list_(pa.string()))]),
    lambda config: config or "middle", expand=_race_files))


COSMOS_COLUMNS = ("id", "context", "question", "answer0", "answer1", "answer2", "answer3")


def _read_cosmosqa(path: Path, split: str, config: str | None, tally: Tally) -> Iterator[dict]:
    if path.suffix == ".jsonl":  # the test file: no labels
        for line, row in _json_lines(path):
            yield {**{c: _get(row, c, _where(path, line)) for c in COSMOS_COLUMNS}, "label": -1}
        return
    csv.field_size_limit(MAX_FIELD_CHARS)
    try:
        check_data_file(path, kind="CSV")
    except RowFileError as err:
        raise OfficialFormatError(str(err)) from None
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in (*COSMOS_COLUMNS, "label") if c not in (reader.fieldnames or ())]
        if missing:
            raise OfficialFormatError(f"{path}: no column(s) {missing} in the header (found: {reader.fieldnames})")
        for row in reader:
            try:
                label = int(row["label"])
            except (TypeError, ValueError):
                raise OfficialFormatError(f"{path} line {reader.line_num}: label {row['label']!r} is not 0..3") \
                    from None
            yield {**{c: row[c] for c in COSMOS_COLUMNS}, "label": label}


FORMATS.add("allenai/cosmos_qa", OfficialFormat(
    "allenai/cosmos_qa", "CosmosQA: train.csv, valid.csv (and test.jsonl)", split_from_name, _read_cosmosqa,
    lambda config: pa.schema([*((c, pa.string()) for c in COSMOS_COLUMNS), ("label", pa.int32())]),
    lambda config: config or "default"))
