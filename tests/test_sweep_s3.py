"""The whole sweep on object storage, end to end, against a real S3 server (moto on loopback): `all --storage
s3://BUCKET/runs` prepares the data into the store, tunes and transfers with the trials reading a node-local copy
of it; the driver is SIGKILLed mid-transfer, `status` reads the store and says nothing runs, a rerun finishes
without retraining a trial, and analyze writes its report into the store. Nothing written anywhere (the store,
the logs, the console, Ray's session folder) holds the secret key."""

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest
import yaml

from itsel_ray.runs.storage import Storage, sweep_root
from itsel_ray.runs.sweep_file import sweeps_dir
from tests.test_sweep_faults import _alive_after, _is_reaper, kill_session

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def s3_driver(args, log: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "itsel_ray.sweep", *args, "--no-dashboard", "--num-cpus", "2"],
                            cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def attempts(store: Storage, stage: str) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for key in sorted(store.list_tree(f"events/{stage}")):
        e = json.loads(store.read_bytes(key))
        out.setdefault(e["trial"], []).append(e)
    return {k: sorted(v, key=lambda e: e["time"]) for k, v in out.items()}


def steps(store: Storage, key: str) -> int:
    data = store.read_json(f"{key}/result.json")
    return int((data or {}).get("steps") or 0)


def test_all_on_s3_killed_mid_transfer_then_rerun(s3_server, tmp_path):
    bucket = s3_server.make_bucket("itsel-e2e")
    data = yaml.safe_load((sweeps_dir() / "smoke.yaml").read_text())
    data["name"] = "s3kill"
    data["stages"]["transfer"] = {"optim": {"lr": 0.3}, "train": {"max_steps": 80, "eval_every": 10}}
    data["testing"] = {"report_delay_s": 2.0}  # 8 evaluations of 2 s: wide enough to catch a trial mid-way through S3
    sweep = tmp_path / "s3kill.yaml"
    sweep.write_text(yaml.safe_dump(data))
    base = f"s3://{bucket}/runs"
    store = sweep_root(base, "s3kill")
    ray_tmp = Path(tempfile.mkdtemp(prefix="r", dir="/tmp"))  # short: Ray's socket paths must fit
    env = {**os.environ, **s3_server.env(), "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0",
           "ITSEL_RAY_OBJECT_STORE_MB": "256", "RAY_TMPDIR": str(ray_tmp),
           "ITSEL_RAY_NODE_CACHE": str(tmp_path / "node")}
    args = ["all", "--sweep", str(sweep), "--storage", base]
    try:
        first = s3_driver(args, tmp_path / "first.log", env)
        try:
            deadline = time.time() + 600
            while time.time() < deadline and first.poll() is None:
                ev = attempts(store, "transfer")
                ended = {k for k, es in ev.items() if es[-1]["kind"] == "end"}
                mid = [k for k, es in ev.items() if es[-1]["kind"] == "start" and 10 <= steps(store, k) <= 40]
                if ended and mid:
                    break
                time.sleep(0.5)
            assert first.poll() is None, f"driver ended before the kill:\n{(tmp_path / 'first.log').read_text()[-3000:]}"
            started = [p for p in psutil.Process(first.pid).children(recursive=True) if not _is_reaper(p)]
            os.kill(first.pid, signal.SIGKILL)
            first.wait(timeout=30)
            assert not _alive_after(started, 30)
            status = subprocess.run([sys.executable, "-m", "itsel_ray.sweep", "status", "--sweep", str(sweep),
                                     "--storage", base], capture_output=True, text=True, timeout=120, env=env)
            assert "driver: none running" in status.stdout and "interrupted" in status.stdout, status
            row = [line for line in status.stdout.splitlines() if line.startswith("transfer ")][0].split()
            assert row[3] == "0" and int(row[5]) >= 1, status.stdout  # running 0, interrupted >= 1
        finally:
            kill_session(first)
        before = attempts(store, "transfer")
        finished = {k for k, es in before.items() if es[-1]["kind"] == "end"}
        interrupted = {k for k, es in before.items() if es[-1]["kind"] == "start"}
        assert finished and interrupted and len(finished) < 4

        second = s3_driver(args, tmp_path / "second.log", env)
        try:
            assert second.wait(timeout=600) == 0, (tmp_path / "second.log").read_text()[-3000:]
        finally:
            kill_session(second)
        # zero retrained trials: every tune trial and every finished transfer trial started exactly once
        for stage in ("tune", "transfer"):
            for key, es in attempts(store, stage).items():
                starts = [e for e in es if e["kind"] == "start"]
                if stage == "tune" or key in finished:
                    assert len(starts) == 1, (key, es)
        resumed = [e for key in interrupted for e in attempts(store, "transfer")[key][len(before[key]):]
                   if e["kind"] == "start"]
        assert resumed and all((e["resumed_from_step"] or 0) >= 10 for e in resumed), resumed
        for key in interrupted:  # resumed, not restarted: one evaluation per step in the history
            history = store.read_json(f"{key}/result.json")["history"]
            assert [h["step"] for h in history] == list(range(10, 90, 10))

        # results, report, prepared data, logs: all in the store
        local = tmp_path / "results.parquet"
        local.write_bytes(store.read_bytes("results/results.parquet"))
        table = pd.read_parquet(local)
        assert len(table) == 8 and (table.status == "done").all() and table.score.map(math.isfinite).all()
        assert store.exists("analysis/report.md") and store.exists("analysis/analysis_config.json")
        prepared = store.read_json("prepared/report.json")
        assert {r["task"] for r in prepared} == {"syn_has0", "syn_has1", "syn_and01", "syn_cnt2"}
        assert all(r["cache"].startswith(store.path("prepared") + "/") for r in prepared)
        logs = [store.read_bytes(k).decode() for k in store.list_tree("tune") if k.endswith("train.log")]
        assert logs and all("data: prepared" in log for log in logs), logs[:1]
        assert [k for k in store.list_tree("logs") if k.startswith("logs/all-")]
        second_log = (tmp_path / "second.log").read_text()
        assert "[prepare] 4 task(s) ready in s3://" in second_log and "4 already up to date" in second_log
        assert "report: s3://" in second_log

        status = subprocess.run([sys.executable, "-m", "itsel_ray.sweep", "status", "--storage", base],
                                capture_output=True, text=True, timeout=120, env=env).stdout
        assert "sweep s3kill at s3://" in status and "analyze: done: s3://" in status, status

        # the secret never reaches the store, the logs, the console or Ray's session files
        secret = s3_server.secret.encode()
        leaks = [k for k in store.list_tree("") if secret in (store.read_bytes(k) or b"")]
        for folder in (tmp_path, ray_tmp):
            leaks += [str(p) for p in folder.rglob("*") if p.is_file() and not p.is_symlink()
                      and secret in _read(p)]
        assert not leaks, leaks
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""
