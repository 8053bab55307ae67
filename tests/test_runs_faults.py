"""Faults in the run state, without Ray: one driver per storage, every finished result surviving a single damaged
file, resume states that fall back or are refused by name, a sweep that cannot leave its storage, files readable per
the umask, and `status` telling a dead driver from a live one."""

import json
import os
import socket
import stat
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from itsel_ray.artifacts import StateError, TrialFiles, atomic_write_bytes, load_prompt, read_json, write_json
from itsel_ray.engine import fake as fake_engine
from itsel_ray.runs import lock
from itsel_ray.runs.plan import plan_stage
from itsel_ray.runs.source_prompts import INDEX, persist_source_prompts, source_index
from itsel_ray.runs.status import analysis_status, format_status
from itsel_ray.runs.storage import Storage, StorageError, check_key, sweep_root
from itsel_ray.runs.sweep_file import load_sweep, sweeps_dir
from itsel_ray.runs.trial_state import MARKER, expected_fingerprint, marker_record, read_record
from itsel_ray.schema import ConfigError


@pytest.fixture
def sweep(tmp_path):
    data = yaml.safe_load((sweeps_dir() / "smoke.yaml").read_text())
    data.update(name="faults", engine="fake")
    path = tmp_path / "faults.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_sweep(str(path))


def finish(sweep, storage, trial, index=None):
    """A finished trial folder as the trainable leaves it (fake engine + marker)."""
    cfg = sweep.trial_config(trial.role, task=trial.task, seed=trial.seed, source=trial.source or None)
    work = storage.local(trial.key)
    init = None
    if trial.stage == "transfer":
        init = load_prompt(storage.local(index[trial.source]["path"]))
    fake_engine.run_trial(cfg, work, init_prompt=init)
    expected = expected_fingerprint(sweep, trial, index)
    write_json(work / MARKER, marker_record(trial, expected))
    return work, expected


# ------------------------------------------------------------------------------------------------ the lock


def test_one_driver_per_storage_and_a_dead_one_never_blocks(tmp_path):
    storage = Storage(tmp_path / "s")
    first = lock.DriverLock(storage, "transfer").acquire()
    try:
        with pytest.raises(lock.LockedError, match=f"pid {os.getpid()} on {socket.gethostname()}.*transfer"):
            lock.DriverLock(storage, "tune").acquire()
        assert lock.is_alive(lock.holder(storage))
    finally:
        first.release()
    assert not storage.exists(lock.LOCK)

    # a driver that died without releasing: its pid is gone, so the lock is free at once
    dead = {"host": socket.gethostname(), "pid": 2**22 + 12345, "started": time.time(), "heartbeat": time.time()}
    storage.write_json(lock.LOCK, dead)
    assert not lock.is_alive(lock.holder(storage))
    with lock.DriverLock(storage, "tune"):
        assert lock.holder(storage).pid == os.getpid()

    # another host: a fresh heartbeat holds, a stale one does not
    storage.write_json(lock.LOCK, {**dead, "host": "elsewhere", "heartbeat": time.time()})
    with pytest.raises(lock.LockedError, match="on elsewhere"):
        lock.DriverLock(storage, "tune").acquire()
    storage.write_json(lock.LOCK, {**dead, "host": "elsewhere", "heartbeat": time.time() - 2 * lock.STALE_S})
    with lock.DriverLock(storage, "tune"):
        pass

    # an unreadable lock (a crash while it was written elsewhere) is not a live driver
    storage.write_bytes(lock.LOCK, b"{trunc")
    with lock.DriverLock(storage, "tune"):
        pass


# ------------------------------------------------------------------------------------------------ damaged files


def test_a_damaged_result_of_a_finished_trial_is_rebuilt_from_its_state(sweep, tmp_path):
    storage = Storage(tmp_path / "s")
    t = plan_stage(sweep, "tune")[0]
    work, expected = finish(sweep, storage, t)
    good = read_json(work / "result.json")
    (work / "result.json").write_text(json.dumps(good)[:40])  # truncated

    seen = read_record(storage, sweep, t, expected)  # status: reads, repairs nothing
    assert seen.status == "damaged" and "result.json is damaged" in seen.note and str(work) in seen.note
    fixed = read_record(storage, sweep, t, expected, recover=fake_engine.recover_record)  # the driver
    assert fixed.status == "done" and fixed.score == good["best_score"] and "rebuilt" in fixed.note
    assert read_json(work / "result.json") == good


