"""Nothing outside the storage and nothing that cannot be a result: entries that are symlinks, FIFOs or devices are
refused by name (never followed, never blocked on), records are read with a bound, a finished result whose score
cannot be (NaN, outside the metric's range, not a number) is damaged (rebuilt or rerun, and `status` says so), and
folders made from temporary folders follow the umask like files. No Ray."""

from __future__ import annotations

import json
import math
import os
import stat
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import yaml

from itsel_ray.artifacts import make_temp_dir, read_json, write_json
from itsel_ray.engine import fake as fake_engine
from itsel_ray.runs.plan import plan_stage
from itsel_ray.runs.status import format_status
from itsel_ray.runs.storage import MAX_JSON_BYTES, Storage, StorageError, sweep_root
from itsel_ray.runs.sweep_file import load_sweep, sweeps_dir
from itsel_ray.runs.tables import write_tables
from itsel_ray.runs.trial_state import MARKER, expected_fingerprint, marker_record, read_record, result_problem


@pytest.fixture
def sweep(tmp_path):
    data = yaml.safe_load((sweeps_dir() / "smoke.yaml").read_text())
    data.update(name="safety", engine="fake")
    path = tmp_path / "safety.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_sweep(str(path))


def finish(sweep, storage, trial):
    cfg = sweep.trial_config(trial.role, task=trial.task, seed=trial.seed, source=trial.source or None)
    work = storage.local(trial.key)
    fake_engine.run_trial(cfg, work)
    expected = expected_fingerprint(sweep, trial)
    write_json(work / MARKER, marker_record(trial, expected))
    return work, expected


# ------------------------------------------------------------------------------------------------ entries


def test_a_symlinked_results_folder_is_refused_and_nothing_is_written_outside(tmp_path):
    storage = Storage(tmp_path / "s")
    storage.local().mkdir(parents=True)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    os.symlink(outside, storage.local() / "results")
    with pytest.raises(StorageError) as err:
        storage.write_bytes("results/results.csv", b"x")
    assert str(err.value).startswith(f"storage entry {storage.root}/results is a symlink to {outside}; a sweep reads "
                                     "and writes only plain folders and files inside its storage")
    assert list(outside.iterdir()) == []
    with pytest.raises(StorageError, match="is a symlink"):
        storage.read_bytes("results/results.csv")
    with pytest.raises(StorageError, match="is a symlink"):
        storage.local("results")
    with pytest.raises(StorageError, match=r"results is a symlink"):
        storage.check_entries()


def test_a_fifo_is_refused_without_blocking_and_devices_by_name(tmp_path):
    storage = Storage(tmp_path / "s")
    (storage.local() / "tune").mkdir(parents=True)
    os.mkfifo(storage.local() / "tune" / "result.json")
    t0 = time.monotonic()
    with pytest.raises(StorageError, match=r"tune/result.json is a FIFO"):
        storage.read_json_checked("tune/result.json")
    assert time.monotonic() - t0 < 2
    with pytest.raises(StorageError, match="is a FIFO"):
        storage.list_files("tune")
    count_msg = pytest.raises(StorageError, match="is a FIFO")
    with count_msg:
        storage.check_entries()


def test_a_symlinked_file_inside_a_trial_folder_and_its_listing(tmp_path):
    storage = Storage(tmp_path / "s")
    folder = storage.local("tune/t/seed=1/prompts")
    folder.mkdir(parents=True)
    (folder / "step_000000.safetensors").write_bytes(b"x")
    os.symlink("/etc/passwd", folder / "step_000010.safetensors")
    with pytest.raises(StorageError, match=r"step_000010.safetensors is a symlink to /etc/passwd"):
        storage.list_files("tune/t/seed=1/prompts")
    with pytest.raises(StorageError, match="is a symlink"):
        storage.read_bytes("tune/t/seed=1/prompts/step_000010.safetensors")
    with pytest.raises(StorageError, match=r"step_000010.safetensors is a symlink to /etc/passwd"):
        storage.check_entries()


def test_plain_folders_pass_and_the_root_itself_may_be_reached_through_a_link(tmp_path):
    real = tmp_path / "real"
    (real / "demo" / "tune").mkdir(parents=True)
    os.symlink(real, tmp_path / "link")  # a storage mount reached through a symlink is the user's choice
    storage = sweep_root(str(tmp_path / "link"), "demo")
    storage.check_entries()
    storage.write_json("results/x.json", {"a": 1})
    assert storage.read_json("results/x.json") == {"a": 1}
    assert storage.list_files("results") == ["results/x.json"]


def test_records_are_read_with_a_bound(tmp_path):
    storage = Storage(tmp_path / "s")
    path = storage.local("tune/t/result.json")
    path.parent.mkdir(parents=True)
    with open(path, "wb") as f:  # a 2 GiB file, sparse
        f.truncate(2 * 2**30)
    tracemalloc.start()
    value, why = storage.read_json_why("tune/t/result.json")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert value is None and why == f"2,048.0 MiB, larger than any record ({MAX_JSON_BYTES / 2**20:,.0f} MiB at most); " \
                                     "not read"
    assert peak < 10 * 2**20


