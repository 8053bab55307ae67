"""Faults of the machine, for real: SIGKILL of the private Ray instance's raylet or GCS mid-stage ends the driver
within seconds with "interrupted, rerun" (exit 130), no traceback, nothing of the instance left and a log that
never says "finished"; a disk that fills while prepare writes its cache or while the analysis writes its outputs
names the file and says "disk full" (exit 3), leaving no half-written output. The disks are small tmpfs mounts
(root only: skipped where mounting is not allowed)."""

from __future__ import annotations

import errno
import glob
import json
import os
import signal
import subprocess
import sys
import time
import types
import uuid
from pathlib import Path

import psutil
import pytest
import yaml

from itsel_ray.runs.sweep_file import sweeps_dir

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def driver(args: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "ITSEL_RAY_OBJECT_STORE_MB": "256",
           "RAY_USAGE_STATS_ENABLED": "0"}
    return subprocess.Popen([sys.executable, "-m", "itsel_ray.sweep", *args, "--no-dashboard", "--num-cpus", "2"],
                            cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
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
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


def slow_fake_sweep(tmp_path: Path, name: str) -> Path:
    data = yaml.safe_load((sweeps_dir() / "smoke.yaml").read_text())
    data.update(name=name, engine="fake")
    data["trial"]["train"]["max_steps"] = 80
    data["stages"] = {"source": {"train": {"max_steps": 80}}}
    data["testing"] = {"report_delay_s": 1.0}  # 8 one-second evaluations per trial: trials are mid-run at the kill
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("victim,named", [("raylet", "raylet"), ("gcs_server", "GCS (gcs_server)")])
def test_sigkill_of_the_private_instances_raylet_or_gcs_is_interrupted_rerun(tmp_path, victim, named):
    sweep = slow_fake_sweep(tmp_path, "k")
    store = tmp_path / "store"
    proc = driver(["tune", "--sweep", str(sweep), "--storage", str(store)], tmp_path / "out.log")
    try:
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None:
            if len(glob.glob(str(store / "k" / "events" / "tune" / "*" / "*.json"))) >= 2:
                break
            time.sleep(0.5)
        assert proc.poll() is None, (tmp_path / "out.log").read_text()[-3000:]
        victims = [p for p in psutil.Process(proc.pid).children(recursive=True) if p.name() == victim]
        assert victims, [p.name() for p in psutil.Process(proc.pid).children(recursive=True)]
        killed = time.time()
        for p in victims:
            p.send_signal(signal.SIGKILL)
        code = proc.wait(timeout=60)
        took = time.time() - killed
        out = (tmp_path / "out.log").read_text()
        assert code == 130, out[-3000:]
        assert took < 15, f"{took:.1f}s from the kill to the exit"
        assert f"error: the private Ray instance stopped: its {named} process ended" in out
        assert "rerun the same command to continue" in out and "Traceback" not in out
        deadline = time.time() + 30  # the reaper stops what is left of the instance
        while session_processes(proc.pid) and time.time() < deadline:
            time.sleep(0.5)
        assert not [p.name() for p in session_processes(proc.pid)], "the instance outlived the driver"
        log = next((store / "k" / "logs").glob("tune-*.log")).read_text()
        assert "finished in" not in log and "the private Ray instance stopped" in log
        status = subprocess.run([sys.executable, "-m", "itsel_ray.sweep", "status", "--sweep", str(sweep),
                                 "--storage", str(store)], capture_output=True, text=True, timeout=60, cwd=ROOT)
        assert "driver: none running" in status.stdout, status.stdout + status.stderr
        assert (store / "k" / "results" / "results.csv").is_file()  # the tables were written on the way out
    finally:
        kill_session(proc)


# ------------------------------------------------------------------------------------------------ full disks


def tmpfs(path: Path, size: str) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", f"itsel-{uuid.uuid4().hex[:6]}",
                           str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()[:100]})")
    return path


@pytest.fixture
def small_disk(tmp_path):
    mounts = []

    def make(name: str, size: str) -> Path:
        mounts.append(tmpfs(tmp_path / name, size))
        return mounts[-1]

    yield make
    for m in mounts:
        subprocess.run(["umount", "-l", str(m)], capture_output=True)


