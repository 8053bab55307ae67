"""The prepare step on fixture mirrors (offline): every task prepares, trials read the cache and get exactly what
loading in the trial gives, broken schemas fail naming task, split and column or row, and a second call is cheap."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest

from itsel_ray.data import prepare as prepare_module
from itsel_ray.data.cache import read_manifest, task_folder
from itsel_ray.data.prepare import (
    PrepareError, PrepareSettings, SplitReport, TaskReport, fetch_model, format_report, prepare_plan, prepare_task,
)
from itsel_ray.engine.data import prepare_data
from itsel_ray.tasks import LOADERS, get_task
from itsel_ray.tasks import spec as spec_module
from itsel_ray.tasks.spec import clear_row_cache
from itsel_ray.trial_config import DataConfig, ModelConfig, TrialConfig
from itsel_ray.engine.t5 import T5
from tests.conftest import TEST_THREADS
from tests.mirrors import PAPER_TASKS, TOKENIZER, fixture, split_path, write_mirror, write_parquet, write_task

ANCHORS = Path(__file__).resolve().parents[2] / "shared" / "anchors" / "uds-lsv_intermediate-task-selection" / "seq2seq"
TINY = {"d_model": 8, "d_ff": 8, "num_layers": 1, "num_decoder_layers": 1, "num_heads": 1, "d_kv": 8}
MODEL = ModelConfig(config=TINY, tokenizer=TOKENIZER)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch):
    for var in ("ITSEL_RAY_DATA_MIRROR", "ITSEL_RAY_DATA_CACHE", "ITSEL_RAY_DATA_DIR"):
        monkeypatch.delenv(var, raising=False)
    clear_row_cache()
    yield
    clear_row_cache()


@pytest.fixture
def small_record(monkeypatch):
    """ReCoRD carves 1,000 validation queries from train; the fixture has two, so carve one."""
    record = get_task("record")
    monkeypatch.setitem(spec_module.TASKS._items, "record",
                        dataclasses.replace(record, data=dataclasses.replace(record.data, carve_validation=1)))


@pytest.fixture(scope="module")
def mirror(tmp_path_factory) -> Path:
    return write_mirror(tmp_path_factory.mktemp("mirror"))


def settings(**data) -> PrepareSettings:
    seeds = data.pop("seeds", (0,))
    return PrepareSettings(MODEL, DataConfig(**data), seeds)


def trial(task: str, seed: int = 0, **data) -> TrialConfig:
    train = data.pop("train", {})
    return TrialConfig.from_dict({"task": task, "seed": seed, "model": {"config": TINY, "tokenizer": TOKENIZER},
                                  "data": data, "train": train})


def trial_data(cfg: TrialConfig):
    return prepare_data(cfg, get_task(cfg.task), T5.backbone(cfg.model))


def as_plain(data) -> tuple:
    return (data.train.inputs.tolist(), data.train.targets.tolist(), data.train.labels.tolist(),
            data.eval.inputs.tolist(), data.eval.targets.tolist(), data.eval.labels.tolist(), data.eval_examples)


def no_loading(monkeypatch):
    """Make every way of reading rows fail, to show that a trial reads only the cache."""
    def refuse(*args, **kwargs):
        raise AssertionError("rows were loaded")

    monkeypatch.setattr(spec_module, "fetch_rows", refuse)
    monkeypatch.setattr(spec_module, "read_split", refuse)
    for kind in ("hub", "json", "generated"):
        monkeypatch.setitem(LOADERS._items, kind, refuse)


# ------------------------------------------------------------------------------------------------ every task


@pytest.mark.parametrize("task", PAPER_TASKS)
def test_every_paper_task_prepares_from_a_fixture_mirror_offline(task, mirror, tmp_path, small_record):
    report = prepare_task(task, settings(), cache_root=tmp_path, mirror=mirror)
    assert report.ok, report.problems
    rows = fixture(task)
    by_name = {s.name: s for s in report.splits}
    assert by_name["train"].rows == len(rows["train"])
    if task == "record":  # one of the two training queries is carved as validation under the seed
        assert set(by_name) == {"train", "carve-1-seed0"} and by_name["carve-1-seed0"].rows == 1
    else:
        assert set(by_name) == {"train", "validation"} and by_name["validation"].rows == len(rows["validation"])
    words = get_task(task).label_words("text")
    for split in report.splits:
        assert split.examples >= 1
        assert sum(split.labels.values()) == (split.examples if words else 0)
        assert str(mirror) in split.origin
    assert any("declaration says" in w for w in report.warnings)  # fixture sizes are not the declared sizes
    assert report.cache and (Path(report.cache) / "manifest.json").is_file()


@pytest.mark.parametrize("task", PAPER_TASKS)
@pytest.mark.parametrize("label_style", ["text", "abstract"])
def test_a_trial_reads_from_the_cache_exactly_what_it_would_load(task, label_style, mirror, tmp_path, small_record,
                                                                 monkeypatch):
    loaded = trial_data(trial(task, mirror=str(mirror), label_style=label_style))
    assert loaded.source == "loaded in the trial"
    assert prepare_task(task, settings(label_style=label_style), cache_root=tmp_path, mirror=mirror).ok
    no_loading(monkeypatch)
    prepared = trial_data(trial(task, cache_dir=str(tmp_path), label_style=label_style))
    assert prepared.source.startswith(f"prepared {tmp_path}")
    assert isinstance(prepared.train.inputs.values, np.memmap)
    assert as_plain(prepared) == as_plain(loaded)
    assert all(e.input == "" for e in prepared.eval_examples)  # scoring reads golds, the model reads token ids


def _boolq_rows(n: int, offset: int = 0) -> list[dict]:
    return [{"question": f"is it {i}", "passage": f"passage {i}", "idx": i, "label": i % 2}
            for i in range(offset, offset + n)]


def test_carved_heldout_splits_and_limits_match_loading_for_each_seed(tmp_path, monkeypatch):
    root = write_task(tmp_path / "mirror", "boolq", {"train": _boolq_rows(20), "validation": _boolq_rows(4, 100)})
    data = dict(eval_split="heldout", heldout_size=5)
    report = prepare_task("boolq", settings(seeds=(3, 4), **data), cache_root=tmp_path / "cache", mirror=root)
    assert [s.name for s in report.splits] == ["train", "carve-5-seed3", "carve-5-seed4"]
    assert [s.rows for s in report.splits] == [20, 5, 5]
    limits = {"max_train_examples": 7, "max_eval_examples": 3}
    loaded = {s: as_plain(trial_data(trial("boolq", s, mirror=str(root), train=limits, **data))) for s in (3, 4)}
    no_loading(monkeypatch)
    for seed in (3, 4):
        got = trial_data(trial("boolq", seed, cache_dir=str(tmp_path / "cache"), train=limits, **data))
        assert got.source.startswith("prepared") and len(got.train) == 7 and len(got.eval) == 3
        assert as_plain(got) == loaded[seed]
    assert loaded[3] != loaded[4]


def test_a_seed_that_was_not_prepared_loads_in_the_trial(tmp_path):
    root = write_task(tmp_path / "mirror", "boolq", {"train": _boolq_rows(20), "validation": _boolq_rows(4, 100)})
    data = dict(eval_split="heldout", heldout_size=5)
    assert prepare_task("boolq", settings(seeds=(3,), **data), cache_root=tmp_path / "cache", mirror=root).ok
    got = trial_data(trial("boolq", 9, cache_dir=str(tmp_path / "cache"), mirror=str(root), **data))
    assert got.source == "loaded in the trial"


def test_one_cache_serves_every_seed_and_limit_but_not_another_label_style_or_tokenizer(mirror, tmp_path):
    tok = T5.backbone(MODEL).tokenizer
    spec = get_task("mnli")
    assert task_folder(tmp_path, spec, tok, "text") != task_folder(tmp_path, spec, tok, "abstract")
    other = T5.backbone(ModelConfig(config=TINY, tokenizer="vocab:synthetic")).tokenizer
    assert task_folder(tmp_path, spec, tok, "text") != task_folder(tmp_path, spec, other, "text")
    for seed in (28, 52):
        prepare_task("mnli", settings(seeds=(seed,)), cache_root=tmp_path, mirror=mirror)
    assert len(list((tmp_path / "mnli").iterdir())) == 1


def test_synthetic_tasks_prepare_from_their_generator(tmp_path, monkeypatch):
    report = prepare_task("syn_and45", settings(), cache_root=tmp_path)
    assert report.ok and [(s.rows, s.labels) for s in report.splits] == [(128, {"no": 64, "yes": 64}),
                                                                        (500, {"no": 250, "yes": 250})]
    assert "generated synthetic" in report.splits[0].origin
    no_loading(monkeypatch)
    assert trial_data(trial("syn_and45", cache_dir=str(tmp_path))).source.startswith("prepared")


def test_run_trial_trains_from_the_prepared_cache(mirror, tmp_path, monkeypatch):
    assert prepare_task("rte", settings(), cache_root=tmp_path / "cache", mirror=mirror).ok
    no_loading(monkeypatch)
    cfg = TrialConfig.from_dict({
        "task": "rte", "seed": 1, "model": {"config": TINY, "tokenizer": TOKENIZER}, "prompt": {"length": 2},
        "optim": {"name": "adam", "lr": 0.1}, "data": {"cache_dir": str(tmp_path / "cache")},
        "train": {"max_steps": 2, "batch_size": 2, "eval_every": 2, "save_every": 2, "loss": "label",
                  "eval_mode": "rank", "threads": TEST_THREADS}})
    result = T5.run_trial(cfg, tmp_path / "trial")
    assert result.status == "done" and result.steps == 2 and np.isfinite(result.best_score)


# ------------------------------------------------------------------------------------------------ broken data


def _mnli_mirror(root: Path, train: list[dict] | None = None, validation: list[dict] | None = None) -> Path:
    rows = fixture("mnli")
    return write_task(root, "mnli", {"train": rows["train"] if train is None else train,
                                     "validation": rows["validation"] if validation is None else validation})


def _assert_fails(report: TaskReport, cache: Path, *patterns: str) -> None:
    assert not report.ok and report.cache is None
    text = " ".join(report.problems)
    for pattern in patterns:
        assert pattern in text, text
    assert not list(cache.rglob("manifest.json")) and not list(cache.rglob("part.json"))


def test_a_missing_column_names_task_split_and_column(tmp_path):
    train = [{k: v for k, v in r.items() if k != "hypothesis"} for r in fixture("mnli")["train"]]
    report = prepare_task("mnli", settings(), cache_root=tmp_path / "c", mirror=_mnli_mirror(tmp_path / "m", train))
    _assert_fails(report, tmp_path / "c", "task mnli, split train: missing column 'hypothesis'")


def test_labels_outside_the_label_set_name_the_row(tmp_path):
    train = [{**r, "label": 7 if i == 1 else r["label"]} for i, r in enumerate(fixture("mnli")["train"])]
    report = prepare_task("mnli", settings(), cache_root=tmp_path / "c", mirror=_mnli_mirror(tmp_path / "m", train))
    _assert_fails(report, tmp_path / "c", "task mnli, split train: 1 of 2 rows cannot be made into examples",
                  "task mnli, split train, row 1: label 7 is outside the label set")


def test_hidden_minus_one_labels_in_a_training_split_fail(tmp_path):
    train = [{**r, "label": -1} for r in fixture("mnli")["train"]]
    report = prepare_task("mnli", settings(), cache_root=tmp_path / "c", mirror=_mnli_mirror(tmp_path / "m", train))
    _assert_fails(report, tmp_path / "c", "2 of 2 rows", "row 0: label -1 is outside", "hidden test labels")


def test_an_empty_split_fails(tmp_path):
    import pyarrow as pa

    root = _mnli_mirror(tmp_path / "m")
    schema = pa.Table.from_pylist(fixture("mnli")["validation"]).schema
    write_parquet(split_path(root, "mnli", "validation"), [], schema)
    report = prepare_task("mnli", settings(), cache_root=tmp_path / "c", mirror=root)
    _assert_fails(report, tmp_path / "c", "task mnli, split validation: no rows")


def test_a_split_missing_from_the_mirror_names_the_files_looked_for(tmp_path):
    root = _mnli_mirror(tmp_path / "m")
    split_path(root, "mnli", "validation").unlink()
    report = prepare_task("mnli", settings(), cache_root=tmp_path / "c", mirror=root)
    _assert_fails(report, tmp_path / "c", "task mnli, split validation: no parquet files for split "
                  "'validation_mismatched'", "mnli/validation_mismatched-*.parquet")


def test_unknown_task_and_missing_seeds_are_problems(tmp_path, small_record, mirror):
    assert "unknown task 'mnlii'" in prepare_task("mnlii", settings(), cache_root=tmp_path).problems[0]
    report = prepare_task("record", settings(seeds=()), cache_root=tmp_path, mirror=mirror)
    assert not report.ok and "carves its 1 validation rows from train under the trial seed" in report.problems[0]


# ------------------------------------------------------------------------------------------------ calling again


def test_a_second_call_reads_nothing_and_reports_the_same(mirror, tmp_path, monkeypatch):
    first = prepare_task("cb", settings(), cache_root=tmp_path, mirror=mirror)
    monkeypatch.setattr(prepare_module, "read_split", lambda *a, **k: pytest.fail("rows were read again"))
    second = prepare_task("cb", settings(), cache_root=tmp_path, mirror=mirror)
    assert second.reused and not first.reused
    assert (second.splits, second.cache, second.warnings) == (first.splits, first.cache, first.warnings)
    assert list(second.splits[0].labels) == ["entailment", "contradiction", "neutral"]  # declared order kept


def test_a_changed_mirror_file_is_prepared_again(tmp_path):
    root = write_task(tmp_path / "m", "boolq", {"train": _boolq_rows(6), "validation": _boolq_rows(2, 50)})
    assert prepare_task("boolq", settings(), cache_root=tmp_path / "c", mirror=root).splits[0].rows == 6
    write_task(root, "boolq", {"train": _boolq_rows(9), "validation": _boolq_rows(2, 50)})
    again = prepare_task("boolq", settings(), cache_root=tmp_path / "c", mirror=root)
    assert not again.reused and again.splits[0].rows == 9
    assert len(trial_data(trial("boolq", cache_dir=str(tmp_path / "c"))).train) == 9


def test_a_new_seed_builds_only_its_carved_split(tmp_path):
    root = write_task(tmp_path / "m", "boolq", {"train": _boolq_rows(20), "validation": _boolq_rows(2, 50)})
    data = dict(eval_split="heldout", heldout_size=5)
    first = prepare_task("boolq", settings(seeds=(1,), **data), cache_root=tmp_path / "c", mirror=root)
    train_meta = Path(first.cache) / "train" / "part.json"
    stamp = train_meta.stat().st_mtime_ns
    second = prepare_task("boolq", settings(seeds=(1, 2), **data), cache_root=tmp_path / "c", mirror=root)
    assert not second.reused and [s.name for s in second.splits] == ["train", "carve-5-seed1", "carve-5-seed2"]
    assert train_meta.stat().st_mtime_ns == stamp
    assert [s["name"] for s in read_manifest(Path(first.cache))["report"]["splits"]] == [
        "train", "carve-5-seed1", "carve-5-seed2"]
    assert prepare_task("boolq", settings(seeds=(2,), **data), cache_root=tmp_path / "c", mirror=root).reused


# ------------------------------------------------------------------------------------------------ plan, model, report


def test_prepare_plan_groups_trials_and_keeps_seeds_only_where_rows_are_carved():
    cfgs = [trial("boolq", s) for s in (28, 52)] + [trial("record", s) for s in (42, 150)]
    cfgs += [trial("boolq", 7, eval_split="heldout"), trial("boolq", 8, eval_split="heldout")]
    plan = prepare_plan(cfgs)
    assert [(t, s.seeds, s.data.eval_split) for t, s in plan] == [
        ("boolq", (), "validation"), ("record", (42, 150), "validation"), ("boolq", (7, 8), "heldout")]
    assert all(s.model == MODEL for _, s in plan)


def test_fetch_model_skips_what_needs_no_download_and_fails_offline_naming_the_model(tmp_path, monkeypatch):
    assert fetch_model(MODEL).startswith("nothing to fetch")
    folder = tmp_path / "t5"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "tokenizer.json").write_text("{}")
    with pytest.raises(PrepareError, match="lacks the weights and tokenizer files"):
        fetch_model(ModelConfig(name=str(folder)))
    (folder / "model.safetensors").write_bytes(b"")
    assert fetch_model(ModelConfig(name=str(folder))) == f"{folder}: local folder"
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(PrepareError, match=r"model 'no-such-org/no-such-t5'.*HF_HUB_OFFLINE is set"):
        fetch_model(ModelConfig(name="no-such-org/no-such-t5"))
    report = prepare_task("cb", PrepareSettings(ModelConfig(name="no-such-org/no-such-t5")), cache_root=tmp_path)
    assert not report.ok and "HF_HUB_OFFLINE" in report.problems[0]


def test_format_report_lists_splits_summary_problems_and_caches():
    ok = TaskReport("cb", "/c/cb/k", (SplitReport("train", "mirror /m/cb/train.parquet", 250, 250,
                                                  {"entailment": 115, "contradiction": 119, "neutral": 16}, 0),),
                    warnings=("w1",), reused=True)
    bad = TaskReport("mnli", problems=("task mnli, split train: missing column 'hypothesis'",))
    assert format_report([ok, bad]).splitlines() == [
        "task  split  rows  examples  labels                                         at cap  origin",
        "cb    train   250       250  entailment 115, contradiction 119, neutral 16       0  mirror /m/cb/train.parquet",
        "mnli  -         -         -  -                                                   -  FAILED",
        "2 task(s): 1 prepared (1 already up to date), 1 failed",
        "problems:",
        "  mnli: task mnli, split train: missing column 'hypothesis'",
        "warnings:",
        "  cb: w1",
        "cache cb: /c/cb/k",
    ]


# ------------------------------------------------------------------------------------------------ the authors' files

needs_anchors = pytest.mark.skipif(not ANCHORS.is_dir(), reason="../shared/anchors is not available")


@needs_anchors
def test_the_authors_cr_training_file_prepares_with_its_label_counts(tmp_path):
    write_task(tmp_path / "data", "cr", {"validation": fixture("cr")["validation"]})
    os.symlink(ANCHORS / "train.jsonl", tmp_path / "data" / "cr" / "train.jsonl")
    report = prepare_task("cr", settings(data_dir=str(tmp_path / "data")), cache_root=tmp_path / "c")
    assert report.ok, report.problems
    train = report.splits[0]
    assert (train.rows, train.examples, train.labels) == (3012, 3012, {"negative": 1079, "postive": 1933})
    assert not report.warnings  # 3,012 rows, as declared


@needs_anchors
def test_the_authors_cxc_evaluation_file_prepares(tmp_path, monkeypatch):
    write_task(tmp_path / "data", "cxc", {"train": fixture("cxc")["train"]})
    os.symlink(ANCHORS / "cxc.val_1k", tmp_path / "data" / "cxc" / "cxc.val_1k")
    monkeypatch.setenv("ITSEL_RAY_DATA_DIR", str(tmp_path / "data"))
    report = prepare_task("cxc", settings(), cache_root=tmp_path / "c")
    assert report.ok, report.problems
    validation = report.splits[1]
    assert (validation.name, validation.rows, validation.examples) == ("validation", 1000, 1000)
    data = trial_data(trial("cxc", cache_dir=str(tmp_path / "c")))
    assert data.eval_examples[0].target == "three point zero"  # agg_score "3.05" on the authors' 0.1 grid
