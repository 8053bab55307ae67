"""Faults, end to end: SIGKILL of the driver alone mid-transfer (no Ray process outlives it, `status` says at once
that nothing runs, a rerun finishes without retraining), a second driver on the same storage (refused, naming the
first), damaged files and planted pickles between runs (repaired or ignored, nothing retrained, nothing unpickled),
and a GPU sweep on a CPU-only instance (fails within seconds). Each driver runs in its own session, which is killed
whole afterwards, so no raylet or GCS outlives a test."""

import glob
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest
import yaml

from itsel_ray.runs.sweep_file import sweeps_dir

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def driver(args: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "ITSEL_RAY_OBJECT_STORE_MB": "256",
           "RAY_USAGE_STATS_ENABLED": "0"}
    return subprocess.Popen([sys.executable, "-m", "itsel_ray.sweep", *args, "--no-dashboard", "--num-cpus", "2",
                             "--quiet"], cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def session_processes(sid: int) -> list[psutil.Process]:
    out = []
    for p in psutil.process_iter():
        try:
            if os.getsid(p.pid) == sid and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except (ProcessLookupError, psutil.Error, OSError):
            continue
    return out


def kill_session(proc: subprocess.Popen) -> None:
    """SIGKILL everything the driver started (its session), then check that nothing survived."""
    sid = proc.pid
    try:
        os.killpg(sid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)
    deadline = time.time() + 20
    while session_processes(sid) and time.time() < deadline:
        time.sleep(0.5)
    assert not session_processes(sid), "Ray processes outlived the driver's session"


def events(root: Path) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for f in sorted(glob.glob(str(root / "events" / "transfer" / "*" / "*.json"))):
        e = json.loads(Path(f).read_text())
        out.setdefault(e["trial"], []).append(e)
    return out


def test_sigkill_mid_transfer_then_rerun(tmp_path):
    data = yaml.safe_load((sweeps_dir() / "smoke.yaml").read_text())
    data["name"] = "killed"
    # 8 evaluations of 1 s per trial: a trial caught at step 10-40 is still running seconds later, at the kill
    data["stages"]["transfer"] = {"optim": {"lr": 0.3}, "train": {"max_steps": 80, "eval_every": 10}}
    data["testing"] = {"report_delay_s": 1.0}
    sweep = tmp_path / "killed.yaml"
    sweep.write_text(yaml.safe_dump(data))
    store, root = tmp_path / "store", tmp_path / "store" / "killed"
    args = ["transfer", "--sweep", str(sweep), "--storage", str(store)]

    first = driver(args, tmp_path / "first.log")
    try:
        deadline = time.time() + 300
        while time.time() < deadline and first.poll() is None:
            ev = events(root)
            ended = {k for k, es in ev.items() if es[-1]["kind"] == "end"}
            mid = [k for k, es in ev.items() if es[-1]["kind"] == "start" and 10 <= _steps(root / k) <= 40]
            if ended and mid:
                break
            time.sleep(0.2)
        assert first.poll() is None, f"driver ended before the kill:\n{(tmp_path / 'first.log').read_text()[-3000:]}"
        started = [p for p in psutil.Process(first.pid).children(recursive=True) if not _is_reaper(p)]
        os.kill(first.pid, signal.SIGKILL)  # the driver only: nothing of its Ray instance may outlive it
        first.wait(timeout=30)
        survivors = _alive_after(started, 30)
        assert not survivors, f"outlived the driver: {[(p.pid, p.name()) for p in survivors]}"
        status = subprocess.run([sys.executable, "-m", "itsel_ray.sweep", "status", "--sweep", str(sweep),
                                 "--storage", str(store)], capture_output=True, text=True, timeout=60)
        assert "driver: none running" in status.stdout and "interrupted" in status.stdout, status.stdout
        row = [line for line in status.stdout.splitlines() if line.startswith("transfer ")][0].split()
        assert row[3] == "0" and int(row[5]) >= 1, status.stdout  # running 0, interrupted >= 1
    finally:
        kill_session(first)
    before = events(root)
    finished = {k for k, es in before.items() if es[-1]["kind"] == "end"}
    interrupted = {k for k, es in before.items() if es[-1]["kind"] == "start"}
    assert finished and interrupted and len(finished) < 4

    second = driver(args, tmp_path / "second.log")
    try:
        assert second.wait(timeout=400) == 0, (tmp_path / "second.log").read_text()[-3000:]
    finally:
        kill_session(second)
    after = events(root)
    for key in finished:  # a finished trial never trains again
        assert [e["kind"] for e in after[key] if e["kind"] == "start"] == ["start"], key
        assert len(after[key]) == len(before[key]) or after[key][-1]["kind"] == "skip"
    resumed = [e for key in interrupted for e in after[key][len(before[key]):] if e["kind"] == "start"]
    assert resumed and all((e["resumed_from_step"] or 0) >= 10 for e in resumed), resumed
    table = pd.read_parquet(root / "results" / "results.parquet")
    assert len(table) == 8 and (table.status == "done").all() and table.score.map(math.isfinite).all()
    for key in interrupted:  # resumed, not restarted: one evaluation per step in the history
        history = json.loads((root / key / "result.json").read_text())["history"]
        assert [h["step"] for h in history] == list(range(10, 90, 10))


def _is_reaper(p: psutil.Process) -> bool:
    try:
        return "itsel_ray.sweep.reaper" in " ".join(p.cmdline())
    except psutil.Error:
        return False


def _alive_after(procs: list[psutil.Process], timeout_s: float) -> list[psutil.Process]:
    _, alive = psutil.wait_procs(procs, timeout=timeout_s)
    return [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]


def _steps(folder: Path) -> int:
    try:
        return int(json.loads((folder / "result.json").read_text()).get("steps") or 0)
    except (OSError, ValueError):
        return 0


def test_gpu_sweep_on_cpu_only_ray_fails_fast(tmp_path):
    started = time.time()
    proc = driver(["tune", "--sweep", "paper", "--storage", str(tmp_path / "store")], tmp_path / "gpu.log")
    try:
        code = proc.wait(timeout=120)
    finally:
        kill_session(proc)
    elapsed = time.time() - started
    log = (tmp_path / "gpu.log").read_text()
    assert code == 3, log[-3000:]
    assert "asks for GPUs" in log and "0 GPU" in log
    assert elapsed < 60, f"took {elapsed:.0f}s"
    assert not list((tmp_path / "store").glob("paper/ray_tune/*"))  # no Tuner was started


def fake_smoke(tmp_path: Path, name: str, **sections) -> Path:
    data = yaml.safe_load((sweeps_dir() / "smoke.yaml").read_text())
    data.update(name=name, engine="fake")
    for key, value in sections.items():
        data[key] = value
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_second_driver_on_the_same_storage_is_refused(tmp_path):
    # long enough (12 reports of 1 s per trial, 2 trials at a time) that a slow machine sees it running
    long = {"train": {"max_steps": 60, "eval_every": 5, "save_every": 5}}
    sweep = fake_smoke(tmp_path, "twice", testing={"report_delay_s": 1.0},
                       stages={"source": {"optim": {"lr": 0.3}, **long}, "target": {"optim": {"lr": 0.3}, **long}})
    store = tmp_path / "store"
    args = ["tune", "--sweep", str(sweep), "--storage", str(store)]
    first = driver(args, tmp_path / "first.log")
    try:
        deadline = time.time() + 120
        while not (store / "twice" / "driver.lock").exists() and time.time() < deadline:
            time.sleep(0.1)
        second = driver(args, tmp_path / "second.log")
        assert second.wait(timeout=120) == 3
        log = (tmp_path / "second.log").read_text()
        assert f"another driver is running this sweep at {store / 'twice'}: pid {first.pid}" in log
        # while it runs, `status` shows the live driver and Tune's own count of running trials
        deadline = time.time() + 120
        while time.time() < deadline:
            status = subprocess.run([sys.executable, "-m", "itsel_ray.sweep", "status", "--sweep", str(sweep),
                                     "--storage", str(store)], capture_output=True, text=True, timeout=60).stdout
            row = [line for line in status.splitlines() if line.startswith("tune ")][0].split()
            if int(row[3]) > 0:
                break
            assert first.poll() is None, "the stage ended before `status` saw a running trial:\n" + status
            time.sleep(1)
        assert "driver: live" in status and f"pid {first.pid}" in status and "Tune's counts" in status, status
        assert 1 <= int(row[3]) <= 2, status  # running: at most the 2 CPUs' worth, from Tune, not from storage
        assert first.wait(timeout=300) == 0, (tmp_path / "first.log").read_text()[-3000:]
    finally:
        kill_session(first)
    starts = glob.glob(str(store / "twice" / "events" / "tune" / "*" / "*-start.json"))
    assert len(starts) == 4  # each trial trained once


PLANTED = b"cos\nsystem\n(S'touch {sentinel}'\ntR."  # a pickle that runs a shell command when loaded


def test_damaged_files_are_repaired_and_planted_pickles_never_load(tmp_path):
    sweep = fake_smoke(tmp_path, "damaged", stages={"transfer": {"train": {"max_steps": 40, "eval_every": 10}}})
    store, root = tmp_path / "store", tmp_path / "store" / "damaged"
    args = ["transfer", "--no-analyze", "--sweep", str(sweep), "--storage", str(store)]
    first = driver(args, tmp_path / "first.log")
    try:
        assert first.wait(timeout=300) == 0, (tmp_path / "first.log").read_text()[-3000:]
    finally:
        kill_session(first)
    index = json.loads((root / "source_prompts" / "index.json").read_text())
    chosen = index["syn_has0"]["key"]
    damage = {
        f"{chosen}/result.json": "truncate",  # a finished source run's record: rebuilt from its state
        f"{chosen}/best.safetensors": "truncate",  # its best prompt: restored from the stored copy
        "source_prompts/index.json": "truncate",  # rebuilt from the source runs
        "transfer/syn_has0__syn_and01/seed=28/sweep_trial.json": "truncate",  # rebuilt from config + initial prompt
        "transfer/syn_has1__syn_cnt2/seed=28/config.json": "truncate",  # not needed by a finished trial
    }
    for key in damage:
        f = root / key
        f.write_bytes(f.read_bytes()[: max(1, f.stat().st_size // 3)])
    # an unfinished trial whose newest state is damaged (resumes from the previous one) and one whose every state is
    # damaged (starts over, the unreadable folder set aside)
    for key, both in (("transfer/syn_has1__syn_and01/seed=28", False), ("transfer/syn_has0__syn_cnt2/seed=28", True)):
        record = json.loads((root / key / "result.json").read_text())
        record.update(status="running", steps=30, history=record["history"][:3])
        (root / key / "result.json").write_text(json.dumps(record))
        (root / key / "state.pt").write_bytes(b"garbage")
        if both:
            (root / key / "state.prev.pt").write_bytes(b"garbage")
    sentinel = tmp_path / "UNPICKLED"
    for folder in [p for p in (root / "ray_tune").glob("*") if p.is_dir()]:
        for name in ("tuner.pkl", "trainable.pkl", "search_gen_state.pkl"):
            (folder / name).write_bytes(PLANTED.replace(b"{sentinel}", str(sentinel).encode()))
    before = events(root)

    second = driver(args, tmp_path / "second.log")
    try:
        assert second.wait(timeout=300) == 0, (tmp_path / "second.log").read_text()[-3000:]
    finally:
        kill_session(second)
    assert not sentinel.exists(), "a pickle planted on storage was loaded"
    table = pd.read_parquet(root / "results" / "results.parquet")
    assert (table.status == "done").all() and table.score.map(math.isfinite).all()
    after = events(root)
    retrained = {k for k in after if [e["kind"] for e in after[k][len(before.get(k, [])):]].count("start")}
    assert retrained == {"transfer/syn_has1__syn_and01/seed=28", "transfer/syn_has0__syn_cnt2/seed=28"}, retrained
    resumed = [e for e in after["transfer/syn_has1__syn_and01/seed=28"] if e["kind"] == "start"][-1]
    assert resumed["resumed_from_step"] == 30
    history = json.loads((root / "transfer/syn_has1__syn_and01/seed=28/result.json").read_text())["history"]
    assert [h["step"] for h in history] == [10, 20, 30, 40]  # resumed from the state before the damaged one
    restarted = [e for e in after["transfer/syn_has0__syn_cnt2/seed=28"] if e["kind"] == "restart"]
    assert restarted and "no readable resume state" in restarted[0]["reason"]
    assert (root / restarted[0]["set_aside"] / "SET_ASIDE").is_file()
    for key in damage:  # every damaged file is readable again (or, for a finished trial's config, left alone)
        if key.endswith(".json") and not key.endswith("config.json"):
            json.loads((root / key).read_text())
    from itsel_ray.artifacts import load_prompt

    assert load_prompt(root / chosen / "best.safetensors").ndim == 2
