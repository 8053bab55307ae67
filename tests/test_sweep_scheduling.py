"""The stage's trial queue and scheduler, without a cluster: the queue hands out the plan one trial at a time and
saves its place; retried trials go first; with actor reuse the newest waiting trial is chosen (Tune's FIFO choice
would cancel the actor Ray starts for the oldest); the pending window exceeds the slots; Tune settings are restored."""

import json
import os

from ray.tune.search import Searcher

from itsel_ray.runs.plan import plan_stage, trial_from_config
from itsel_ray.runs.sweep_file import load_sweep
from itsel_ray.sweep.scheduling import PENDING_ENV, PlanQueue, RecoveredFirst, environment, pending_window


class FakeTrial:
    def __init__(self, name, status="PENDING"):
        self.name, self.status = name, status

    def __repr__(self):
        return self.name


def test_the_queue_hands_out_the_plan_once_and_saves_its_place(tmp_path):
    sweep = load_sweep("demo")
    trials = plan_stage(sweep, "transfer")
    queue = PlanQueue(trials)
    first = [trial_from_config(sweep, "transfer", queue.suggest(f"id{i}")) for i in range(5)]
    assert first == trials[:5]
    queue.save(str(tmp_path / "q.json"))
    assert json.loads((tmp_path / "q.json").read_text()) == {"next": 5, "trials": len(trials)}
    again = PlanQueue(trials)
    again.restore(str(tmp_path / "q.json"))
    rest = []
    while (point := again.suggest("x")) != Searcher.FINISHED:
        rest.append(trial_from_config(sweep, "transfer", point))
    assert rest == trials[5:]


def test_retried_trials_first_then_the_newest_waiting_one():
    s = RecoveredFirst(newest_first=True)
    a, b, c = FakeTrial("a"), FakeTrial("b"), FakeTrial("c")
    for t in (a, b, c):
        s.on_trial_add(None, t)
    assert s.choose_trial_to_run(None) is c
    c.status = "RUNNING"
    assert s.choose_trial_to_run(None) is b
    c.status = "PENDING"  # c failed and Tune re-queued it
    s.on_trial_error(None, c)
    d = FakeTrial("d")
    s.on_trial_add(None, d)
    assert s.choose_trial_to_run(None) is c
    c.status = "RUNNING"
    assert s.choose_trial_to_run(None) is d
    for t in (a, b, d):
        t.status = "TERMINATED"
    c.status = "TERMINATED"
    assert s.choose_trial_to_run(None) is None and s._waiting == [] and s._retrying == []


def test_without_reuse_the_order_is_fifo():
    s = RecoveredFirst(newest_first=False)
    a, b = FakeTrial("a"), FakeTrial("b")
    s.on_trial_add(None, a)
    s.on_trial_add(None, b)
    assert s.choose_trial_to_run(None) is a


def test_the_pending_window_exceeds_the_slots_and_tune_settings_are_restored(monkeypatch):
    monkeypatch.delenv(PENDING_ENV, raising=False)
    assert pending_window(2) == 16 and pending_window(16) == 32 and pending_window(100) == 200
    with environment(**{PENDING_ENV: "32"}):
        assert os.environ[PENDING_ENV] == "32"
    assert PENDING_ENV not in os.environ
    monkeypatch.setenv(PENDING_ENV, "7")  # the user's choice wins and survives
    assert pending_window(16) == 7
    with environment(**{PENDING_ENV: "32"}):
        pass
    assert os.environ[PENDING_ENV] == "7"


def test_a_head_start_then_the_whole_window_once_a_trial_started(monkeypatch):
    from itsel_ray.sweep import scheduling

    trials = plan_stage(load_sweep("demo"), "transfer")
    queue = PlanQueue(trials, head_start=2)
    assert queue.suggest("a") is not None and queue.suggest("b") is not None
    assert queue.suggest("c") is None  # the head start's actors are starting
    scheduling.OpenOnFirstStart(queue).on_trial_start(0, [], None)
    assert queue.suggest("c") is not None and queue.suggest("d") is not None
    late = PlanQueue(trials, head_start=1)
    assert late.suggest("a") is not None and late.suggest("b") is None
    monkeypatch.setattr(scheduling, "HEAD_START_S", 0.0)  # no trial started in time: the window opens anyway
    assert late.suggest("b") is not None
