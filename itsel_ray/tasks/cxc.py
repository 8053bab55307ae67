"""Build the CxC task files (`cxc.train`, `cxc.val_1k`) in the authors' JSON-lines format from the public CxC data.

CxC (Crisscrossed Captions) publishes caption-pair similarity scores keyed by COCO caption ids (Karpathy-split
sentids), without the caption text and without a training split. The authors evaluated on the last 1,000 rows of
`sts_test.csv`; their training file is not public and is taken here to be `sts_val.csv` plus the rest of
`sts_test.csv` (87,054 rows: inferred, consistent with their SIZE ranking). See docs/data.md.

    python -m itsel_ray.tasks.cxc --sts-dir Crisscrossed-Captions/data --out "$ITSEL_RAY_DATA_DIR/cxc"
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

STS_COLUMNS = ("caption1", "caption2", "agg_score", "sampling_method")
TRAIN_FILE, EVAL_FILE = "cxc.train", "cxc.val_1k"
EVAL_ROWS = 1000
KARPATHY_HUB = "yerevann/coco-karpathy"


def sentid(caption_id: str) -> int:
    """The Karpathy sentid of a CxC caption id, e.g. "COCO_val2014:sentid:52568" -> 52568."""
    head, sep, tail = str(caption_id).rpartition(":sentid:")
    if not sep or not tail.isdigit():
        raise ValueError(f"caption id {caption_id!r} is not of the form '<image set>:sentid:<int>'")
    return int(tail)


def join_captions(rows: Iterable[Mapping[str, Any]], captions: Mapping[int, str]) -> list[dict]:
    """CxC STS rows with the caption texts joined in as sentence1/sentence2 (the authors' six fields, in order)."""
    out = []
    for i, row in enumerate(rows):
        missing = [c for c in STS_COLUMNS if c not in row]
        if missing:
            raise ValueError(f"CxC row {i}: missing column(s) {missing} (found: {sorted(row)})")
        texts = []
        for col in ("caption1", "caption2"):
            sid = sentid(row[col])
            if sid not in captions:
                raise ValueError(
                    f"CxC row {i}: no caption for {row[col]!r} (sentid {sid}); the map must cover the Karpathy "
                    "val and test splits"
                )
            texts.append(captions[sid])
        out.append({**{c: row[c] for c in STS_COLUMNS}, "sentence1": texts[0], "sentence2": texts[1]})
    return out


def split_rows(val_rows: Sequence[dict], test_rows: Sequence[dict], *, eval_rows: int = EVAL_ROWS):
    """(train, eval): eval = the last `eval_rows` test rows (the authors' cxc.val_1k), train = val + the rest."""
    if not 0 < eval_rows <= len(test_rows):
        raise ValueError(f"cannot take {eval_rows} evaluation rows from {len(test_rows)} sts_test rows")
    cut = len(test_rows) - eval_rows
    return [*val_rows, *test_rows[:cut]], list(test_rows[cut:])


def build(val_rows, test_rows, captions: Mapping[int, str], *, eval_rows: int = EVAL_ROWS) -> dict[str, list[dict]]:
    """File name -> rows of both task files; pure."""
    train, evaluation = split_rows(join_captions(val_rows, captions), join_captions(test_rows, captions),
                                   eval_rows=eval_rows)
    return {TRAIN_FILE: train, EVAL_FILE: evaluation}


def write_jsonl_atomic(path: str | os.PathLike, rows: Iterable[Mapping[str, Any]]) -> Path:
    """Write JSON lines (the authors' `json.dumps` spelling) through a temporary file renamed into place, so a
    reader never sees a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_sts_csv(path: str | os.PathLike) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def captions_from_karpathy_json(data: Mapping[str, Any]) -> dict[int, str]:
    """sentid -> raw caption from a Karpathy `dataset_coco.json` ({"images": [{"sentences": [{"sentid", "raw"}]}]})."""
    return {int(s["sentid"]): s["raw"].strip() for img in data["images"] for s in img["sentences"]}


def captions_from_hub(repo: str = KARPATHY_HUB, splits: Sequence[str] = ("validation", "test")) -> dict[int, str]:
    """sentid -> caption from the Hub copy of the Karpathy split (needs a network). CxC uses only val and test."""
    import datasets

    captions: dict[int, str] = {}
    for split in splits:
        for row in datasets.load_dataset(repo, split=split):
            captions.update((int(i), str(c).strip()) for i, c in zip(row["sentids"], row["sentences"]))
    return captions


def main(argv: Sequence[str] | None = None) -> int:
    """Build both files; every failure (offline, a missing or malformed input) is one line on stderr, exit 2."""
    parser = argparse.ArgumentParser(prog="python -m itsel_ray.tasks.cxc", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sts-dir", required=True, help="folder holding CxC's sts_val.csv and sts_test.csv")
    parser.add_argument("--out", required=True, help="output folder, normally <data_dir>/cxc")
    parser.add_argument("--karpathy-json", help="a local dataset_coco.json instead of fetching the caption map")
    parser.add_argument("--eval-rows", type=int, default=EVAL_ROWS)
    args = parser.parse_args(argv)
    try:
        files = _build_files(args)
        for name, rows in files.items():
            print(f"wrote {len(rows):,} rows to {write_jsonl_atomic(Path(args.out) / name, rows)}")
    except CxcInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"error: cannot write {err.filename or args.out}: {err.strerror or err}", file=sys.stderr)
        return 3
    return 0


class CxcInputError(ValueError):
    """A CxC input that cannot be built from; the message names the file or the source."""


def _build_files(args) -> dict[str, list[dict]]:
    sts = Path(args.sts_dir)
    for name in ("sts_val.csv", "sts_test.csv"):
        if not (sts / name).is_file():
            raise CxcInputError(f"--sts-dir {sts}: no {name} (point it at Crisscrossed-Captions/data)")
    try:
        val, test = read_sts_csv(sts / "sts_val.csv"), read_sts_csv(sts / "sts_test.csv")
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise CxcInputError(f"--sts-dir {sts}: cannot read the CSV files ({type(err).__name__}: {err})") from None
    if args.karpathy_json:
        path = Path(args.karpathy_json)
        try:
            captions = captions_from_karpathy_json(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise CxcInputError(f"--karpathy-json {path}: not a readable Karpathy dataset_coco.json "
                                f"({type(err).__name__}: {str(err)[:200]})") from None
    else:
        try:
            captions = captions_from_hub()
        except Exception as err:  # offline, a missing cache, a moved repository: all the same to the user
            first = str(err).splitlines()[0][:200] if str(err) else ""
            raise CxcInputError(f"cannot fetch the caption map {KARPATHY_HUB} from the Hugging Face Hub "
                                f"({type(err).__name__}: {first}); without network access pass a local "
                                "--karpathy-json dataset_coco.json (docs/data.md)") from None
    try:
        return build(val, test, captions, eval_rows=args.eval_rows)
    except ValueError as err:
        raise CxcInputError(str(err)) from None


if __name__ == "__main__":
    sys.exit(main())
