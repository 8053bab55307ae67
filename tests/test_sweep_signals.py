"""Ctrl-C and SIGTERM, end to end: each stops the running stage with the project's one message (no Tune
`Tuner.restore` advice, no FileNotFoundError per trial, no stack dump), exits 130 / 143, leaves no Ray process
behind, and the rerun finishes the sweep and prints the headline table."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from itsel_ray.runs.sweep_file import sweeps_dir

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
NOISE = ("Tuner.restore", "FileNotFoundError", "Traceback", "Stop signal received", "Trials did not complete",
         "*** SIG", "Aborted")


def driver(args: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "ITSEL_RAY_OBJECT_STORE_MB": "256",
           "RAY_USAGE_STATS_ENABLED": "0"}
    return subprocess.Popen([sys.executable, "-m", "itsel_ray.sweep", *args, "--no-dashboard", "--num-cpus", "2"],
                            cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def stop_mid_transfer(proc: subprocess.Popen, root: Path, sig: int, log: Path, seen: int) -> str:
    """Send `sig` once a transfer trial runs in this driver's run (progress lines after the first `seen`); the
    driver's whole output."""
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if any('"state": "running"' in line for line in _progress(root)[seen:]):
            break
        time.sleep(0.2)
    assert proc.poll() is None, f"the driver ended before the signal:\n{log.read_text()[-3000:]}"
    time.sleep(1.0)
    os.kill(proc.pid, sig)
    try:
        proc.wait(timeout=120)
    finally:
        leftovers = _session(proc.pid)
        for p in leftovers:
            p.kill()
    assert not leftovers, f"outlived the driver: {[p.name() for p in leftovers]}"
    return log.read_text()


def _progress(root: Path) -> list[str]:
    path = root / "progress" / "transfer.jsonl"
    return path.read_text().splitlines() if path.is_file() else []


def _session(sid: int) -> list[psutil.Process]:
    deadline, out = time.time() + 20, []
    while time.time() < deadline:
        out = []
        for p in psutil.process_iter():
            try:
                if os.getsid(p.pid) == sid and p.status() != psutil.STATUS_ZOMBIE:
                    out.append(p)
            except (psutil.Error, OSError):
                continue
        if not out:
            return []
        time.sleep(0.5)
    return out


def test_sigterm_and_ctrl_c_stop_cleanly_and_the_rerun_finishes(tmp_path):
    data = yaml.safe_load((sweeps_dir() / "smoke.yaml").read_text())
    data["name"] = "stopped"
    data["stages"]["transfer"] = {"optim": {"lr": 0.3}, "train": {"max_steps": 80, "eval_every": 10}}
    data["testing"] = {"report_delay_s": 1.0}  # 8 s per transfer trial: still running when the signal comes
    sweep = tmp_path / "stopped.yaml"
    sweep.write_text(yaml.safe_dump(data))
    store, root = tmp_path / "store", tmp_path / "store" / "stopped"
    args = ["all", "--sweep", str(sweep), "--set", "engine=fake", "--storage", str(store)]

    for n, (sig, code) in enumerate(((signal.SIGTERM, 143), (signal.SIGINT, 130))):
        log = tmp_path / f"driver{n}.log"
        seen = len(_progress(root))
        proc = driver(args, log)
        out = stop_mid_transfer(proc, root, sig, log, seen)
        assert proc.returncode == code, out[-3000:]
        name = signal.Signals(sig).name
        assert f"error: interrupted by {name}: transfer: " in out and "rerun the same command" in out, out[-3000:]
        assert not [word for word in NOISE if word in out], out[-3000:]
        if n == 1:  # the stopped stage's trials were kept: the rerun goes on with transfer
            assert "[tune] all 4 trials already done" in out.splitlines(), out[-3000:]

    log = tmp_path / "last.log"
    proc = driver(args, log)
    assert proc.wait(timeout=600) == 0, log.read_text()[-3000:]
    lines = log.read_text().splitlines()
    assert any(line.startswith("(3/4) [transfer] 4/4 done") for line in lines), lines
    head = lines.index(next(line for line in lines if line.startswith("[analyze] headline")))
    assert lines[head + 1].split()[:2] == ["selector", "nDCG"] and lines[head + 2].startswith("RANDOM")
