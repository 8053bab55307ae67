"""Early stopping (opt-in): the count of evaluations without improvement, the config keys that turn it on, and a
trial that stops, keeps its best prompt, says where it stopped and resumes to exactly the same end."""

from __future__ import annotations

import math

import numpy as np
import pytest

from itsel_ray.artifacts import TrialFiles, load_prompt, read_json
from itsel_ray.engine.t5 import T5
from itsel_ray.engine.trial import Patience
from itsel_ray.runs.trial_state import fingerprint
from itsel_ray.schema import ConfigError
from itsel_ray.trial_config import TrainConfig, TrialConfig

from .conftest import tiny_trial


def stops_after(scores, min_delta=0.0, patience=2):
    p = Patience()
    for i, s in enumerate(scores, start=1):
        if p.update(s, min_delta, patience):
            return i
    return None


def test_patience_counts_evaluations_without_an_improvement_beyond_min_delta():
    assert stops_after([50, 60, 70, 80]) is None
    assert stops_after([50, 60, 60, 59]) == 4  # ties do not improve
    assert stops_after([50, 60, 59, 61, 61, 61]) == 6  # an improvement resets the count
    assert stops_after([50, 50.5, 50.9, 51.2], min_delta=1.0) == 3  # 50.5 and 50.9 are within 1 of 50
    assert stops_after([50, 50.5, 51.6, 51.7, 51.8], min_delta=1.0) == 5  # 51.6 beats 50 by > 1: new reference
    assert stops_after([math.nan, math.nan], patience=2) == 2  # an undefined score never improves
    assert stops_after([50, 40], patience=1) == 2
    p = Patience()
    p.update(50, 0.0, 3)
    p.update(49, 0.0, 3)
    again = Patience.of(p.state())
    assert (again.ref, again.stale, again.stopped) == (50, 1, False)
    assert Patience.of({}).ref == -math.inf


def test_the_config_keys_are_checked_and_off_leaves_the_trial_identity_alone():
    with pytest.raises(ConfigError, match="train.early_stop_patience must be >= 1"):
        TrainConfig(early_stop_patience=0)
    with pytest.raises(ConfigError, match="train.early_stop_min_delta must be >= 0"):
        TrainConfig(early_stop_patience=2, early_stop_min_delta=-0.1)
    with pytest.raises(ConfigError, match="needs train.early_stop_patience"):
        TrainConfig(early_stop_min_delta=0.5)
    off = tiny_trial()
    assert "early_stop_patience" not in off.identity()["train"]  # trials from before the option: same identity
    on = tiny_trial(train={"early_stop_patience": 3})
    assert on.identity()["train"]["early_stop_patience"] == 3
    assert fingerprint(on) != fingerprint(off)
    assert TrialConfig.from_dict(on.to_dict()) == on


STOPPING = {"max_steps": 60, "eval_every": 10, "save_every": 10, "early_stop_patience": 2,
            # no score beats the first evaluation's by 1000 points: evaluations 2 and 3 are stale, stop at step 30
            "early_stop_min_delta": 1000.0}


def test_a_trial_stops_early_keeps_its_best_prompt_and_resumes_exactly(tmp_path):
    cfg = tiny_trial(train=STOPPING)
    straight = T5.run_trial(cfg, tmp_path / "straight")
    record = read_json(TrialFiles(tmp_path / "straight").result)
    assert record["status"] == "done" and record["stopped_early"] is True
    assert record["steps"] == straight.steps == 30 and record["max_steps"] == 60
    assert [h["step"] for h in record["history"]] == [10, 20, 30]
    best = max(record["history"], key=lambda h: h["score"])
    assert record["best_score"] == best["score"]
    saved = load_prompt(TrialFiles(tmp_path / "straight").best_prompt)
    full = tiny_trial(train={**STOPPING, "early_stop_patience": None, "early_stop_min_delta": 0.0, "max_steps": 30})
    T5.run_trial(full, tmp_path / "full")  # the same steps without early stopping: the same scores and best prompt
    plain = read_json(TrialFiles(tmp_path / "full").result)
    assert [h["score"] for h in plain["history"]] == [h["score"] for h in record["history"]]
    np.testing.assert_array_equal(saved, load_prompt(TrialFiles(tmp_path / "full").best_prompt))
    assert "stopped_early" not in plain  # off: the record is as before

    class Interrupt(Exception):
        pass

    def crash_at_20(metrics, checkpointed):
        if metrics["step"] == 20:
            raise Interrupt

    with pytest.raises(Interrupt):
        T5.run_trial(cfg, tmp_path / "part", report=crash_at_20)
    assert T5.recover_record(cfg, tmp_path / "part")["status"] == "running"
    resumed = T5.run_trial(cfg, tmp_path / "part")
    again = read_json(TrialFiles(tmp_path / "part").result)
    assert resumed.steps == 30 and again["history"] == record["history"] and again["best_score"] == record["best_score"]
    rebuilt = T5.recover_record(cfg, tmp_path / "part")
    assert rebuilt["status"] == "done" and rebuilt["steps"] == 30
    # a stopped trial is finished: running it again trains nothing
    T5.run_trial(cfg, tmp_path / "part", report=lambda m, c: pytest.fail("no new evaluation expected"))
