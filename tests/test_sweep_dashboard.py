"""The sweep on the Ray dashboard, end to end: the Jobs page names the sweep (the job's metadata) and, with one
actor per trial, the Actors page names each trial by its key (read from the dashboard's API and, where Debian's
chromium and playwright are installed, seen in a headless browser, with screenshots kept in $ITSEL_RAY_SCREENSHOTS
or the test's folder); a dashboard agent that could not bind its port is told on the console."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from itsel_ray.runs.sweep_file import sweeps_dir

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def driver(args: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "ITSEL_RAY_OBJECT_STORE_MB": "256",
           "RAY_USAGE_STATS_ENABLED": "0"}
    return subprocess.Popen([sys.executable, "-m", "itsel_ray.sweep", *args, "--num-cpus", "2"], cwd=ROOT, env=env,
                            stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)


def wait_for(predicate, proc: subprocess.Popen, log: Path, timeout: float = 300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        assert proc.poll() is None, f"the driver ended early:\n{log.read_text()[-3000:]}"
        time.sleep(0.5)
    raise AssertionError(f"timed out:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)  # stops the stage as Ctrl-C does
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


def test_the_jobs_page_names_the_sweep(tmp_path):
    data = yaml.safe_load((sweeps_dir() / "smoke.yaml").read_text())
    data["name"] = "onboard"
    data["stages"]["transfer"] = {"optim": {"lr": 0.3}, "train": {"max_steps": 200, "eval_every": 10}}
    data["testing"] = {"report_delay_s": 1.0}  # 20 s per transfer trial: time to look at the dashboard
    sweep = tmp_path / "onboard.yaml"
    sweep.write_text(yaml.safe_dump(data))
    store = tmp_path / "store"
    log = tmp_path / "driver.log"
    proc = driver(["transfer", "--sweep", str(sweep), "--set", "engine=fake", "--set", "execution.reuse_actors=false",
                   "--storage", str(store)], log)
    shots = Path(os.environ.get("ITSEL_RAY_SCREENSHOTS") or tmp_path / "shots")
    try:
        url = wait_for(lambda: (re.findall(r"^Ray dashboard: (\S+)$", log.read_text(), re.M) or [None])[0], proc, log)
        wait_for(lambda: "[transfer] 0/4 done; running the rest" in log.read_text(), proc, log)

        def ours():
            jobs = json.loads(urllib.request.urlopen(f"{url}/api/jobs/", timeout=10).read())
            return [j for j in jobs if (j.get("metadata") or {}).get("job_name") == "itsel-ray onboard transfer"]

        (job,) = wait_for(ours, proc, log, timeout=60)
        assert job["metadata"]["sweep"] == "onboard" and job["metadata"]["command"] == "transfer"
        assert job["metadata"]["storage"] == str(store / "onboard") and job["status"] == "RUNNING"

        def trial_actors():  # one actor per trial (reuse off), each named by its trial's key
            body = json.loads(urllib.request.urlopen(f"{url}/api/v0/actors?detail=1&limit=1000", timeout=30).read())
            names = {a.get("repr_name") for a in body["data"]["result"]["result"] if a.get("state") == "ALIVE"}
            return {n for n in names if n and n.startswith("transfer/")}

        keys = wait_for(trial_actors, proc, log, timeout=120)
        assert keys <= {f"transfer/{s}__{t}/seed=28" for s in ("syn_has0", "syn_has1")
                        for t in ("syn_and01", "syn_cnt2")}

        chromium = shutil.which("chromium")
        playwright = pytest.importorskip("playwright.sync_api") if chromium else None
        if playwright is None:
            pytest.skip("no chromium here: the dashboard's API was checked, the browser view was not")
        shots.mkdir(parents=True, exist_ok=True)
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            try:
                page = browser.new_page(viewport={"width": 1600, "height": 1000})
                page.goto(f"{url}/#/jobs")
                page.get_by_text("itsel-ray onboard transfer").first.wait_for(timeout=60_000)
                page.screenshot(path=str(shots / "jobs.png"), full_page=True)
                page.goto(f"{url}/#/actors")
                page.get_by_text(sorted(keys)[0]).first.wait_for(timeout=60_000)  # a running trial's actor
                page.screenshot(path=str(shots / "actors.png"), full_page=True)
            finally:
                browser.close()
    finally:
        stop(proc)
    assert proc.returncode == 143, log.read_text()[-3000:]


def test_a_dashboard_agent_without_its_port_is_told(tmp_path):
    holder = socket.socket()
    try:
        holder.bind(("127.0.0.1", 52365))  # as a second Ray instance's agent would
        holder.listen()
    except OSError:  # another Ray instance on this machine holds it already: the same situation
        holder.close()
        holder = None
    try:
        log = tmp_path / "driver.log"
        proc = driver(["prepare", "--sweep", "smoke", "--set", "engine=fake", "--storage", str(tmp_path / "s")], log)
        assert proc.wait(timeout=300) == 0, log.read_text()[-3000:]
    finally:
        if holder is not None:
            holder.close()
    out = log.read_text()
    assert "warning: the Ray dashboard's agent could not listen on port 52365 (held by " in out, out
    assert "The sweep runs as usual" in out and "itsel-ray status" in out
