"""The progress log: lines appended and read back (a torn last line skipped), the latest run's view, and the ETA
from the observed completion rate, hand-computed."""

import pytest

from itsel_ray.runs.progress import RECENT, ProgressLog, RunProgress, eta_seconds, latest_run, log_key
from itsel_ray.runs.storage import Storage


def test_the_log_is_appended_and_the_latest_run_is_read(tmp_path):
    storage = Storage(tmp_path)
    old = ProgressLog(storage, "tune", "r1")
    old.write("run", total=3, todo=3)
    old.write("trial", trial="tune/a/seed=1", state="done")
    new = ProgressLog(storage, "tune", "r2")
    new.write("run", total=3, todo=2)
    new.write("trial", trial="tune/b/seed=1", state="running")
    new.write("trial", trial="tune/b/seed=1", state="retrying")
    new.write("tune", counts={"running": 1, "retrying": 1})
    storage.append_text(log_key("tune"), '{"kind": "trial", "t": 1, "ru')  # a crash mid-write
    run = latest_run(storage, "tune")
    assert run.run == "r2" and run.todo == 2 and run.ended is None
    assert run.states == {"tune/b/seed=1": "retrying"} and run.tune == {"running": 1, "retrying": 1}
    assert run.completions == []
    after_crash = ProgressLog(storage, "tune", "r3")  # the next driver starts on a fresh line
    after_crash.write("run", total=3, todo=1)
    after_crash.write("end", outcome="complete")
    assert latest_run(storage, "tune").run == "r3" and latest_run(storage, "tune").ended["outcome"] == "complete"
    size = len(storage.read_bytes(log_key("tune")))
    after_crash.write("trial", trial="tune/c/seed=1", state="done")  # one more line costs one line
    assert len(storage.read_bytes(log_key("tune"))) - size < 200


def test_eta_from_the_first_completions_counts_from_the_start():
    run = RunProgress(started=0.0, completions=[10.0])
    assert eta_seconds(4, run, now=10.0) == pytest.approx(40.0)  # 10 s per trial so far
    assert eta_seconds(4, run, now=15.0) == pytest.approx(35.0)  # 5 s of it have passed since
    assert eta_seconds(0, run, now=15.0) == 0.0
    assert eta_seconds(3, RunProgress(started=0.0), now=5.0) is None


def test_eta_leaves_the_start_up_out_once_enough_trials_finished():
    # 20 s of start-up, then one trial a second: the recent half says 1 s per trial, the run's average would
    # say 51 / 32 = 1.6 s
    done = [20.0 + i for i in range(2 * RECENT)]
    run = RunProgress(started=0.0, completions=done)
    assert eta_seconds(10, run, now=done[-1]) == pytest.approx(10.0)
    # waves: 4 trials finish together every 4 s (4 at once, 4 s each): 1 s per trial all the same
    waves = [4.0 * w for w in range(1, 9) for _ in range(4)]
    assert eta_seconds(8, RunProgress(started=0.0, completions=waves), now=32.0) == pytest.approx(8.0)


def test_the_first_eta_leaves_the_start_up_out():
    # 20 s of start-up (Ray, actors starting), then 16 slots running trials of 2 s each: the first completion at
    # 22 s says 2 s / 16 = 0.125 s per trial; counting from the run's start would say 22 s per trial (176x too high)
    run = RunProgress(started=0.0, slots=16)
    for i in range(16):
        run.trial_line(f"t{i}", "running", 20.0 + i / 100)
    run.trial_line("t0", "done", 22.0)
    assert run.durations == [pytest.approx(2.0)] and run.completions == [22.0] and run.running == 15
    assert eta_seconds(100, run, now=22.0) == pytest.approx(12.5)
    assert eta_seconds(100, run, now=24.0) == pytest.approx(10.5)  # ticks down between completions
    # slots still filling count as the slots planned; fewer trials left than slots run at most that many at once
    filling = RunProgress(started=0.0, slots=16)
    for i in range(4):
        filling.trial_line(f"t{i}", "running", 20.0)
    filling.trial_line("t0", "done", 22.0)
    assert eta_seconds(100, filling, now=22.0) == pytest.approx(12.5)
    assert eta_seconds(4, filling, now=22.0) == pytest.approx(2.0)
    # without the slots recorded (an older log): the trials running now, else Tune's count
    assert eta_seconds(100, RunProgress(started=0.0, durations=[2.0], completions=[22.0], tune={"running": 8}),
                       now=22.0) == pytest.approx(25.0)


def test_the_first_eta_uses_the_trials_own_time_not_tunes_start_which_includes_the_actors_start_up(tmp_path):
    # Tune marks 16 trials started at once (0 s) while their actors take 20 s to start; each then trains 2 s. The
    # time since Tune's start says 22 s per trial (1.4 s per further trial over 16 slots: 11x too high); the trial's
    # own time (Tune's time_total_s, logged as `took`) says 2 s, so 0.125 s per further trial.
    storage = Storage(tmp_path)
    log = ProgressLog(storage, "transfer", "r1")
    log.write("run", total=101, todo=101, slots=16)
    run = RunProgress(started=0.0, slots=16)
    for i in range(16):
        run.trial_line(f"t{i}", "running", 0.0)
        log.write("trial", trial=f"t{i}", state="running")
    run.trial_line("t0", "done", 22.0, took=2.0)
    log.write("trial", trial="t0", state="done", took=2.0)
    assert run.durations == [2.0]
    assert eta_seconds(100, run, now=22.0) == pytest.approx(12.5)
    assert latest_run(storage, "transfer").durations == [2.0]  # `status` reads the same from the log
    without = RunProgress(started=0.0, slots=16)  # an older log, without `took`: the time since Tune's start
    without.trial_line("t0", "running", 0.0)
    without.trial_line("t0", "done", 22.0)
    assert without.durations == [22.0]


def test_a_first_wave_that_finishes_together_is_not_one_trial_per_wave():
    # 16 trials of 10 s each start together after 20 s and finish together: 10 s / 16 per trial, whether or not
    # RECENT completions have come in (the recent half spans no time)
    run = RunProgress(started=0.0, slots=16)
    for i in range(RECENT):
        run.trial_line(f"t{i}", "running", 20.0)
    for i in range(RECENT):
        run.trial_line(f"t{i}", "done", 30.0)
    assert eta_seconds(160, run, now=30.0) == pytest.approx(100.0)


def test_durations_come_from_the_log_and_skips_and_retries_are_not_completions(tmp_path):
    storage = Storage(tmp_path)
    log = ProgressLog(storage, "transfer", "r1")
    log.write("run", total=4, todo=4, slots=2)
    for key in ("a", "b", "c", "d"):
        log.write("trial", trial=key, state="running")
    log.write("trial", trial="a", state="done")
    log.write("trial", trial="b", state="skipped")
    log.write("trial", trial="c", state="retrying")
    log.write("trial", trial="d", state="failed")
    run = latest_run(storage, "transfer")
    assert run.slots == 2 and len(run.completions) == 2 and len(run.durations) == 2 and run.starts == {}
    assert run.states == {"a": "done", "b": "skipped", "c": "retrying", "d": "failed"}
    assert run.running == 0
    log.write("trial", trial="c", state="running")
    assert latest_run(storage, "transfer").running == 1 and set(latest_run(storage, "transfer").starts) == {"c"}
