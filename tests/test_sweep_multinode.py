"""A node lost mid-stage on a three-node `ray.cluster_utils.Cluster` (a head without CPUs, two 2-CPU workers), while
every slot runs a trial: nothing is lost, no finished trial reruns, the trials that ran on the lost node resume from
their state, and they restart before any trial that had not started yet once Tune has seen the loss."""

import glob
import json
import os
import threading
import time
from pathlib import Path

import pytest
import yaml

from itsel_ray.runs.progress import read_lines
from itsel_ray.runs.storage import Storage
from itsel_ray.runs.sweep_file import sweeps_dir

pytestmark = pytest.mark.slow
SLOTS = 4  # two workers of 2 CPUs, 1 CPU per trial


def events(root: Path) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for f in sorted(glob.glob(str(root / "events" / "transfer" / "*" / "*.json"))):
        e = json.loads(Path(f).read_text())
        out.setdefault(e["trial"], []).append(e)
    return {k: sorted(v, key=lambda e: e["time"]) for k, v in out.items()}


def test_a_lost_node_loses_nothing_and_its_trials_resume_first(tmp_path):
    import ray
    from ray.cluster_utils import Cluster

    from itsel_ray.sweep.cli import main

    os.environ["RAY_AUTH_MODE"] = "disabled"
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    workers = [cluster.add_node(num_cpus=2) for _ in range(2)]
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        data = yaml.safe_load((sweeps_dir() / "smoke.yaml").read_text())
        data.update(name="lost", engine="fake")
        data["grid"]["target_seeds"] = [28, 52, 112]
        data["stages"]["transfer"] = {"train": {"max_steps": 40, "eval_every": 10}}
        data["testing"] = {"report_delay_s": 1.0}
        sweep = tmp_path / "lost.yaml"
        sweep.write_text(yaml.safe_dump(data))
        store, root = tmp_path / "store", tmp_path / "store" / "lost"
        assert main(["tune", "--sweep", str(sweep), "--storage", str(store), "--quiet"]) == 0
        planned = {f"transfer/{s}__{t}/seed={r}" for s in data["grid"]["sources"] for t in data["grid"]["targets"]
                   for r in data["grid"]["target_seeds"]}
        lost = {}

        def remove_a_node_mid_stage():
            victim = workers[1].node_id
            deadline = time.time() + 120
            while time.time() < deadline:
                ev = events(root)
                there = [k for k, es in ev.items() if es[-1]["kind"] == "start" and es[-1].get("node") == victim
                         and 10 <= _steps(root / k) <= 20]  # mid-training, with state to resume from
                running = sum(es[-1]["kind"] == "start" for es in ev.values())
                if there and running == SLOTS and any(es[-1]["kind"] == "end" for es in ev.values()):
                    lost.update(time=time.time(), trials=there, finished={k for k, es in ev.items()
                                                                         if es[-1]["kind"] == "end"},
                                not_started=planned - set(ev), running=running)
                    cluster.remove_node(workers[1])
                    return
                time.sleep(0.1)

        killer = threading.Thread(target=remove_a_node_mid_stage, daemon=True)
        killer.start()
        assert main(["transfer", "--no-analyze", "--sweep", str(sweep), "--storage", str(store), "--quiet"]) == 0
        killer.join(timeout=5)
    finally:
        ray.shutdown()
        cluster.shutdown()

    assert lost, "the node was never removed (or never with every slot running a trial)"
    assert lost["running"] == SLOTS  # every slot was running a trial when the node went
    after = events(root)
    assert set(after) == planned, sorted(planned - set(after))
    # 0 lost: every trial ended (a trial killed between its last evaluation and its return is skipped on retry)
    assert all(es[-1]["kind"] in ("end", "skip") for es in after.values()), after
    for key in lost["finished"]:  # 0 finished trials rerun
        assert [e["kind"] for e in after[key]].count("start") == 1, key
    restarts = []
    for key in lost["trials"]:  # resumed from the state they had reached, not restarted
        starts = [e for e in after[key] if e["kind"] == "start"]
        assert len(starts) == 2 and starts[1]["resumed_from_step"] >= 10, starts
        assert starts[1]["node"] != workers[1].node_id
        history = json.loads((root / key / "result.json").read_text())["history"]
        assert [h["step"] for h in history] == [10, 20, 30, 40]
        restarts.append(starts[1]["time"])
    # The lost trials went first, not to the back of the queue: once Tune knew of the loss (the progress log's
    # "retrying"), no trial that had not started began before them. A slot freed just before Tune's notice may
    # already have taken the next trial, whose start event lands up to a second later (actor start-up): nothing can
    # be scheduled on a loss not yet seen.
    known = min(e["t"] for e in read_lines(Storage(root), "transfer")
                if e.get("state") == "retrying" and e.get("trial") in lost["trials"])
    first_starts = [after[k][0]["time"] for k in lost["not_started"] if after[k][0]["time"] > known + 1.0]
    if first_starts:
        assert max(restarts) <= min(first_starts) + 0.5, (known, restarts, sorted(first_starts))


def _steps(folder: Path) -> int:
    try:
        return int(json.loads((folder / "result.json").read_text()).get("steps") or 0)
    except (OSError, ValueError):
        return 0
