"""What really ran, from the attempt records: spans, trials at once, worker processes and how soon the slots
filled, hand-computed."""

import pytest

from itsel_ray.runs.attempts import record_attempt
from itsel_ray.runs.occupancy import Span, mean_running, occupancy, running_curve, spans_from_events, stage_spans
from itsel_ray.runs.plan import PlannedTrial
from itsel_ray.runs.storage import Storage


def ev(kind, trial, t, pid=None):
    return {"kind": kind, "trial": trial, "time": t, "pid": pid, "node": "n1"}


def test_spans_pair_each_start_with_its_end_and_keep_a_dead_attempt():
    events = [ev("start", "a", 1.0, 10), ev("end", "a", 3.0), ev("start", "b", 2.0, 11), ev("error", "b", 2.5),
              ev("start", "b", 4.0, 12), ev("start", "c", 5.0, 10), ev("start", "c", 6.0, 13), ev("end", "c", 7.0),
              ev("skip", "d", 8.0)]
    spans = spans_from_events(events)
    assert [(s.trial, s.start, s.end, s.pid) for s in spans] == [
        ("a", 1.0, 3.0, 10), ("b", 2.0, 2.5, 11), ("b", 4.0, None, 12), ("c", 5.0, None, 10), ("c", 6.0, 7.0, 13)]


def test_running_at_once_over_the_middle_half():
    # two slots: a ramp (one trial alone for 2 s), then both busy, then one alone at the end
    spans = [Span("a", 0.0, 4.0, 1), Span("b", 2.0, 6.0, 2), Span("c", 4.0, 8.0, 1), Span("d", 6.0, 10.0, 2),
             Span("e", 8.0, 10.0, 1)]
    curve = running_curve(spans)
    assert max(n for _, n in curve) == 2
    assert mean_running(curve, 0.0, 2.0) == pytest.approx(1.0)
    assert mean_running(curve, 2.5, 7.5) == pytest.approx(2.0)
    assert mean_running(curve, 0.0, 10.0) == pytest.approx(1.8)  # 18 trial-seconds over 10 s
    occ = occupancy(spans, slots=2, t0=-3.0)
    assert (occ.peak, occ.trials, occ.workers) == (2, 5, 2)
    assert occ.mean_middle == pytest.approx(2.0)  # over [2.5, 7.5]
    assert occ.first_start_s == pytest.approx(3.0) and occ.all_busy_s == pytest.approx(5.0)


def test_an_end_and_a_start_at_the_same_instant_are_not_two_at_once():
    spans = [Span("a", 0.0, 1.0, 1), Span("b", 1.0, 2.0, 1)]
    occ = occupancy(spans, slots=2, t0=0.0)
    assert occ.peak == 1 and occ.all_busy_s is None and occ.workers == 1


def test_spans_are_read_from_the_attempt_records(tmp_path):
    storage = Storage(tmp_path)
    t = PlannedTrial("tune", "source", "mnli", 1)
    record_attempt(storage, t, "start", pid=7)
    record_attempt(storage, t, "end")
    (span,) = stage_spans(storage, [t, PlannedTrial("tune", "source", "mnli", 2)])
    assert span.trial == t.key and span.pid == 7 and span.end >= span.start
