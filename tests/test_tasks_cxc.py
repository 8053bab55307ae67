"""The CxC builder: CxC STS CSV rows + a sentid -> caption map -> the authors' two JSON-lines files."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from itsel_ray.tasks import get_task
from itsel_ray.tasks.cxc import (
    EVAL_FILE,
    TRAIN_FILE,
    build,
    captions_from_karpathy_json,
    join_captions,
    main,
    read_sts_csv,
    sentid,
    write_jsonl_atomic,
)

ANCHORS = Path(__file__).resolve().parents[2] / "shared" / "anchors" / "uds-lsv_intermediate-task-selection" / "seq2seq"

STS_VAL = """caption1,caption2,agg_score,sampling_method
COCO_val2014:sentid:101,COCO_val2014:sentid:102,3.45,c2c_cocaption
COCO_val2014:sentid:103,COCO_val2014:sentid:104,0.6,c2c_isim
"""
STS_TEST = """caption1,caption2,agg_score,sampling_method
COCO_val2014:sentid:201,COCO_val2014:sentid:202,2.0,c2c_isim
COCO_val2014:sentid:203,COCO_val2014:sentid:204,4.15,c2c_cocaption
COCO_val2014:sentid:205,COCO_val2014:sentid:206,5.0,c2c_cocaption
"""
KARPATHY = {"images": [
    {"filename": "COCO_val2014_000000000042.jpg", "split": "val", "sentences": [
        {"sentid": 101, "raw": "A man riding a wave on a surfboard."}, {"sentid": 102, "raw": "A surfer in the sea. "},
        {"sentid": 103, "raw": "A giraffe next to a tree."}]},
    {"filename": "COCO_val2014_000000000073.jpg", "split": "test", "sentences": [
        {"sentid": 104, "raw": "A plate of broccoli."}, {"sentid": 201, "raw": "Two cats on a sofa."},
        {"sentid": 202, "raw": "A dog on a bed."}, {"sentid": 203, "raw": "A red bus."},
        {"sentid": 204, "raw": "A red double-decker bus."}, {"sentid": 205, "raw": "A kitchen with a stove."},
        {"sentid": 206, "raw": "A kitchen with an oven and a stove."}]},
]}


def rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def test_sentid_parses_the_caption_id():
    assert sentid("COCO_val2014:sentid:52568") == 52568
    with pytest.raises(ValueError, match="'52568' is not of the form"):
        sentid("52568")


def test_build_joins_captions_and_splits_off_the_last_test_rows():
    captions = captions_from_karpathy_json(KARPATHY)
    assert captions[102] == "A surfer in the sea."  # raw captions are stripped
    files = build(rows(STS_VAL), rows(STS_TEST), captions, eval_rows=2)
    # eval = the last 2 sts_test rows; train = both sts_val rows + the first sts_test row
    assert files[EVAL_FILE] == [
        {"caption1": "COCO_val2014:sentid:203", "caption2": "COCO_val2014:sentid:204", "agg_score": "4.15",
         "sampling_method": "c2c_cocaption", "sentence1": "A red bus.", "sentence2": "A red double-decker bus."},
        {"caption1": "COCO_val2014:sentid:205", "caption2": "COCO_val2014:sentid:206", "agg_score": "5.0",
         "sampling_method": "c2c_cocaption", "sentence1": "A kitchen with a stove.",
         "sentence2": "A kitchen with an oven and a stove."},
    ]
    assert [(r["caption1"], r["sentence2"]) for r in files[TRAIN_FILE]] == [
        ("COCO_val2014:sentid:101", "A surfer in the sea."), ("COCO_val2014:sentid:103", "A plate of broccoli."),
        ("COCO_val2014:sentid:201", "A dog on a bed.")]


def test_build_refuses_missing_captions_and_too_few_rows():
    with pytest.raises(ValueError, match=r"row 0: no caption for 'COCO_val2014:sentid:201' \(sentid 201\)"):
        join_captions(rows(STS_TEST), {101: "x"})
    with pytest.raises(ValueError, match="missing column"):
        join_captions([{"caption1": "a:sentid:1"}], {})
    with pytest.raises(ValueError, match="cannot take 1000 evaluation rows from 3"):
        build(rows(STS_VAL), rows(STS_TEST), captions_from_karpathy_json(KARPATHY))


def test_written_files_load_as_the_cxc_task(tmp_path):
    sts = tmp_path / "sts"
    sts.mkdir()
    (sts / "sts_val.csv").write_text(STS_VAL)
    (sts / "sts_test.csv").write_text(STS_TEST)
    (tmp_path / "coco.json").write_text(json.dumps(KARPATHY))
    main(["--sts-dir", str(sts), "--out", str(tmp_path / "data" / "cxc"), "--karpathy-json",
          str(tmp_path / "coco.json"), "--eval-rows", "2"])
    assert sorted(p.name for p in (tmp_path / "data" / "cxc").iterdir()) == [TRAIN_FILE, EVAL_FILE]  # no temp left
    first = (tmp_path / "data" / "cxc" / EVAL_FILE).read_text().splitlines()[0]
    assert first == ('{"caption1": "COCO_val2014:sentid:203", "caption2": "COCO_val2014:sentid:204", '
                     '"agg_score": "4.15", "sampling_method": "c2c_cocaption", "sentence1": "A red bus.", '
                     '"sentence2": "A red double-decker bus."}')
    examples = get_task("cxc").load("validation", data_dir=tmp_path / "data")
    # 4.15 -> numpy: 41.5 rounds to even 42 -> 4.2
    assert [e.target for e in examples] == ["four point two", "five point zero"]
    assert len(get_task("cxc").load("train", data_dir=tmp_path / "data")) == 3
    assert len(read_sts_csv(sts / "sts_val.csv")) == 2


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path):
    path = write_jsonl_atomic(tmp_path / "f.jsonl", [{"a": 1}])

    def broken():
        yield {"a": 2}
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_jsonl_atomic(path, broken())
    assert path.read_text() == '{"a": 1}\n' and [p.name for p in tmp_path.iterdir()] == ["f.jsonl"]


@pytest.mark.skipif(not ANCHORS.is_dir(), reason="../shared/anchors is not available")
def test_builder_reproduces_the_authors_evaluation_file_lines():
    lines = (ANCHORS / "cxc.val_1k").read_text().splitlines()
    authors = [json.loads(line) for line in lines]
    captions = {sentid(r[c]): r[s] for r in authors for c, s in (("caption1", "sentence1"), ("caption2", "sentence2"))}
    sts = [{k: r[k] for k in ("caption1", "caption2", "agg_score", "sampling_method")} for r in authors]
    files = build([], sts, captions, eval_rows=1000)
    assert [json.dumps(r) for r in files[EVAL_FILE]] == lines


def test_building_offline_without_a_karpathy_file_is_one_line_naming_the_way_out(tmp_path, capsys, monkeypatch):
    sts = tmp_path / "sts"
    sts.mkdir()
    (sts / "sts_val.csv").write_text(STS_VAL)
    (sts / "sts_test.csv").write_text(STS_TEST)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    code = main(["--sts-dir", str(sts), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "cannot fetch the caption map yerevann/coco-karpathy" in err and "--karpathy-json" in err
    assert not (tmp_path / "out").exists()
    assert main(["--sts-dir", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert "no sts_val.csv (point it at Crisscrossed-Captions/data)" in capsys.readouterr().err
    (tmp_path / "coco.json").write_text("{}")
    assert main(["--sts-dir", str(sts), "--out", str(tmp_path / "out"), "--karpathy-json",
                 str(tmp_path / "coco.json")]) == 2
    assert "not a readable Karpathy dataset_coco.json" in capsys.readouterr().err
