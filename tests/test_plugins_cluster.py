"""A user's own study on a three-node `ray.cluster_utils.Cluster` (a head without CPUs, two 2-CPU workers): a task,
a formatter, a task metric and a selector from a folder outside the package go through `all` (prepare, tune,
transfer, model tables, analysis) to the report, and every worker that ran them imported the copy Ray's runtime
environment shipped, not the user's folder."""

import os
from pathlib import Path

import pandas as pd
import pytest

from tests.own_study import read_trace, write_study

pytestmark = pytest.mark.slow


def test_a_users_task_selector_and_metric_reach_every_node(tmp_path):
    import ray
    from ray.cluster_utils import Cluster

    from itsel_ray.sweep.cli import main

    os.environ["RAY_AUTH_MODE"] = "disabled"
    paths = write_study(tmp_path / "study")
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    for _ in range(2):
        cluster.add_node(num_cpus=2)
    cluster.wait_for_nodes()
    store = tmp_path / "store"
    try:
        code = main(["all", "--sweep", str(paths["sweep"]), "--storage", str(store), "--address", cluster.address,
                     "--quiet"])
    finally:
        ray.shutdown()
        cluster.shutdown()
    assert code == 0

    root = store / "mine"
    results = pd.read_parquet(root / "results" / "results.parquet")
    assert (results.status == "done").all() and len(results) == 5
    mine = results[results.task == "mine_task"]
    assert set(mine.stage) == {"tune", "transfer"} and mine.metric_mine_accuracy.notna().all()
    scores = pd.read_csv(root / "analysis" / "selector_scores.csv")
    assert scores[scores.selector == "MINE"].score.notna().all() and (scores.selector == "MINE").any()
    assert "| MINE |" in (root / "analysis" / "report.md").read_text()

    events = read_trace(paths["trace"])
    workers = [e for e in events if e["pid"] != os.getpid()]
    ran = {e["what"] for e in workers}
    assert {"import", "format", "metric", "selector"} <= ran, ran  # prepare, trials, analysis cells: all in workers
    original = str(paths["plugin"])
    assert all(e["file"] != original and "runtime_resources" in Path(e["file"]).parts for e in workers), \
        {e["file"] for e in workers}
    nodes = {e["node"] for e in workers if e["node"]}
    assert len(nodes) == 2, nodes  # both worker nodes ran the user's code (the head has no CPUs)