# ------------------------------------------------------------------------------------------------ results


@pytest.mark.parametrize("score,why", [
    (float("nan"), "has best_score nan, outside the score range [0, 100]"),
    (250.0, "has best_score 250.0, outside the score range [0, 100] (task syn_has0 is scored by accuracy x100)"),
    (-3.0, "outside the score range"), (float("inf"), "has best_score inf"),
    ("high", "has best_score 'high', not a number"), (True, "has best_score True, not a number"),
])
def test_a_finished_score_that_cannot_be_is_damaged(score, why):
    assert why in result_problem({"status": "done", "best_score": score}, "syn_has0")


def test_scores_inside_the_metrics_range_pass_correlations_may_be_negative():
    assert result_problem({"status": "done", "best_score": 87.5}, "rte") is None
    assert result_problem({"status": "done", "best_score": -12.0}, "cola") is None  # MCC
    assert "[-100, 100]" in result_problem({"status": "done", "best_score": -120.0}, "stsb")
    assert result_problem({"status": "running", "best_score": None}, "rte") is None


@pytest.mark.parametrize("bad", [float("nan"), 250.0])
def test_a_nan_or_out_of_range_result_is_rebuilt_by_the_driver_and_damaged_in_status(sweep, tmp_path, bad):
    storage = sweep_root(str(tmp_path / "runs"), sweep.name)
    t = plan_stage(sweep, "tune")[0]
    work, expected = finish(sweep, storage, t)
    good = read_json(work / "result.json")
    (work / "result.json").write_text(json.dumps({**good, "best_score": bad}))
    seen = read_record(storage, sweep, t, expected)
    assert seen.status == "damaged" and math.isnan(seen.score)
    assert f"{work}/result.json has best_score {bad!r}, outside the score range [0, 100]" in seen.note
    text = format_status(sweep, storage)
    assert "damaged" in text and f"note: {work}/result.json has best_score" in text
    results, _ = write_tables(sweep, storage)  # the tables carry no impossible score
    row = results[(results["task"] == t.task) & (results["seed"] == t.seed)].iloc[0]
    assert row["status"] == "damaged" and np.isnan(row["score"])
    fixed = read_record(storage, sweep, t, expected, recover=fake_engine.recover_record)
    assert fixed.status == "done" and fixed.score == good["best_score"]
    assert "rebuilt from the resume state" in fixed.note


def test_a_damaged_result_without_a_state_is_rerun(sweep, tmp_path):
    storage = sweep_root(str(tmp_path / "runs"), sweep.name)
    t = plan_stage(sweep, "tune")[0]
    work, expected = finish(sweep, storage, t)
    for name in ("state.pt", "state.prev.pt"):
        (work / name).unlink(missing_ok=True)
    (work / "result.json").write_text(json.dumps({**read_json(work / "result.json"), "best_score": 250}))
    record = read_record(storage, sweep, t, expected, recover=fake_engine.recover_record)
    assert record.status == "damaged" and "reruns the trial" in record.note


def test_status_of_a_2gib_result_reads_none_of_it(sweep, tmp_path):
    storage = sweep_root(str(tmp_path / "runs"), sweep.name)
    t = plan_stage(sweep, "tune")[0]
    work, _ = finish(sweep, storage, t)
    with open(work / "result.json", "wb") as f:
        f.truncate(2 * 2**30)
    tracemalloc.start()
    text = format_status(sweep, storage)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert f"note: {work}/result.json is damaged (2,048.0 MiB, larger than any record" in text
    assert peak < 64 * 2**20


# ------------------------------------------------------------------------------------------------ umask


def test_folders_from_temporary_folders_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        import importlib

        import itsel_ray.artifacts as artifacts

        importlib.reload(artifacts)
        folder = artifacts.make_temp_dir(".x.", tmp_path)
        assert stat.S_IMODE(folder.stat().st_mode) == 0o755
    finally:
        os.umask(old)
        importlib.reload(artifacts)


def test_prepared_parts_and_the_analysis_folder_are_not_private(tmp_path, monkeypatch):
    from itsel_ray import artifacts
    from itsel_ray.analysis.output_dir import staged_folder
    from itsel_ray.data.cache import write_part
    from itsel_ray.data.encoded import Encoded, Ragged

    monkeypatch.setattr(artifacts, "_UMASK", 0o022)
    ragged = Ragged(np.array([1, 2], np.int32), np.array([0, 2], np.int64))
    part = write_part(tmp_path / "cache", "train", Encoded(ragged, ragged, np.array([0], np.int32)),
                      np.array([0]), n_rows=1)
    assert stat.S_IMODE(part.stat().st_mode) == 0o755
    with staged_folder(tmp_path / "analysis") as stage:
        (stage / "analysis_config.json").write_text("{}")
    assert stat.S_IMODE((tmp_path / "analysis").stat().st_mode) == 0o755
    assert make_temp_dir  # the helper both use


def test_files_written_in_the_storage_are_regular(tmp_path):
    storage = Storage(tmp_path / "s")
    storage.append_text("logs/x.log", "line\n")
    assert Path(storage.local("logs/x.log")).read_text() == "line\n"
