"""The prompt-tuning engine's resume state survives one damaged file: a damaged state.pt falls back to the state of
the evaluation before (and resumes exactly from there), a damaged result.json is rebuilt from the state, and a
folder with no readable state is refused by name (the sweep then starts the trial over)."""

import pytest

from itsel_ray.artifacts import StateError, TrialFiles, read_json
from itsel_ray.engine.t5 import T5

from .conftest import tiny_trial


def test_a_damaged_state_resumes_from_the_previous_evaluation_exactly(tmp_path):
    cfg = tiny_trial(train={"max_steps": 30, "eval_every": 10, "save_every": 10})
    straight = tmp_path / "straight"
    T5.run_trial(cfg, straight)
    expected = read_json(TrialFiles(straight).result)

    work = tmp_path / "damaged"
    files = TrialFiles(work)
    T5.run_trial(tiny_trial(train={"max_steps": 30, "eval_every": 10, "save_every": 10}), work)
    # pretend the run stopped after step 30's state was half-written: the newest state is garbage
    files.state.write_bytes(b"\x00 not a state")
    rebuilt = T5.recover_record(cfg, work)
    assert rebuilt["steps"] == 20 and rebuilt["status"] == "running"  # state.prev.pt: one evaluation earlier
    T5.run_trial(cfg, work)  # resumes from step 20 and redoes step 30 bit for bit
    again = read_json(files.result)
    assert again["best_score"] == expected["best_score"] and again["history"] == expected["history"]
    assert "resuming from state.prev.pt" in files.log.read_text()


def test_a_damaged_record_is_rebuilt_and_no_state_is_refused_by_name(tmp_path):
    cfg = tiny_trial()
    work = tmp_path / "t"
    files = TrialFiles(work)
    T5.run_trial(cfg, work)
    good = read_json(files.result)
    rebuilt = T5.recover_record(cfg, work)
    for key in ("status", "best_score", "best_step", "steps", "history", "best_metrics"):
        assert rebuilt[key] == good[key], key
    files.result.write_text('{"status": "do')
    T5.run_trial(cfg, work)  # a finished run with a damaged record: mended, not retrained
    assert read_json(files.result)["status"] == "done"
    files.state.write_bytes(b"x")
    files.state_prev.write_bytes(b"y")
    assert T5.recover_record(cfg, work) is None
    with pytest.raises(StateError, match=r"no readable resume state \(state.pt: .*; state.prev.pt: "):
        T5.run_trial(cfg, work)
