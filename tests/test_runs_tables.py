"""Results tables, source-prompt choice and `status`, built from trial folders without Ray."""

import math
import subprocess
from pathlib import Path
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from itsel_ray.artifacts import TrialFiles, load_prompt, read_json, write_json
from itsel_ray.engine import fake as fake_engine
from itsel_ray.runs.plan import plan_stage
from itsel_ray.runs.source_prompts import MissingSourcesError, persist_source_prompts, source_index
from itsel_ray.runs.status import format_status, stage_status
from itsel_ray.runs.storage import Storage, sweep_root
from itsel_ray.runs.sweep_file import load_sweep, sweeps_dir
from itsel_ray.runs.tables import HEAD, PROMPT_COLUMNS, TAIL, write_tables
from itsel_ray.runs.trial_state import MARKER, expected_fingerprint, read_stage


@pytest.fixture
def sweep(tmp_path):
    data = yaml.safe_load((sweeps_dir() / "smoke.yaml").read_text())
    data.update(name="tables", engine="fake")
    data["grid"]["source_seeds"] = [42, 7]  # sweep order, not numeric order, breaks ties
    path = tmp_path / "tables.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_sweep(str(path))


def run_fake(sweep, storage, trial, *, index=None, status="done", score=None):
    """A finished trial folder as the sweep's trainable leaves it (fake engine + fingerprint marker)."""
    cfg = sweep.trial_config(trial.role, task=trial.task, seed=trial.seed, source=trial.source or None)
    work = storage.local(trial.key)
    fake_engine.run_trial(cfg, work)
    write_json(work / MARKER, {"fingerprint": expected_fingerprint(sweep, trial, index)})
    record = read_json(work / "result.json")
    if score is not None:
        record["best_score"] = score
    if status != "done":
        record["status"] = status
    write_json(work / "result.json", record)


def run_tune_stage(sweep, storage, scores=None):
    for t in plan_stage(sweep, "tune"):
        run_fake(sweep, storage, t, score=(scores or {}).get(t.key))


def test_every_planned_trial_is_a_row_and_missing_is_never_zero(sweep, tmp_path):
    storage = Storage(tmp_path / "store")
    tune = plan_stage(sweep, "tune")
    run_fake(sweep, storage, tune[0])
    run_fake(sweep, storage, tune[1], status="failed")
    run_fake(sweep, storage, tune[2], status="running")
    results, prompts = write_tables(sweep, storage)
    assert len(results) == len(tune) + len(plan_stage(sweep, "transfer"))
    assert list(results.columns[:len(HEAD)]) == HEAD and list(results.columns[-len(TAIL):]) == TAIL
    assert [c for c in results.columns if c not in HEAD + TAIL] == ["metric_accuracy"]
    by_key = {(r.stage, r.task, r.source, r.seed): r for r in results.itertuples()}
    first = by_key[("tune", tune[0].task, "", tune[0].seed)]
    assert first.status == "done" and math.isfinite(first.score) and first.best_prompt.endswith("best.safetensors")
    assert first.best_prompt == f"../{tune[0].key}/best.safetensors"  # relative to the results folder
    assert by_key[("tune", tune[1].task, "", tune[1].seed)].status == "failed"
    assert by_key[("tune", tune[2].task, "", tune[2].seed)].status == "running"
    not_done = results[results.status != "done"]
    assert not_done.score.isna().all() and (not_done.best_prompt == "").all()
    assert set(results.status) == {"done", "failed", "running", "pending"}
    assert (results[results.role == "source"].target == "").all()
    assert (results[results.role == "transfer"].target == results[results.role == "transfer"].task).all()
    assert list(prompts.columns) == PROMPT_COLUMNS and set(prompts.task) == {tune[0].task}
    assert prompts.is_best.sum() == 1


