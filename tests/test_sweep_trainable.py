"""The trainable's folder handling, without a Ray instance: finished trials are recognised, a folder from another
config is set aside (never deleted), and a matching folder is resumed in place."""

import json

import yaml

from itsel_ray.artifacts import write_json
from itsel_ray.engine import fake as fake_engine
from itsel_ray.runs.plan import plan_stage
from itsel_ray.runs.storage import Storage
from itsel_ray.runs.sweep_file import load_sweep, sweeps_dir
from itsel_ray.runs.trial_state import MARKER, expected_fingerprint, read_record
from itsel_ray.sweep.trainable import _resume_step, _set_aside_stale, _tune_metrics


def sweep_with(tmp_path, **train):
    data = yaml.safe_load((sweeps_dir() / "smoke.yaml").read_text())
    data.update(name="tr", engine="fake")
    data["trial"]["train"].update(train)
    path = tmp_path / f"tr{len(train)}.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_sweep(str(path))


def test_finished_trial_is_recognised_and_a_changed_config_is_not(tmp_path):
    sweep, changed = sweep_with(tmp_path), sweep_with(tmp_path, max_steps=40)
    storage = Storage(tmp_path / "store")
    t = plan_stage(sweep, "tune")[2]  # a target run (stage overrides leave max_steps to `trial`)
    work = storage.local(t.key)
    fake_engine.run_trial(sweep.trial_config(t.role, task=t.task, seed=t.seed), work)
    write_json(work / MARKER, {"fingerprint": expected_fingerprint(sweep, t)})
    assert read_record(storage, sweep, t, expected_fingerprint(sweep, t)).status == "done"
    assert read_record(storage, changed, t, expected_fingerprint(changed, t)).status == "pending"
    assert expected_fingerprint(sweep, t) != expected_fingerprint(changed, t)

    # the folder of the old config moves to _stale/, and the new run starts from an empty folder
    moved = _set_aside_stale(storage, t, work, expected_fingerprint(changed, t), why="another config")
    assert moved and not work.exists() and moved.startswith("_stale/")
    assert json.loads((storage.local(moved) / "result.json").read_text())["status"] == "done"
    assert "another config" in (storage.local(moved) / "SET_ASIDE").read_text()


def test_matching_state_is_resumed_in_place(tmp_path):
    sweep = sweep_with(tmp_path)
    storage = Storage(tmp_path / "store")
    t = plan_stage(sweep, "tune")[0]
    work = storage.local(t.key)
    fake_engine.run_trial(sweep.trial_config(t.role, task=t.task, seed=t.seed), work)
    expected = expected_fingerprint(sweep, t)
    write_json(work / MARKER, {"fingerprint": expected})
    assert _set_aside_stale(storage, t, work, expected, why="x") is None
    assert _resume_step(work) == 30  # resumes from the step in its own folder


def test_metrics_for_tune_are_flat_and_never_say_done():
    out = _tune_metrics(plan_stage(load_sweep("smoke"), "tune")[0],
                        {"step": 10, "done": True, "best_step": None, "eval_accuracy": 50.0, "nested": {"a": 1}})
    assert "done" not in out and out["trial_done"] is True and out["best_step"] != out["best_step"]  # NaN
    assert "nested" not in out and out["trial"] == "tune/syn_has0/seed=42"