def test_a_damaged_marker_is_rebuilt_when_the_other_files_prove_the_config(sweep, tmp_path):
    storage = Storage(tmp_path / "s")
    tune = plan_stage(sweep, "tune")
    for t in tune:
        finish(sweep, storage, t)
    _, index = persist_source_prompts(sweep, storage)
    tr = plan_stage(sweep, "transfer")[0]
    work, expected = finish(sweep, storage, tr, index)
    (work / MARKER).write_text("{")
    rec = read_record(storage, sweep, tr, expected, index=index)
    assert rec.status == "done" and "rebuilt from config.json" in rec.note
    assert read_json(work / MARKER)["fingerprint"] == expected
    # a transfer folder whose initial prompt is not the source's is not proven: it reads as not started
    (work / MARKER).write_text("{")
    start = TrialFiles(work).snapshot(0)
    from itsel_ray.artifacts import save_prompt

    save_prompt(start, np.zeros_like(load_prompt(start)))
    assert read_record(storage, sweep, tr, expected, index=index).status == "pending"


def test_a_damaged_index_and_a_damaged_source_prompt_are_rebuilt(sweep, tmp_path):
    storage = Storage(tmp_path / "s")
    for t in plan_stage(sweep, "tune"):
        finish(sweep, storage, t)
    prompts, index = persist_source_prompts(sweep, storage)
    storage.write_bytes(INDEX, b'{"syn_has0": ')
    rebuilt = source_index(sweep, storage)
    assert "damaged; rebuilt" in rebuilt.note
    assert {s: e["sha256"] for s, e in rebuilt.entries.items()} == {s: e["sha256"] for s, e in index.items()}
    # the chosen run's best prompt truncated: restored from the stored copy the index recorded for it
    storage.write_json(INDEX, index)
    best = storage.local(index["syn_has0"]["key"]) / TrialFiles.BEST_PROMPT
    best.write_bytes(best.read_bytes()[:30])
    again, _ = persist_source_prompts(sweep, storage)
    np.testing.assert_array_equal(again["syn_has0"], prompts["syn_has0"])
    np.testing.assert_array_equal(load_prompt(best), prompts["syn_has0"])


def test_a_damaged_state_falls_back_to_the_previous_one_or_is_refused_by_name(sweep, tmp_path):
    cfg = sweep.trial_config("source", task="syn_has0", seed=42)
    work = tmp_path / "trial"
    files = TrialFiles(work)
    fake_engine.run_trial(cfg, work)
    full = read_json(files.result)
    assert files.state_prev.is_file()
    files.state.write_bytes(b"garbage")  # the newest state is unreadable: the one before it still is
    assert fake_engine.recover_record(cfg, work)["steps"] == full["steps"] - cfg.train.eval_every
    files.state_prev.write_bytes(b"garbage")
    with pytest.raises(StateError, match=f"{work}.*state.pt.*state.prev.pt"):
        fake_engine.run_trial(cfg, work)
    assert fake_engine.recover_record(cfg, work) is None


# ------------------------------------------------------------------------------------------------ the trust boundary


@pytest.mark.parametrize("name", ["../escape", "/abs/path", "..", ".hidden", "a/b", "x" * 101])
def test_a_sweep_name_cannot_leave_the_storage(tmp_path, name):
    data = yaml.safe_load((sweeps_dir() / "smoke.yaml").read_text())
    data["name"] = name
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="must be one folder name"):
        load_sweep(str(path))
    with pytest.raises(ValueError):
        sweep_root(str(tmp_path), name)


@pytest.mark.parametrize("key", ["../x", "/etc/passwd", "a/../../b", "a//b", "a/./b", "a\\b"])
def test_storage_keys_stay_inside(tmp_path, key):
    with pytest.raises(ValueError, match="not a relative path"):
        check_key(key)
    with pytest.raises(ValueError, match="not a relative path"):
        Storage(tmp_path).path(key)