def test_tables_round_trip_and_leave_no_temp_files(sweep, tmp_path):
    storage = Storage(tmp_path / "store")
    run_tune_stage(sweep, storage)
    results, prompts = write_tables(sweep, storage)
    folder = storage.local("results")
    assert sorted(p.name for p in folder.iterdir()) == ["environments.json", "prompts.csv", "prompts.parquet",
                                                        "results.csv", "results.parquet"]
    back = pd.read_parquet(folder / "results.parquet")
    pd.testing.assert_frame_equal(back, results)
    csv = pd.read_csv(folder / "results.csv", keep_default_na=True)
    assert len(csv) == len(results) and list(csv.columns) == list(results.columns)
    cfg = sweep.trial_config("source", task="syn_has0", seed=42)
    snapshots = prompts[(prompts.task == "syn_has0") & (prompts.seed == 42) & ~prompts.is_best]
    assert sorted(snapshots.step) == list(range(0, cfg.train.max_steps + 1, cfg.train.save_every))
    for path in prompts.path:
        assert not Path(path).is_absolute() and load_prompt(storage.local("results") / path).ndim == 2


def test_the_analysis_reads_the_tables(sweep, tmp_path):
    inputs = pytest.importorskip("itsel_ray.analysis.inputs")
    storage = Storage(tmp_path / "store")
    run_tune_stage(sweep, storage)
    write_tables(sweep, storage)
    results = inputs.load_results(storage.local("results"))
    prompts = inputs.load_prompts(storage.local("results"))
    assert len(results) == len(plan_stage(sweep, "tune")) + len(plan_stage(sweep, "transfer"))
    assert len(prompts) > 0 and prompts.is_best.sum() == len(plan_stage(sweep, "tune"))


def test_a_folder_from_another_config_counts_as_not_started(sweep, tmp_path):
    storage = Storage(tmp_path / "store")
    t = plan_stage(sweep, "tune")[0]
    run_fake(sweep, storage, t)
    write_json(storage.local(t.key) / MARKER, {"fingerprint": "something else"})
    (record,) = [r for r in read_stage(sweep, storage, [t])]
    assert record.status == "pending" and math.isnan(record.score)


def test_best_source_prompt_ties_go_to_the_first_seed(sweep, tmp_path):
    storage = Storage(tmp_path / "store")
    scores = {"tune/syn_has0/seed=42": 70.0, "tune/syn_has0/seed=7": 70.0,  # tie: 42 is listed first
              "tune/syn_has1/seed=42": 60.0, "tune/syn_has1/seed=7": 65.0}
    run_tune_stage(sweep, storage, scores)
    prompts, index = persist_source_prompts(sweep, storage)
    assert (index["syn_has0"]["seed"], index["syn_has0"]["score"]) == (42, 70.0)
    assert (index["syn_has1"]["seed"], index["syn_has1"]["score"]) == (7, 65.0)
    assert source_index(sweep, storage).entries == index
    for source, entry in index.items():
        saved = load_prompt(storage.local(entry["path"]))
        best = load_prompt(storage.local(f"tune/{source}/seed={entry['seed']}") / TrialFiles.BEST_PROMPT)
        np.testing.assert_array_equal(saved, best)
        np.testing.assert_array_equal(saved, prompts[source])


def test_transfer_refuses_sources_without_a_finished_run(sweep, tmp_path):
    storage = Storage(tmp_path / "store")
    for t in plan_stage(sweep, "tune"):
        run_fake(sweep, storage, t, status="failed" if t.task == "syn_has1" else "done")
    with pytest.raises(MissingSourcesError, match="syn_has1"):
        persist_source_prompts(sweep, storage)


