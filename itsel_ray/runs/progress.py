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
    updated: float | None = None  # the last line's time
    states: dict = field(default_factory=dict)  # trial key -> last state
    tune: dict = field(default_factory=dict)  # Tune's last counts
    completions: list = field(default_factory=list)  # times of trials finished (done or failed) in this run
    ended: dict | None = None  # the "end" line, when the run ended cleanly

    def count(self, state: str) -> int:
        return sum(1 for s in self.states.values() if s == state)


def latest_run(storage: Storage, stage: str) -> RunProgress:
    progress = RunProgress()
    for line in read_lines(storage, stage):
        kind = line["kind"]
        if kind == "run":
            progress = RunProgress(run=line.get("run"), started=line["t"], todo=int(line.get("todo") or 0))
        elif line.get("run") != progress.run:
            continue
        elif kind == "trial" and line.get("state") in TRIAL_STATES:
            progress.states[line.get("trial")] = line["state"]
            if line["state"] in ("done", "failed"):
                progress.completions.append(line["t"])
        elif kind == "tune":
            progress.tune = dict(line.get("counts") or {})
        elif kind == "end":
            progress.ended = line
        progress.updated = line["t"]
    return progress


RECENT = 16  # with at least this many completions, the rate is measured over the recent half only


def eta_seconds(remaining: int, progress: RunProgress, now: float) -> float | None:
    """Time left at the completion rate observed in this run, less the time since the latest completion.

    The rate already reflects how many trials run at once and how long each takes, so it needs neither. Once
    RECENT trials have finished it is measured over the latest half of the completions, which leaves out the
    start-up (workers starting, data loading) and follows a rate that changes; before that, from the run's start.
    Measuring up to the latest completion (not to now) keeps the estimate steady between waves of trials. None
    until a trial has finished in this run.
    """
    if remaining <= 0:
        return 0.0
    done = progress.completions
    if not done or progress.started is None:
        return None
    last, half = done[-1], len(done) // 2
    if len(done) >= RECENT and last > done[half - 1]:  # the latest half, from the completion before it
        per_trial = (last - done[half - 1]) / (len(done) - half)
    else:
        per_trial = (last - progress.started) / len(done)
    if per_trial <= 0:
        return None
    return max(0.0, remaining * per_trial - max(0.0, now - last))
