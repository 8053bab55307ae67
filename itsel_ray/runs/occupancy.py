"""What really ran: each trial attempt's span (start to end, in the worker that ran it) from the attempt records, and
from them how many trials ran at once, in how many worker processes, and how soon the slots filled.

These come from the trials' own start/end records (itsel_ray/runs/attempts.py), written by the worker around the
engine's run, so they count trials that were training, not actors that Ray had reserved or was still starting.
Used by the scale and overhead benchmarks and the sweep tests. Pure apart from reading the records; no Ray.
"""

from __future__ import annotations

from dataclasses import dataclass

from itsel_ray.runs.attempts import read_attempts
from itsel_ray.runs.storage import Storage


@dataclass(frozen=True)
class Span:
    trial: str
    start: float
    end: float | None  # None: no end record (still running, or the worker died)
    pid: int | None = None
    node: str | None = None


def spans_from_events(events: list[dict]) -> list[Span]:
    """One span per "start" record, ended by the trial's next "end" or "error" record."""
    out, open_ = [], {}
    for e in sorted(events, key=lambda e: e.get("time", 0)):
        kind, trial = e.get("kind"), e.get("trial")
        if kind == "start":
            if trial in open_:  # started again without an end: the earlier attempt died with its worker
                out.append(open_.pop(trial))
            open_[trial] = Span(trial, float(e["time"]), None, e.get("pid"), e.get("node"))
        elif kind in ("end", "error") and trial in open_:
            s = open_.pop(trial)
            out.append(Span(s.trial, s.start, float(e["time"]), s.pid, s.node))
    return sorted(out + list(open_.values()), key=lambda s: s.start)


def stage_spans(storage: Storage, trials) -> list[Span]:
    """The spans of `trials` (PlannedTrial) as their attempt records tell them."""
    events = []
    for t in trials:
        events += read_attempts(storage, t)
    return spans_from_events(events)


def running_curve(spans: list[Span], until: float | None = None) -> list[tuple[float, int]]:
    """(time, trials running from then on), at every start and end."""
    changes = [(s.start, 1) for s in spans]
    changes += [(s.end if s.end is not None else until, -1) for s in spans if s.end is not None or until is not None]
    curve, running = [], 0
    for t, d in sorted(changes, key=lambda c: (c[0], c[1])):  # an end before a start at the same instant
        running += d
        curve.append((t, running))
    return curve


def mean_running(curve: list[tuple[float, int]], lo: float, hi: float) -> float:
    """Time-weighted mean of the running count over [lo, hi]."""
    if hi <= lo:
        return 0.0
    area, before = 0.0, 0
    prev = lo
    for t, n in curve:
        if t > lo:
            area += before * (min(t, hi) - prev)
            prev = min(t, hi)
        if t >= hi:
            break
        before = n
    if prev < hi:
        area += before * (hi - prev)
    return area / (hi - lo)


@dataclass(frozen=True)
class Occupancy:
    slots: int
    trials: int  # attempts that started
    peak: int  # most trials running at once
    mean_middle: float  # mean running over the middle half of [first start, last end]
    workers: int  # distinct worker processes (pid, node) that ran a trial
    first_start_s: float | None  # from t0 to the first trial's start
    all_busy_s: float | None  # from t0 to the first moment `slots` trials ran at once (None: never)

    def row(self) -> dict:
        return self.__dict__.copy()


def occupancy(spans: list[Span], slots: int, t0: float, until: float | None = None) -> Occupancy:
    """How full the slots were: the span of the stage from its first start to its last end (or `until`)."""
    if not spans:
        return Occupancy(slots, 0, 0, 0.0, 0, None, None)
    first = min(s.start for s in spans)
    last = max([s.end for s in spans if s.end is not None] + ([until] if until is not None else []) + [first])
    curve = running_curve(spans, until=until if until is not None else last)
    busy = next((t for t, n in curve if n >= slots), None)
    quarter = (last - first) / 4
    return Occupancy(
        slots=slots, trials=len(spans), peak=max((n for _, n in curve), default=0),
        mean_middle=mean_running(curve, first + quarter, last - quarter),
        workers=len({(s.node, s.pid) for s in spans}), first_start_s=first - t0,
        all_busy_s=None if busy is None else busy - t0)
