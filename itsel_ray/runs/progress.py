"""The progress log of a stage: <sweep>/progress/<stage>.jsonl, appended by the driver, read by `status`.

Written incrementally, one JSON line per event, so each update costs the same at 10 trials or 30,000:
    {"kind": "run",   "t": ..., "run": ID, "total": N, "todo": M, "host": ..., "pid": ...}  a driver starts the stage
    {"kind": "trial", "t": ..., "run": ID, "trial": KEY, "state": running|done|failed|retrying|skipped}
    {"kind": "tune",  "t": ..., "run": ID, "counts": {running, pending, retrying, done, failed, waiting}}
    {"kind": "end",   "t": ..., "run": ID, "outcome": "complete"|"interrupted"|"failed"|"error", ...}
"tune" lines carry Tune's own view (throttled, on change), which is what `status` shows while a driver is live.
Object stores cannot append, so there each batch of lines is its own object under progress/<stage>.d/. A torn last
line (a crash mid-write) is skipped. No Ray here.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field

from itsel_ray.runs.storage import Storage

PROGRESS_DIR = "progress"
TRIAL_STATES = ("running", "done", "failed", "retrying", "skipped")


def log_key(stage: str) -> str:
    return f"{PROGRESS_DIR}/{stage}.jsonl"


class ProgressLog:
    """The driver's writer: `write(record)` appends one line (buffered for object stores, flushed each second)."""

    def __init__(self, storage: Storage, stage: str, run: str):
        self.storage, self.stage, self.run = storage, stage, run
        self._buffer: list[str] = []
        self._seq, self._last_flush, self._tail_checked = 0, 0.0, False

    def _ends_mid_line(self) -> bool:
        """Whether the local log's last byte is not a newline (read alone, not the whole log)."""
        try:
            with open(self.storage.local(log_key(self.stage)), "rb") as f:
                f.seek(-1, os.SEEK_END)
                return f.read(1) != b"\n"
        except OSError:  # no log yet, or an empty one
            return False

    def write(self, kind: str, **fields) -> None:
        line = json.dumps({"kind": kind, "t": round(time.time(), 3), "run": self.run, **fields},
                          sort_keys=True, default=str) + "\n"
        if not self.storage.remote:
            if not self._tail_checked:  # a driver that died mid-line left a torn line: start on a fresh one
                self._tail_checked = True
                line = "\n" + line if self._ends_mid_line() else line
            self.storage.append_text(log_key(self.stage), line)
            return
        self._buffer.append(line)
        if kind in ("run", "end") or time.time() - self._last_flush >= 1.0:
            self.flush()
        if kind == "end":
            self._compact()

    def flush_due(self) -> None:
        """Put the buffered lines if the last put is a second old (called often; cheap when there is nothing)."""
        if self._buffer and time.time() - self._last_flush >= 1.0:
            self.flush()

    def flush(self) -> None:
        if self.storage.remote and self._buffer:
            self._seq += 1
            self.storage.write_bytes(f"{PROGRESS_DIR}/{self.stage}.d/{self.run}-{self._seq:08d}.jsonl",
                                     "".join(self._buffer).encode())
            self._buffer.clear()
        self._last_flush = time.time()


    def _compact(self) -> None:
        """Object stores: an ended run's batches become one object (`<run>.jsonl`, put before the batches are
        deleted), so `status` reads one object per past run, not one per second of it."""
        folder = f"{PROGRESS_DIR}/{self.stage}.d"
        batches = [k for k in self.storage.list_files(folder) if k.rsplit("/", 1)[-1].startswith(f"{self.run}-")]
        if len(batches) < 2:
            return
        self.storage.write_bytes(f"{folder}/{self.run}.jsonl", b"".join(self.storage.read_bytes(k) or b""
                                                                         for k in batches))
        for key in batches:
            self.storage.remove(key)


def read_lines(storage: Storage, stage: str) -> list[dict]:
    """Every readable line of the stage's log, oldest first (a line read twice, as after a compaction that was
    interrupted before it deleted the batches, counts once)."""
    chunks = [storage.read_bytes(log_key(stage)) or b""]
    keys = storage.list_files(f"{PROGRESS_DIR}/{stage}.d")
    if keys:  # object stores: one GET per object, several at a time
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(min(16, len(keys))) as pool:
            chunks += [c or b"" for c in pool.map(storage.read_bytes, keys)]
    seen: set[str] = set()
    lines = []
    for chunk in chunks:
        for raw in chunk.decode("utf-8", errors="replace").splitlines():
            if keys:
                if raw in seen:
                    continue
                seen.add(raw)
            try:
                item = json.loads(raw)
            except ValueError:
                continue  # a torn line
            if isinstance(item, dict) and "kind" in item and isinstance(item.get("t"), (int, float)):
                lines.append(item)
    return sorted(lines, key=lambda x: x["t"])


