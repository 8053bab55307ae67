"""Which environment each trial ran in: <trial>/environment.json, and results/environments.json for the sweep.

A trial folder's environment.json lists every distinct environment (`itsel_ray.environment.describe`, one entry per
fingerprint) that trained it: one when it ran in one go, two when it was resumed on another kind of machine. The
sweep layer writes it after the engine returns (or fails), whatever the engine, so the record holds the libraries
the engine loaded and the thread count it ran with. The results table names each trial's fingerprint(s), and
results/environments.json describes every fingerprint with the number of trials it produced; the analysis report
states them and says when the results mix environments. No Ray here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from itsel_ray.artifacts import read_json, write_json
from itsel_ray.environment import describe, summary
from itsel_ray.runs.storage import Storage

ENV_FILE = "environment.json"
ENVIRONMENTS = "environments.json"  # under the results folder


def record_environment(work: Path) -> dict[str, Any]:
    """Add this process's environment to `work`/environment.json unless its fingerprint is already there; returns
    it. Never fails a trial: an unwritable or unreadable file is replaced or skipped."""
    env = describe()
    path = Path(work) / ENV_FILE
    try:
        runs = read_json(path).get("environments", []) if path.is_file() else []
    except (OSError, ValueError, AttributeError):
        runs = []
    if env["fingerprint"] not in {r.get("fingerprint") for r in runs if isinstance(r, dict)}:
        try:
            write_json(path, {"environments": [*runs, env]})
        except OSError:
            pass
    return env


def trial_environments(storage: Storage, key: str) -> list[dict[str, Any]]:
    """The environments recorded in trial folder `key` (empty when none was)."""
    record = storage.read_json(f"{key}/{ENV_FILE}")
    runs = record.get("environments") if isinstance(record, dict) else None
    return [r for r in runs or [] if isinstance(r, dict) and r.get("fingerprint")]


def environments_table(per_trial: Iterable[list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """fingerprint -> {"summary", "trials" (how many trials ran in it), "environment" (the full record)}, most
    trials first."""
    out: dict[str, dict[str, Any]] = {}
    for runs in per_trial:
        for env in runs:
            entry = out.setdefault(env["fingerprint"], {"summary": summary(env), "trials": 0, "environment": env})
            entry["trials"] += 1
    return dict(sorted(out.items(), key=lambda kv: -kv[1]["trials"]))