def test_a_disk_that_fills_during_prepare_names_the_file(tmp_path, small_disk):
    cache = small_disk("cache", "48k")
    log = tmp_path / "out.log"
    proc = driver(["prepare", "--sweep", "smoke", "--storage", str(tmp_path / "store"), "--set",
                   f"trial.data.cache_dir={cache}"], log)
    try:
        code = proc.wait(timeout=400)
    finally:
        kill_session(proc)
    out = log.read_text()
    assert code == 3, out[-3000:]
    line = [x for x in out.splitlines() if x.startswith("error: ")][-1]
    assert line.startswith(f"error: [prepare] disk full writing {cache}/syn_"), line
    assert "Traceback" not in out and "requested and" not in out
    prepare_log = next((tmp_path / "store" / "smoke" / "logs").glob("prepare-*.log")).read_text()
    assert "finished in" not in prepare_log


def test_a_disk_that_fills_during_the_analysis_names_the_file(tmp_path, small_disk, capsys):
    from itsel_ray.artifacts import write_json
    from itsel_ray.engine import fake as fake_engine
    from itsel_ray.runs.plan import plan_stage
    from itsel_ray.runs.source_prompts import persist_source_prompts
    from itsel_ray.runs.storage import sweep_root
    from itsel_ray.runs.sweep_file import load_sweep
    from itsel_ray.runs.trial_state import MARKER, expected_fingerprint, marker_record
    from itsel_ray.sweep import analyze_stage, driver as driver_module, exit_codes
    from itsel_ray.sweep.console import Console
    from itsel_ray.artifacts import load_prompt

    data = yaml.safe_load((sweeps_dir() / "smoke.yaml").read_text())
    data.update(name="full", engine="fake")
    (tmp_path / "full.yaml").write_text(yaml.safe_dump(data))
    sweep = load_sweep(str(tmp_path / "full.yaml"))
    disk = small_disk("disk", "6m")
    storage = sweep_root(str(disk), "full")
    for t in plan_stage(sweep, "tune"):
        cfg = sweep.trial_config(t.role, task=t.task, seed=t.seed)
        fake_engine.run_trial(cfg, storage.local(t.key))
        write_json(storage.local(t.key) / MARKER, marker_record(t, expected_fingerprint(sweep, t)))
    _, index = persist_source_prompts(sweep, storage)
    for t in plan_stage(sweep, "transfer"):
        cfg = sweep.trial_config(t.role, task=t.task, seed=t.seed, source=t.source)
        fake_engine.run_trial(cfg, storage.local(t.key), init_prompt=load_prompt(storage.local(index[t.source]["path"])))
        write_json(storage.local(t.key) / MARKER, marker_record(t, expected_fingerprint(sweep, t, index)))
    ballast = disk / "ballast"
    with open(ballast, "wb", buffering=0) as f:  # fill it; then leave a few KB: the tables fit, the figures do not
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError as err:
            assert err.errno == errno.ENOSPC
    os.truncate(ballast, os.path.getsize(ballast) - 96 * 1024)

    args = types.SimpleNamespace(stage="analyze", no_analyze=False)
    real = analyze_stage.run_analyze
    analyze_stage.run_analyze = lambda *a, **k: real(*a, **{**k, "use_ray": False})
    console = Console(level="INFO")
    try:
        code = driver_module._run_stages(args, sweep, storage, None, console)
    finally:
        analyze_stage.run_analyze = real
        console.close()
    assert code == exit_codes.CANNOT_RUN
    err = capsys.readouterr().err
    assert f"error: [analyze] disk full writing {disk}/full/" in err and "Traceback" not in err, err
    assert not list(disk.glob("full/.analysis.new-*"))  # nothing half-written left beside the output folder
    progress = [json.loads(x) for x in (storage.local("progress") / "analyze.jsonl").read_text().splitlines()]
    assert progress[-1]["outcome"] == "error" and "No space left" in progress[-1]["error"]
