"""The stage's Tune callback: trial transitions into the progress log, Tune's own counts, and the console line.

Every hook writes one line for one trial (constant cost per trial); Tune's counts are read from its trial list at
most every COUNTS_EVERY_S (a completion does not force a recount: that would cost the whole trial list per trial)
and written only when they change. A trial that failed and will be retried is
"retrying" until Tune starts it again. The callback keeps no state that must survive a restart: a new driver run
starts a new run in the log.
"""

from __future__ import annotations

import time

from ray import tune

from itsel_ray.runs.plan import trial_from_config
from itsel_ray.runs.progress import ProgressLog, RunProgress, eta_seconds, seconds_per_trial
from itsel_ray.runs.status import format_duration
from itsel_ray.runs.storage import Storage
from itsel_ray.sweep.sweep_metrics import SweepMetrics

COUNTS_EVERY_S = 2.0
TUNE_STATES = {"RUNNING": "running", "PENDING": "pending", "PAUSED": "pending", "TERMINATED": "done",
               "ERROR": "failed"}


class StageProgress(tune.Callback):
    def __init__(self, sweep, stage: str, storage_root: str, *, run: str, total: int, done_before: int,
                 todo: int, slots: int = 0, console=None, prior_s: float | None = None, later: float = 0.0,
                 metrics: bool = True):
        self.sweep, self.stage, self.total, self.todo = sweep, stage, total, todo
        self.done_before = done_before
        self.log = ProgressLog(Storage(storage_root), stage, run)
        self.console = console
        self.t0 = time.time()
        self.retrying: set[str] = set()
        self.finished: dict[str, str] = {}  # key -> done | failed, this run
        self.skipped = 0
        self.counts: dict = {}
        self.progress = RunProgress(run=run, started=self.t0, todo=todo, slots=slots)  # this run as the log tells it, for the ETA
        self._last_counts = 0.0
        self.prior_s, self.later = prior_s, later  # a trial's duration from storage; trials after this stage
        self.metrics = SweepMetrics(sweep.name, stage) if metrics and sweep is not None else None
        self.live: dict[str, dict] = {}  # running trial -> its latest step and score, set again with the counts

    def __getstate__(self):  # Tune may pickle callbacks into its experiment state: the log is enough
        return {}

    def _key(self, trial) -> str:
        return trial_from_config(self.sweep, self.stage, trial.config).key

    # -------------------------------------------------------------- hooks
    def _transition(self, key: str, state: str, **fields) -> None:
        self.progress.trial_line(key, state, time.time(), fields.get("took"))
        self.log.write("trial", trial=key, state=state, **fields)
        if self.metrics is not None and state != "running":
            self.live.pop(key, None)
            self.metrics.trial(key, running=False)

    def on_trial_start(self, iteration, trials, trial, **info):
        key = self._key(trial)
        self.retrying.discard(key)
        self._transition(key, "running")
        if self.metrics is not None:
            self.live[key] = {}
            self.metrics.trial(key, running=True)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if self.metrics is not None:
            key = self._key(trial)
            self.live[key] = {"step": result.get("step"), "score": result.get("score")}
            self.metrics.trial(key, **self.live[key])

    def on_trial_complete(self, iteration, trials, trial, **info):
        key = self._key(trial)
        skipped = bool((trial.last_result or {}).get("skipped"))
        self.finished[key] = "done"
        self.skipped += skipped
        took = (trial.last_result or {}).get("time_total_s")  # the trial's own time, its actor's start-up left out
        self._transition(key, "skipped" if skipped else "done",  # a skip takes no time: not a completion
                         **({"took": round(float(took), 3)} if isinstance(took, (int, float)) and not skipped else {}))
        self._update(trials)

    def on_trial_recover(self, iteration, trials, trial, **info):
        key = self._key(trial)
        self.retrying.add(key)
        self._transition(key, "retrying", failures=trial.num_failures)
        self._update(trials, force=True)

    def on_trial_error(self, iteration, trials, trial, **info):
        key = self._key(trial)
        self.retrying.discard(key)
        self.finished[key] = "failed"
        self._transition(key, "failed", failures=trial.num_failures)
        self._update(trials)

    def on_step_end(self, iteration, trials, **info):
        self._update(trials)
        self.log.flush_due()  # object stores: buffered lines reach `status` within a second, not at the next event

    def on_experiment_end(self, trials, **info):
        self._update(trials, force=True)
        self.log.flush()

    # -------------------------------------------------------------- Tune's view and the console line
    def _update(self, trials, force: bool = False) -> None:
        now = time.time()
        if not force and now - self._last_counts < COUNTS_EVERY_S:
            return
        self._last_counts = now
        counts = dict.fromkeys(("running", "pending", "retrying", "done", "failed"), 0)
        for t in trials:
            state = TUNE_STATES.get(t.status, "pending")
            counts[state] += 1
        counts["retrying"] = len(self.retrying)
        counts["pending"] = max(0, counts["pending"] - counts["retrying"])
        counts["waiting"] = max(0, self.todo - len(trials)) + counts["pending"]  # not created yet + created
        if counts != self.counts:
            self.log.write("tune", counts=counts)
            self.counts = counts
            self.progress.tune = counts
        if self.console is not None:
            self.console.progress(self.line(now))
        if self.metrics is not None:
            done, failed, running, retrying, waiting = self._numbers()
            remaining = self.total - done - failed
            self.metrics.counts({"done": done, "running": running, "retrying": retrying, "failed": failed,
                                 "waiting": waiting}, eta_seconds(remaining, self.progress, now, prior_s=self.prior_s),
                                self.progress.completions, now, self.t0)
            for key, latest in self.live.items():  # Ray exports only the series set since its last export
                self.metrics.trial(key, running=True, **latest)

    def _numbers(self) -> tuple[int, int, int, int, int]:
        """done (storage's before this run, and this run's), failed, running, retrying, waiting."""
        done = self.done_before + sum(1 for s in self.finished.values() if s == "done")
        failed = sum(1 for s in self.finished.values() if s == "failed")
        c = self.counts or {}
        running, retrying = c.get("running", 0), c.get("retrying", 0)
        return done, failed, running, retrying, max(0, self.total - done - failed - running - retrying)

    def line(self, now: float | None = None) -> str:
        """The console line, the ETA first after the counts so a line cut to a narrow terminal keeps it:
        "[tune] 16/30 done | ETA 3m10s (command 12m40s) | 2 running, 0 retrying, 0 failed, 12 waiting | 1m02s"."""
        now = time.time() if now is None else now
        done, failed, running, retrying, waiting = self._numbers()
        remaining = self.total - done - failed
        eta = eta_seconds(remaining, self.progress, now, prior_s=self.prior_s)
        text = f"[{self.stage}] {done}/{self.total} done | ETA {format_duration(eta) if eta is not None else '?'}"
        if self.later and eta is not None:
            per_trial = seconds_per_trial(max(remaining, self.progress.slots, 1), self.progress, prior_s=self.prior_s)
            if per_trial is not None:
                text += f" (command {format_duration(eta + self.later * per_trial)})"
        return (f"{text} | {running} running, {retrying} retrying, {failed} failed, "
                f"{waiting} waiting | {format_duration(now - self.t0)} elapsed")
