"""The prepare stage end to end on a local Ray: every task is checked and tokenised once before any trial and the
trials read that cache; a task whose data does not match its declaration stops the sweep before any trial starts,
naming the task, split and column."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from itsel_ray.runs.sweep_file import sweeps_dir

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "RAY_AUTH_MODE": "disabled", "ITSEL_RAY_OBJECT_STORE_MB": "256"}


def run(args, tmp_path):
    return subprocess.run([sys.executable, "-m", "itsel_ray.sweep", *args, "--no-dashboard", "--num-cpus", "2"],
                          cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)


def test_tune_prepares_first_and_trials_memory_map_the_cache(tmp_path):
    store = tmp_path / "store"
    done = run(["tune", "--sweep", "smoke", "--storage", str(store)], tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "[prepare] 4 task(s) ready in" in done.stdout
    root = store / "smoke"
    report = json.loads((root / "prepared" / "report.json").read_text())
    assert {r["task"] for r in report} == {"syn_has0", "syn_has1", "syn_and01", "syn_cnt2"}
    for folder in [p for p in (root / "tune").glob("*/seed=*")]:
        assert f"data: prepared {root / 'prepared'}" in (folder / "train.log").read_text(), folder
    again = run(["prepare", "--sweep", "smoke", "--storage", str(store)], tmp_path)  # cheap when done
    assert again.returncode == 0 and "(4 already up to date" in again.stdout, again.stdout + again.stderr


def test_a_wrong_schema_stops_the_sweep_before_any_trial(tmp_path):
    rows = json.loads((ROOT / "tests" / "fixtures" / "tasks" / "cr.json").read_text())
    data = tmp_path / "data" / "cr"
    data.mkdir(parents=True)
    broken = [{"review": r["text"], "label": r["label"]} for r in rows["train"]]  # the text column renamed
    (data / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in broken))
    (data / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows["validation"]))
    sweep = yaml.safe_load((sweeps_dir() / "smoke.yaml").read_text())
    sweep.update(name="broken")
    sweep["grid"]["targets"] = ["cr"]
    sweep["trial"]["data"] = {"data_dir": str(tmp_path / "data")}
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(sweep))
    store = tmp_path / "store"
    done = run(["tune", "--sweep", str(path), "--storage", str(store)], tmp_path)
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    assert "task cr" in done.stderr and "train" in done.stderr and "'text'" in done.stderr, done.stderr
    assert not (store / "broken" / "tune").exists()  # no trial started
    assert not list((store / "broken").glob("ray_tune/*"))