@dataclass
class RunProgress:
    """The latest driver run of a stage, as its log tells it."""

    run: str | None = None
    started: float | None = None
    todo: int = 0
    slots: int = 0  # how many trials the driver expected to run at once (0: not recorded)
    updated: float | None = None  # the last line's time
    states: dict = field(default_factory=dict)  # trial key -> last state
    tune: dict = field(default_factory=dict)  # Tune's last counts
    completions: list = field(default_factory=list)  # times of trials finished (done or failed) in this run
    durations: list = field(default_factory=list)  # start to finish of each of those trials that started in this run
    starts: dict = field(default_factory=dict)  # trial key -> when it started, while it runs
    ended: dict | None = None  # the "end" line, when the run ended cleanly

    def count(self, state: str) -> int:
        return sum(1 for s in self.states.values() if s == state)

    @property
    def running(self) -> int:
        """Trials running now: the trial lines' count (written as each starts), else Tune's last count."""
        return self.count("running") or int(self.tune.get("running") or 0)

    def trial_line(self, key: str, state: str, t: float, took: float | None = None) -> None:
        """Follow one trial's transition (the driver's callback and `latest_run` both feed this). `took`: the trial's
        own running time as its worker measured it (Tune's time_total_s), which leaves out the actor's start-up that
        the time since Tune started the trial includes (about 20 s for a first wave of 16 actors on 2 cores)."""
        self.states[key] = state
        if state == "running":
            self.starts[key] = t
            return
        started = self.starts.pop(key, None)
        if state in ("done", "failed"):
            self.completions.append(t)
            if took is not None and took > 0:
                self.durations.append(took)
            elif started is not None:
                self.durations.append(t - started)


def latest_run(storage: Storage, stage: str, *, until: float | None = None) -> RunProgress:
    """The latest run as the log tells it (as it told it at time `until`, when given)."""
    progress = RunProgress()
    for line in read_lines(storage, stage):
        if until is not None and line["t"] > until:
            break
        kind = line["kind"]
        if kind == "run":
            progress = RunProgress(run=line.get("run"), started=line["t"], todo=int(line.get("todo") or 0),
                                   slots=int(line.get("slots") or 0))
        elif line.get("run") != progress.run:
            continue
        elif kind == "trial" and line.get("state") in TRIAL_STATES:
            progress.trial_line(line.get("trial"), line["state"], line["t"], line.get("took"))
        elif kind == "tune":
            progress.tune = dict(line.get("counts") or {})
        elif kind == "end":
            progress.ended = line
        progress.updated = line["t"]
    return progress


RECENT = 16  # with at least this many completions, the rate is measured over the recent half only


def eta_seconds(remaining: int, progress: RunProgress, now: float, *, prior_s: float | None = None) -> float | None:
    """Time left at the rate trials finish in this run, less the time since the latest completion.

    Once RECENT trials have finished, the rate is the one observed over the latest half of the completions: it
    already reflects how many trials run at once and how long each takes, and follows a rate that changes. Before
    that, and while the completions so far came in one wave, it is the trials' own mean duration (start to finish)
    over the number that run at once: the slots the driver planned (fewer when fewer trials remain), or more if
    more are running. So the start-up (Ray, actors starting, data loading) is left out, a first wave of trials
    that finish together does not read as one trial's duration per trial, and slots still filling do not read as
    slots that stay empty. Measuring up to the latest completion (not to now) keeps the estimate steady between
    completions.

    Before a trial has finished in this run (a resumed sweep), `prior_s` (one trial's duration as storage knows it
    from the trials finished earlier, as `status` uses it) stands in for the mean duration, less the time the
    first of this run's trials has been running; without it, None.
    """
    if remaining <= 0:
        return 0.0
    per_trial = seconds_per_trial(remaining, progress, prior_s=prior_s)
    if per_trial is None:
        return None
    if progress.completions:
        return max(0.0, remaining * per_trial - max(0.0, now - progress.completions[-1]))
    first = min(progress.starts.values(), default=now)
    return max(0.0, remaining * per_trial - min(max(0.0, now - first), prior_s or 0.0))


def seconds_per_trial(remaining: int, progress: RunProgress, *, prior_s: float | None = None) -> float | None:
    """The wall time each further trial adds to the run (a trial's duration over the trials run at once)."""
    done = progress.completions
    at_once = max(progress.running, min(progress.slots, max(remaining, 1)), 1)
    if not done or progress.started is None:
        return prior_s / at_once if prior_s and progress.started is not None else None
    last, half = done[-1], len(done) // 2
    if len(done) >= RECENT and last > done[half - 1]:  # the latest half, from the completion before it
        per_trial = (last - done[half - 1]) / (len(done) - half)
    elif progress.durations:
        per_trial = sum(progress.durations) / len(progress.durations) / at_once
    else:  # no start seen in this run (a log without trial starts)
        per_trial = (last - progress.started) / len(done)
    return per_trial if per_trial > 0 else None
