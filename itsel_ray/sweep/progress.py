"""Stage-level progress: a one-line summary (done / total, ETA) on the console and <sweep>/<stage>/progress.json.

Tune's own table shows trials; this callback adds the stage view and leaves a file that `status` reads without
Ray. It keeps no state that must survive a restart: everything is recomputed from Tune's trial list.
"""

from __future__ import annotations

import statistics
import time

from ray import tune

from itsel_ray.sweep.plan import trial_from_config
from itsel_ray.sweep.status import format_duration
from itsel_ray.sweep.storage import Storage

STATES = {"TERMINATED": "done", "ERROR": "failed", "RUNNING": "running", "PENDING": "pending", "PAUSED": "pending"}


class StageProgress(tune.Callback):
    def __init__(self, sweep, stage: str, storage_root: str, *, total: int, print_every_s: float = 30.0,
                 write_every_s: float = 5.0):
        self.sweep, self.stage, self.storage_root, self.total = sweep, stage, storage_root, total
        self.print_every_s, self.write_every_s = print_every_s, write_every_s
        self._reset()

    def _reset(self) -> None:
        self.t0 = time.time()
        self.last_print = self.last_write = 0.0
        self.walls: list[float] = []
        self.max_running = 1
        self.counts: dict[str, int] = {}

    def setup(self, **info):
        self._reset()

    def __getstate__(self):  # Tune pickles callbacks into its experiment state; keep it small and fresh
        return {k: v for k, v in self.__dict__.items() if k in ("sweep", "stage", "storage_root", "total",
                                                               "print_every_s", "write_every_s")}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._reset()

    # -------------------------------------------------------------- hooks
    def on_trial_complete(self, iteration, trials, trial, **info):
        wall = (trial.last_result or {}).get("wall_s")
        if isinstance(wall, (int, float)) and wall == wall:
            self.walls.append(float(wall))
        self._update(trials, force=True)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._update(trials, force=True)

    def on_step_end(self, iteration, trials, **info):
        self._update(trials)

    def on_experiment_end(self, trials, **info):
        self._update(trials, force=True)

    # -------------------------------------------------------------- summary
    def _update(self, trials, force: bool = False) -> None:
        now = time.time()
        if not force and now - self.last_write < self.write_every_s:
            return
        states = {}
        for t in trials:
            try:
                key = trial_from_config(self.sweep, self.stage, t.config).key
            except (KeyError, TypeError, ValueError):
                continue
            states[key] = STATES.get(t.status, "pending")
        counts = {s: sum(1 for v in states.values() if v == s) for s in ("done", "failed", "running", "pending")}
        counts["pending"] += max(0, self.total - len(states))
        self.max_running = max(self.max_running, counts["running"])
        eta = self._eta(counts)
        record = {"stage": self.stage, "sweep": self.sweep.name, "total": self.total, **counts,
                  "eta_s": eta, "started_at": self.t0, "updated_at": now, "trials": states}
        try:
            Storage(self.storage_root).write_json(f"{self.stage}/progress.json", record)
        except OSError as err:
            print(f"[{self.stage}] could not write progress.json: {err}", flush=True)
        self.last_write = now
        if force or now - self.last_print >= self.print_every_s:
            if counts != self.counts or now - self.last_print >= self.print_every_s:
                print(self.line(counts, eta, now - self.t0), flush=True)
                self.last_print, self.counts = now, counts

    def _eta(self, counts: dict) -> float | None:
        remaining = counts["pending"] + 0.5 * counts["running"]
        if remaining == 0:
            return 0.0
        if not self.walls:
            return None
        return remaining * statistics.median(self.walls) / self.max_running

    def line(self, counts: dict, eta: float | None, elapsed: float) -> str:
        return (f"[{self.stage}] {counts['done']}/{self.total} done, {counts['running']} running, "
                f"{counts['failed']} failed, {counts['pending']} waiting | elapsed {format_duration(elapsed)}, "
                f"ETA {format_duration(eta)}")
