"""The sweep's metrics on the node's Prometheus endpoint, end to end: scraped during a smoke sweep, they agree with
`itsel-ray status` (trials per stage and state), and the running trials carry their step and score."""

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from itsel_ray.runs.sweep_file import sweeps_dir
from itsel_ray.sweep.sweep_metrics import completions_per_minute

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = re.compile(r"^ray_(itsel_ray_\w+)\{([^}]*)\} (\S+)$")


def scrape(url: str) -> list[tuple[str, dict, float]]:
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    out = []
    for line in text.splitlines():
        m = SAMPLE.match(line)
        if m:
            out.append((m.group(1), dict(re.findall(r'(\w+)="([^"]*)"', m.group(2))), float(m.group(3))))
    return out


def trials_by_state(samples, sweep: str, stage: str) -> dict[str, int]:
    return {labels["state"]: int(value) for name, labels, value in samples
            if name == "itsel_ray_trials" and labels.get("sweep") == sweep and labels.get("stage") == stage}


def status_rows(sweep: Path, store: Path) -> dict[str, list[str]]:
    out = subprocess.run([sys.executable, "-m", "itsel_ray.sweep", "status", "--sweep", str(sweep), "--storage",
                          str(store)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    return {line.split()[0]: line.split() for line in out.stdout.splitlines() if line.split()[:1] in (["tune"],
                                                                                                 ["transfer"])}


def test_the_rate_is_over_the_recent_window_or_the_run_so_far():
    assert completions_per_minute([10.0, 20.0, 30.0], now=30.0, started=0.0) == pytest.approx(6.0)  # 3 in 30 s
    old = [0.0] * 10 + [500.0, 550.0, 590.0]  # only the last 300 s count
    assert completions_per_minute(old, now=600.0, started=0.0) == pytest.approx(3 * 60 / 300)


def test_a_finished_stage_stays_on_the_endpoint_while_the_next_runs(monkeypatch):
    from itsel_ray.sweep import sweep_metrics

    class Recorder:
        def __init__(self):
            self.values = {}

        def set(self, value, tags):
            self.values[tuple(sorted(tags.items()))] = value

    gauges = {name: Recorder() for name in ("trials", "eta", "rate", "step", "score", "running")}
    monkeypatch.setattr(sweep_metrics, "_GAUGES", gauges)
    monkeypatch.setattr(sweep_metrics, "_STAGES", {})
    done = {"done": 4, "running": 0, "retrying": 0, "failed": 0, "waiting": 0}
    sweep_metrics.SweepMetrics("s", "tune").counts(done, 0.0, [1.0], now=2.0, started=0.0)
    gauges["trials"].values.clear()  # as after an export
    sweep_metrics.SweepMetrics("s", "transfer").counts({**done, "done": 1, "running": 2, "waiting": 1}, 30.0, [],
                                                       now=3.0, started=2.0)
    trials = {(dict(k)["stage"], dict(k)["state"]): v for k, v in gauges["trials"].values.items()}
    assert trials[("tune", "done")] == 4 and trials[("transfer", "running")] == 2 and len(trials) == 10
    assert gauges["eta"].values[(("stage", "transfer"), ("sweep", "s"))] == 30.0


def test_the_grafana_dashboard_plots_the_metrics_the_sweep_exports():
    import inspect
    import json

    from itsel_ray.sweep import sweep_metrics

    dashboard = json.loads((ROOT / "docs" / "grafana_sweep.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {m for e in exprs for m in re.findall(r"ray_(itsel_ray_\w+)", e)}
    assert used <= set(sweep_metrics.METRICS) and len(used) >= 5
    source = inspect.getsource(sweep_metrics._gauges)
    assert all(f'Gauge("{name}"' in source for name in sweep_metrics.METRICS)


@pytest.mark.slow
def test_the_metrics_endpoint_agrees_with_status_during_a_sweep(tmp_path):
    data = yaml.safe_load((sweeps_dir() / "smoke.yaml").read_text())
    data["name"] = "measured"
    data["stages"]["transfer"] = {"optim": {"lr": 0.3}, "train": {"max_steps": 300, "eval_every": 10}}
    data["testing"] = {"report_delay_s": 1.0}  # 30 s per transfer trial: two run while the test looks
    sweep = tmp_path / "measured.yaml"
    sweep.write_text(yaml.safe_dump(data))
    store = tmp_path / "store"
    log = tmp_path / "driver.log"
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "ITSEL_RAY_OBJECT_STORE_MB": "256",
           "RAY_USAGE_STATS_ENABLED": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "itsel_ray.sweep", "transfer", "--sweep", str(sweep), "--set",
                             "engine=fake", "--storage", str(store), "--no-dashboard", "--num-cpus", "2"],
                            cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.time() + 300
        url = None
        while time.time() < deadline and proc.poll() is None:
            found = re.findall(r"^sweep metrics \(Prometheus\): (\S+)$", log.read_text(), re.M)
            url = url or (found[0] if found else None)
            if url and "[transfer] 0/4 done; running the rest" in log.read_text():
                break
            time.sleep(0.5)
        assert url and proc.poll() is None, log.read_text()[-3000:]

        agreed = None
        while time.time() < deadline and proc.poll() is None and agreed is None:
            samples, rows = scrape(url), status_rows(sweep, store)
            tune, transfer = trials_by_state(samples, "measured", "tune"), trials_by_state(samples, "measured",
                                                                                          "transfer")
            row = rows.get("transfer")
            if row and transfer and transfer.get("running", 0) > 0 and (
                    transfer["done"], transfer["running"], transfer["failed"]) == (int(row[2]), int(row[3]),
                                                                                  int(row[6])):
                agreed = samples, tune, transfer, rows
            else:
                time.sleep(2)
        assert agreed, f"metrics never agreed with status:\n{log.read_text()[-3000:]}"
        samples, tune, transfer, rows = agreed
        # the finished stage: every trial done, as status says; the running one adds up to its total
        assert tune == {"done": 4, "running": 0, "retrying": 0, "failed": 0, "waiting": 0}
        assert int(rows["tune"][2]) == 4
        assert sum(transfer.values()) == 4 == int(rows["transfer"][1])
        running = {labels["trial"] for name, labels, value in samples
                   if name == "itsel_ray_trial_running" and labels["stage"] == "transfer" and value == 1}
        assert len(running) == transfer["running"] and all(k.startswith("transfer/") for k in running)
        steps = {labels["trial"]: value for name, labels, value in samples
                 if name == "itsel_ray_trial_step" and labels["stage"] == "transfer"}
        scores = {labels["trial"] for name, labels, value in samples if name == "itsel_ray_trial_score"}
        assert running <= set(steps) and running <= scores and all(steps[k] >= 10 for k in running)
        assert any(name == "itsel_ray_completions_per_minute" for name, _, _ in samples)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=120)