def test_status_counts_and_needs_no_ray(sweep, tmp_path):
    storage = sweep_root(str(tmp_path / "store"), sweep.name)  # the layout status reads: <storage>/<sweep name>
    tune = plan_stage(sweep, "tune")
    run_fake(sweep, storage, tune[0])
    run_fake(sweep, storage, tune[1], status="failed")
    run_fake(sweep, storage, tune[2], status="running")
    rows = {s: stage_status(sweep, storage, s, index={}, driver_live=False, now=0.0).counts
            for s in ("tune", "transfer")}
    assert (rows["tune"]["done"], rows["tune"]["failed"], rows["tune"]["interrupted"], rows["tune"]["not started"]) \
        == (1, 1, 1, len(tune) - 3)
    assert rows["transfer"]["not started"] == len(plan_stage(sweep, "transfer"))
    assert "tune" in format_status(sweep, storage)
    code = ("import sys; from itsel_ray.sweep.cli import main; "
            f"rc = main(['status', '--sweep', {sweep.path!r}, '--storage', {str(tmp_path / 'store')!r}]); "
            "assert 'ray' not in sys.modules, 'status imported ray'; sys.exit(rc)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "not started" in out.stdout


def test_remote_storage_uses_pyarrow(sweep, tmp_path):
    """A URI root (file:// here, s3:// on a cluster) goes through pyarrow: atomic puts, listing, reading."""
    local = Storage(tmp_path / "store")
    run_tune_stage(sweep, local)
    remote = Storage(f"file://{tmp_path / 'store'}")
    assert remote.remote and remote.read_json("tune/syn_has0/seed=42/result.json")["status"] == "done"
    results, prompts = write_tables(sweep, remote)
    assert (results[results.stage == "tune"].status == "done").all()
    assert all(remote.exists(p.removeprefix("../")) for p in prompts.path)
    assert remote.read_bytes("no/such/file") is None


def test_each_trial_names_the_environments_it_ran_in(sweep, tmp_path, monkeypatch):
    from itsel_ray import environment
    from itsel_ray.runs.provenance import ENV_FILE, record_environment

    storage = Storage(tmp_path / "store")
    tune = plan_stage(sweep, "tune")
    for t in tune[:3]:
        run_fake(sweep, storage, t)
    first = record_environment(storage.local(tune[0].key))
    assert record_environment(storage.local(tune[0].key)) == first  # the same environment is recorded once
    record_environment(storage.local(tune[1].key))
    # the third trial resumed on another machine: another CPU, so another fingerprint
    record_environment(storage.local(tune[2].key))
    other = {**environment.cpu(), "model": "Another CPU", "isa": ["avx512f"]}
    monkeypatch.setattr(environment, "cpu", lambda: other)
    second = record_environment(storage.local(tune[2].key))
    assert second["fingerprint"] != first["fingerprint"] and second["cpu"]["model"] == "Another CPU"
    assert len(read_json(storage.local(tune[2].key) / ENV_FILE)["environments"]) == 2
    results, _ = write_tables(sweep, storage)
    env = dict(zip(results.task + "/" + results.seed.astype(str) + "/" + results.stage, results.environment))
    assert env[f"{tune[0].task}/{tune[0].seed}/tune"] == first["fingerprint"]
    assert env[f"{tune[2].task}/{tune[2].seed}/tune"] == f"{first['fingerprint']}+{second['fingerprint']}"
    assert (results.environment[results.status != "done"] == "").all()
    table = read_json(storage.local("results") / "environments.json")
    assert set(table) == {first["fingerprint"], second["fingerprint"]}
    assert table[first["fingerprint"]]["trials"] == 3 and table[second["fingerprint"]]["trials"] == 1
    # the report lists the environment with most trials first, whatever order the file's keys came back in
    # (storage writes them sorted, so the order depends on the fingerprints' spelling)
    from itsel_ray.analysis.from_sweep import _environments
    assert [e["fingerprint"] for e in _environments(storage.local("results"), results)] == [
        first["fingerprint"], second["fingerprint"]]
    assert table[second["fingerprint"]]["summary"].startswith("Another CPU (avx512f)")


def test_durations_are_never_negative():
    from itsel_ray.runs.status import format_duration

    # a progress line stamped a moment after `now` (read order, clock ticks) read "-1h59m old"
    assert format_duration(-5.0) == "0s"
    assert [format_duration(s) for s in (0, 59.6, 61, 3661)] == ["0s", "1m00s", "1m01s", "1h01m"]
    assert format_duration(None) == "?" and format_duration(float("nan")) == "?"
