"""The audit of trial attempts: <sweep>/events/<stage>/<trial>/<time>-<kind>.json, one small file per event.

Kinds: start (with the step it resumed from), end, skip (already finished for this config), error, repair (a
damaged file rebuilt) and restart (unusable state set aside). One object per event works the same on a folder and
on an object store, and writing one costs the same however many trials there are. No Ray here.
"""

from __future__ import annotations

import json
import time

from itsel_ray.runs.plan import PlannedTrial
from itsel_ray.runs.storage import Storage

EVENTS = "events"
KINDS = ("start", "end", "skip", "error", "repair", "restart")


def record_attempt(storage: Storage, trial: PlannedTrial, kind: str, **fields) -> None:
    """Append one event; the audit never fails a trial."""
    stamp = time.time_ns()
    try:
        storage.write_json(f"{EVENTS}/{trial.stage}/{trial.name}/{stamp}-{kind}.json",
                           {"kind": kind, "trial": trial.key, "time": stamp / 1e9, **fields})
    except OSError:
        pass


def read_attempts(storage: Storage, trial: PlannedTrial) -> list[dict]:
    """The trial's events, oldest first (unreadable ones skipped)."""
    out = []
    for key in storage.list_files(f"{EVENTS}/{trial.stage}/{trial.name}"):
        try:
            out.append(json.loads(storage.read_bytes(key) or b""))
        except ValueError:
            continue
    return sorted(out, key=lambda e: e.get("time", 0))
