"""End to end on a local 2-CPU Ray: the smoke sweep's tune -> transfer -> complete tables, rerun skips everything,
and a trial that raises once is retried from its checkpoint."""

import glob
import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from itsel_ray.artifacts import load_prompt, read_json
from itsel_ray.sweep.cli import main
from itsel_ray.sweep.config import sweeps_dir

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local_ray():
    import ray

    os.environ["RAY_AUTH_MODE"] = "disabled"
    ray.init(address="local", num_cpus=2, include_dashboard=False, object_store_memory=256 * 1024**2,
             log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


def events(root: Path, stage: str, name: str) -> list[dict]:
    files = sorted(glob.glob(str(root / "events" / stage / name / "*.json")))
    return [json.loads(Path(f).read_text()) for f in files]


def smoke_variant(tmp_path: Path, name: str, **sections) -> str:
    data = yaml.safe_load((sweeps_dir() / "smoke.yaml").read_text())
    data["name"] = name
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_smoke_sweep_end_to_end(local_ray, tmp_path):
    store = tmp_path / "store"
    assert main(["transfer", "--sweep", "smoke", "--storage", str(store), "--quiet"]) == 0
    root = store / "smoke"
    results = pd.read_parquet(root / "results" / "results.parquet")
    assert len(results) == 8 and set(results.stage) == {"tune", "transfer"}
    assert (results.status == "done").all()
    assert results.score.map(math.isfinite).all()
    assert all(Path(p).is_file() for p in results.best_prompt)
    prompts = pd.read_parquet(root / "results" / "prompts.parquet")
    assert all(Path(p).is_file() for p in prompts.path)
    assert pd.read_csv(root / "results" / "results.csv").shape == results.shape

    # each transfer started from its source's best prompt (best over the source's seeds and evaluations)
    index = read_json(root / "source_prompts" / "index.json")
    for row in results[results.stage == "transfer"].itertuples():
        start = load_prompt(Path(row.trial_dir) / "prompts" / "step_000000.safetensors")
        np.testing.assert_array_equal(start, load_prompt(index[row.source]["path"]))
        src = results[(results.stage == "tune") & (results.task == row.source)]
        assert index[row.source]["score"] == src.score.max()

    # trial folders carry the engine's files and Tune's logs exist per trial
    for row in results.itertuples():
        assert {"config.json", "result.json", "best.safetensors", "state.pt", "train.log"} <= {
            p.name for p in Path(row.trial_dir).iterdir()}
    assert glob.glob(str(root / "ray_tune" / "transfer-*" / "*" / "stdout"))
    progress = read_json(root / "transfer" / "progress.json")
    assert progress["done"] == progress["total"] == 4

    # the same command again: nothing retrains
    starts = len(glob.glob(str(root / "events" / "*" / "*" / "*-start.json")))
    assert main(["transfer", "--sweep", "smoke", "--storage", str(store), "--quiet"]) == 0
    assert len(glob.glob(str(root / "events" / "*" / "*" / "*-start.json"))) == starts


def test_a_failing_trial_is_retried_from_its_checkpoint(local_ray, tmp_path):
    key = "tune/syn_has0/seed=42"
    path = smoke_variant(tmp_path, "retry", testing={"fail_once_at_step": 10, "fail_trials": [key]},
                         grid={"targets": ["syn_and01"]})
    store = tmp_path / "store"
    assert main(["tune", "--sweep", path, "--storage", str(store), "--quiet"]) == 0
    root = store / "retry"
    kinds = [(e["kind"], e.get("resumed_from_step"), e.get("step")) for e in events(root, "tune", "syn_has0_seed=42")]
    assert kinds == [("start", None, None), ("error", None, 10), ("start", 10, None), ("end", None, None)]
    result = read_json(root / key / "result.json")
    assert result["status"] == "done" and result["steps"] == 30
    assert [h["step"] for h in result["history"]] == [10, 20, 30]  # resumed, not restarted
    assert (root / "_testing" / "tune" / "syn_has0_seed=42.failed").is_file()
    other = [e["kind"] for e in events(root, "tune", "syn_has1_seed=42")]
    assert other == ["start", "end"]