def test_files_are_readable_per_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        import importlib

        import itsel_ray.artifacts as artifacts

        importlib.reload(artifacts)
        path = artifacts.atomic_write_bytes(tmp_path / "f.json", b"{}")
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
    finally:
        os.umask(old)
        importlib.reload(artifacts)


def test_storage_that_cannot_hold_a_sweep_is_refused(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(StorageError, match="is a file"):
        Storage(afile / "sweep").check_usable()
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:  # a read-only folder; as root (who writes anywhere) a read-only file system instead
        target = ro if not os.access(ro, os.W_OK) else Path("/sys/itsel-ray-storage")
        with pytest.raises(StorageError, match="not writable"):
            Storage(target / "sweep").check_usable()
    finally:
        ro.chmod(0o700)
    with pytest.raises(StorageError, match="MiB free"):
        Storage(tmp_path / "ok").check_usable(min_free_bytes=2**62)


def test_a_full_disk_error_names_the_file(tmp_path, monkeypatch):
    import errno

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match=r"No space left on device: '.*result.json'"):
        atomic_write_bytes(tmp_path / "result.json", b"{}")
    assert list(tmp_path.iterdir()) == []  # no half-written file left behind


# ------------------------------------------------------------------------------------------------ status


def test_status_never_calls_a_dead_driver_live(sweep, tmp_path):
    storage = Storage(tmp_path / "s")
    t = plan_stage(sweep, "tune")[0]
    finish(sweep, storage, t)
    dead = {"host": socket.gethostname(), "pid": 2**22 + 4321, "started": time.time(), "heartbeat": time.time()}
    storage.write_json(lock.LOCK, dead)
    from itsel_ray.runs.progress import ProgressLog

    log = ProgressLog(storage, "tune", "run-1")
    log.write("run", total=4, todo=4)
    log.write("trial", trial=t.key, state="running")
    log.write("tune", counts={"running": 3, "pending": 1})
    text = format_status(sweep, storage)
    assert "driver: none running; counts come from storage only" in text and "is gone" in text
    tune_row = [line for line in text.splitlines() if line.startswith("tune ")][0].split()
    assert tune_row[3] == "0"  # nothing is running without a driver, whatever the last log line said

    storage.write_json(lock.LOCK, {**dead, "pid": os.getpid(), "started": time.time()})
    live = format_status(sweep, storage)
    assert "driver: live" in live and "Tune's counts" in live
    assert [line for line in live.splitlines() if line.startswith("tune ")][0].split()[3] == "3"


def test_status_names_a_damaged_index_and_shows_the_analysis(sweep, tmp_path):
    storage = Storage(tmp_path / "s")
    for t in plan_stage(sweep, "tune"):
        finish(sweep, storage, t)
    _, index = persist_source_prompts(sweep, storage)
    for t in plan_stage(sweep, "transfer"):
        finish(sweep, storage, t, index)
    storage.write_bytes(INDEX, b"not json")
    text = format_status(sweep, storage)
    assert f"note: {storage.path(INDEX)} is damaged; rebuilt from the source runs" in text
    transfer_row = [line for line in text.splitlines() if line.startswith("transfer ")][0].split()
    assert transfer_row[1:3] == ["4", "4"]  # total, done: not "0 done"
    assert analysis_status(storage, driver_live=False) == "not run"
    from itsel_ray.runs.progress import ProgressLog

    log = ProgressLog(storage, "analyze", "a-1")
    log.write("run")
    assert analysis_status(storage, driver_live=False) == "interrupted"
    log.write("end", outcome="error", error="ValueError: boom")
    assert analysis_status(storage, driver_live=False) == "failed: ValueError: boom"


def test_status_on_missing_storage_is_an_error(tmp_path, capsys):
    from itsel_ray.sweep.cli import main

    assert main(["status", "--storage", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "afile").write_text("x")
    assert main(["status", "--storage", str(tmp_path / "afile")]) == 2
    assert "is a file" in capsys.readouterr().err
