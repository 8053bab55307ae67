"""How a stage's trials reach Tune and which one runs next: a queue that costs the same per trial at any size, and
every slot busy for trials of any length.

- `PlanQueue` (a Tune `Searcher`) hands Tune the stage's planned trials one at a time, as Tune asks for them: creating
  a trial costs the same at 39,000 trials as at 390, and the first trial exists at once. (One `grid_search` over all
  trials does not: Ray 2.60's grid generator deep-copies the spec that holds the whole grid once per value, before
  the first trial, quadratic in the trials: 0.4 s of driver CPU at 390 trials, 9 s at 1,950, about an hour at
  39,000.)
- Tune keeps `pending_window(slots)` trials created ahead of the running ones (Tune's own default for a searcher is
  one, which starts one actor at a time).
- `RecoveredFirst` (the scheduler) starts a trial Tune is retrying (a lost node, a crash) before any trial that has
  not started: Tune itself re-queues it at the back, which at the paper's trial lengths adds a whole trial's time to
  the end of the stage. With actor reuse it then hands the actor of a finished trial to the *newest* waiting trial.

Why newest: with `reuse_actors`, Tune gives a finished trial's actor to the trial it is told to run next and
cancels the actor that trial had requested. Tune's FIFO order names the oldest waiting trial, whose actor is the one
furthest into its start-up (the request Ray granted first), so on a box where an actor takes longer to start than
a trial takes to run, every finishing trial cancels the next actor about to start: trials of about 2 s ran one at a
time, in one process, with the other slots' actors started and cancelled over and over. The newest waiting trial's
request is still queued for resources (the window holds more trials than there are slots), so cancelling it costs
nothing and the actors already starting finish and take their slots. Measured in benchmarks/bench_sweep_overhead.py
(2 s and 8 s trials, reuse on and off, FIFO and newest). Within the window the order is newest first; across the
stage trials still start roughly in plan order, since Tune creates them in that order, one window at a time.

A head start: the queue first hands out only as many trials as the driver's machine has cores, and the rest of the
window once one of them has started (`OpenOnFirstStart`, or after HEAD_START_S). Starting an actor costs a worker
process about 3 s of CPU (Ray, Tune, the trainable); started all at once, 16 of them on 2 cores finish together
after about 20 s, so the first trial waited for the last actor. No trial can finish before the first one starts,
so nothing is cancelled in the meantime.
"""

from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager

from ray import tune
from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler
from ray.tune.search import Searcher

from itsel_ray.runs.plan import PlannedTrial, trial_point

PENDING_ENV = "TUNE_MAX_PENDING_TRIALS_PG"  # Tune's own setting; a value the user exported wins
MIN_WINDOW = 16
HEAD_START_S = 30.0  # the whole window is handed out after this long even if no trial has started


class PlanQueue(Searcher):
    """Tune's source of trials for one stage run: the planned trials, in plan order, one per `suggest`."""

    def __init__(self, trials: list[PlannedTrial], head_start: int | None = None):
        super().__init__()
        self._trials = trials
        self._next = 0
        self.head_start = head_start  # None: no head start
        self._opened_at: float | None = None if head_start else time.monotonic()
        self._created = time.monotonic()

    def open(self) -> None:
        """A trial has started: hand out the rest of the window from now on."""
        if self._opened_at is None:
            self._opened_at = time.monotonic()

    def suggest(self, trial_id: str):
        if self._next >= len(self._trials):
            return Searcher.FINISHED
        if self._opened_at is None and self._next >= self.head_start:
            if time.monotonic() - self._created < HEAD_START_S:
                return None  # not yet: the head start's actors are starting
            self.open()
        point = trial_point(self._trials[self._next])
        self._next += 1
        return point

    def on_trial_complete(self, trial_id: str, result=None, error: bool = False) -> None:
        pass  # the plan is fixed: nothing to learn from results

    # Tune saves its searcher with its experiment state; a stage run never restores it (each run is a fresh
    # experiment over the trials storage does not hold as finished), so the position is all there is to save.
    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "w") as f:
            json.dump({"next": self._next, "trials": len(self._trials)}, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path) as f:
            self._next = int(json.load(f)["next"])


class OpenOnFirstStart(tune.Callback):
    """Opens the queue's window when the first trial starts (or fails to)."""

    def __init__(self, queue: PlanQueue):
        self.queue = queue

    def __getstate__(self):  # Tune may pickle callbacks into its experiment state: nothing here is needed there
        return {}

    def on_trial_start(self, iteration, trials, trial, **info):
        self.queue.open()

    def on_trial_error(self, iteration, trials, trial, **info):
        self.queue.open()

    def on_trial_recover(self, iteration, trials, trial, **info):
        self.queue.open()


def pending_window(slots: int) -> int:
    """How many created trials Tune keeps waiting ahead of the running ones: more than the slots, so that the newest
    waiting trial's actor request is still queued for resources (see the module docstring); at least MIN_WINDOW.
    A TUNE_MAX_PENDING_TRIALS_PG the user exported wins."""
    return int(os.environ.get(PENDING_ENV) or max(MIN_WINDOW, 2 * slots))


@contextmanager
def environment(**values: str):
    """Tune settings that Tune reads from the environment, set for one Tuner and restored after it."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class RecoveredFirst(FIFOScheduler):
    """Retried trials first; then, with actor reuse, the newest waiting trial (else Tune's FIFO order).

    Keeps its own list of the trials Tune added (the window of waiting ones), so choosing costs the same at any
    number of finished trials; Tune's FIFO scans every trial of the experiment on every step.
    """

    def __init__(self, newest_first: bool = True):
        super().__init__()
        self.newest_first = newest_first
        self._retrying: list = []
        self._waiting: list = []

    def on_trial_add(self, tune_controller, trial):
        self._waiting.append(trial)

    def on_trial_error(self, tune_controller, trial):
        if trial not in self._retrying:
            self._retrying.append(trial)

    def on_trial_complete(self, tune_controller, trial, result):
        self._forget(trial)

    def on_trial_remove(self, tune_controller, trial):
        self._forget(trial)

    def _forget(self, trial) -> None:
        if trial in self._retrying:
            self._retrying.remove(trial)

    def choose_trial_to_run(self, tune_controller):
        for trial in list(self._retrying):
            if trial.status == Trial.PENDING:
                return trial
            if trial.status in (Trial.RUNNING, Trial.TERMINATED, Trial.ERROR):
                self._forget(trial)  # started again, or given up
        self._waiting = [t for t in self._waiting if t.status in (Trial.PENDING, Trial.PAUSED)]
        for status in (Trial.PENDING, Trial.PAUSED):
            for trial in (reversed(self._waiting) if self.newest_first else self._waiting):
                if trial.status == status:
                    return trial
        return None
