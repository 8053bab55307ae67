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
from itsel_ray.runs.sweep_file import sweeps_dir

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local_ray():
    from itsel_ray.sweep.parallel import local_ray as start

    with start(2):
        yield


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
    assert all((root / "results" / p).is_file() for p in results.best_prompt)  # relative to the results folder
    prompts = pd.read_parquet(root / "results" / "prompts.parquet")
    assert all((root / "results" / p).is_file() for p in prompts.path)
    assert pd.read_csv(root / "results" / "results.csv").shape == results.shape

    # each transfer started from its source's best prompt (best over the source's seeds and evaluations)
    index = read_json(root / "source_prompts" / "index.json")
    for row in results[results.stage == "transfer"].itertuples():
        start = load_prompt(root / "results" / row.trial_dir / "prompts" / "step_000000.safetensors")
        np.testing.assert_array_equal(start, load_prompt(root / index[row.source]["path"]))
        src = results[(results.stage == "tune") & (results.task == row.source)]
        assert index[row.source]["score"] == src.score.max()

    # trial folders carry the engine's files and Tune's logs exist per trial
    for row in results.itertuples():
        assert {"config.json", "result.json", "best.safetensors", "state.pt", "train.log"} <= {
            p.name for p in (root / "results" / row.trial_dir).iterdir()}
    assert glob.glob(str(root / "ray_tune" / "transfer-*" / "*" / "stdout"))
    assert glob.glob(str(root / "ray_tune" / "transfer-*" / "*" / "events.out.tfevents.*"))  # TensorBoard
    assert not glob.glob(str(root / "ray_tune" / "*" / "*" / "checkpoint_*"))  # the trial folder is the state

    # every trial says where it ran: the start event and the trial folder's environment.json (with the torch the
    # engine loaded and its threads), named in the results and described in results/environments.json
    fingerprints = set(results.environment)
    assert len(fingerprints) == 1 and "" not in fingerprints and "+" not in next(iter(fingerprints))
    described = read_json(root / "results" / "environments.json")
    assert set(described) == fingerprints and described[results.environment[0]]["trials"] == 8
    env = read_json(root / "results" / results.trial_dir[0] / "environment.json")["environments"][0]
    assert env["torch"]["threads"] == 1 and env["cpu"]["model"] and env["versions"]["torch"]
    starts = [read_json(f) for f in glob.glob(str(root / "events" / "*" / "**" / "*-start.json"), recursive=True)]
    assert len(starts) == 8 and all(e["env"]["cpu"] == env["cpu"] for e in starts)
    # each trial's log (its actor's worker log on the Actors page; Tune's copy in the trial's stdout) opens with a
    # line naming the trial and closes with its outcome
    for row in results.itertuples():
        key = row.trial_dir.removeprefix("../")
        stage_dir = "transfer-*" if row.stage == "transfer" else "tune-*"
        name = (f"{row.source}__" if row.stage == "transfer" else "") + f"{row.task}_seed={row.seed}"
        (stdout,) = glob.glob(str(root / "ray_tune" / stage_dir / name / "stdout"))
        lines = [line for line in Path(stdout).read_text().splitlines() if line.startswith("[itsel-ray] trial ")]
        assert lines[0].startswith(f"[itsel-ray] trial {key} starts (sweep smoke, stage {row.stage}, ")
        assert lines[-1].startswith(f"[itsel-ray] trial {key} done at step ")
    import ray

    logs = Path(ray._private.worker.global_worker.node.get_logs_dir_path())
    worker_lines = [line for f in logs.glob("worker-*.out") for line in f.read_text().splitlines()
                    if line.startswith("[itsel-ray] trial transfer/")]
    transfers = {d.removeprefix("../") for d in results[results.stage == "transfer"].trial_dir}
    assert {line.split()[2] for line in worker_lines} == transfers
    from itsel_ray.runs.progress import latest_run
    from itsel_ray.runs.storage import Storage

    run = latest_run(Storage(root), "transfer")
    assert run.ended["outcome"] == "complete" and run.count("done") == 4 and run.todo == 4
    assert not (root / "driver.lock").exists()  # released

    # the same command again: nothing retrains, and no Tune experiment is even started
    starts = len(glob.glob(str(root / "events" / "*" / "*" / "*-start.json")))
    experiments = len(glob.glob(str(root / "ray_tune" / "*")))
    assert main(["transfer", "--sweep", "smoke", "--storage", str(store), "--quiet"]) == 0
    assert len(glob.glob(str(root / "events" / "*" / "*" / "*-start.json"))) == starts
    assert len(glob.glob(str(root / "ray_tune" / "*"))) == experiments

    # a GPU sweep's results are re-analysed (and its status read) on this machine without GPUs: the analysis needs
    # no trial resources, while running its trials here is refused
    gpu = ["--sweep", "smoke", "--set", "resources.use_gpu=always", "--storage", str(store), "--quiet"]
    report = root / "analysis" / "report.md"
    before = report.stat().st_mtime_ns
    assert main(["analyze", *gpu]) == 0
    assert report.stat().st_mtime_ns > before
    assert main(["status", *gpu]) == 0
    assert main(["tune", *gpu]) == 3


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
