"""Faults: SIGKILL the driver mid-transfer and rerun (nothing finished reruns, interrupted trials resume, the table is
complete), and a GPU sweep on a CPU-only instance fails within seconds. Each driver runs in its own session, which
is killed whole afterwards, so no raylet or GCS outlives a test."""

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
    data["stages"]["transfer"] = {"optim": {"lr": 0.3}, "train": {"max_steps": 40, "eval_every": 10}}
    data["testing"] = {"report_delay_s": 0.7}
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
            mid = [k for k, es in ev.items() if es[-1]["kind"] == "start" and _steps(root / k) >= 10]
            if ended and mid:
                break
            time.sleep(0.2)
        assert first.poll() is None, f"driver ended before the kill:\n{(tmp_path / 'first.log').read_text()[-3000:]}"
        os.kill(first.pid, signal.SIGKILL)  # the driver only; Ray's own processes die with it or below
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
        assert [h["step"] for h in history] == [10, 20, 30, 40]


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
