"""What storage says about one planned trial: finished, failed, running or not started, for *this* sweep's config.

A trial folder carries `sweep_trial.json`, the fingerprint of the TrialConfig (and, for transfer, of the source
prompt it started from). A folder whose fingerprint differs belongs to an older version of the sweep and counts as
not started; the engine's result.json is otherwise the source of truth. No Ray here.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass

from itsel_ray.artifacts import TrialFiles
from itsel_ray.trial_config import TrialConfig
from itsel_ray.sweep.plan import PlannedTrial
from itsel_ray.sweep.storage import Storage

MARKER = "sweep_trial.json"
SOURCE_PROMPTS = "source_prompts"


def fingerprint(cfg: TrialConfig, init_sha256: str | None = None) -> str:
    """A stable hash of everything that determines a trial's outcome."""
    blob = json.dumps({"config": cfg.to_dict(), "init_prompt": init_sha256}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass(frozen=True)
class TrialRecord:
    trial: PlannedTrial
    status: str  # "done" | "failed" | "running" | "pending"
    result: dict | None  # the engine's result.json when it belongs to this config
    folder: str  # full path or URI of the trial folder

    @property
    def score(self) -> float:
        if self.status != "done" or not self.result or self.result.get("best_score") is None:
            return math.nan
        return float(self.result["best_score"])


def source_index(storage: Storage) -> dict:
    """The persisted choice of each source's best prompt ({} before the transfer stage was prepared)."""
    return storage.read_json(f"{SOURCE_PROMPTS}/index.json") or {}


def expected_fingerprint(sweep, trial: PlannedTrial, index: dict | None = None) -> str | None:
    """The fingerprint this sweep expects in the trial's folder; None when it is not known yet (no source prompt)."""
    cfg = sweep.trial_config(trial.role, task=trial.task, seed=trial.seed, source=trial.source or None)
    if trial.stage != "transfer":
        return fingerprint(cfg)
    entry = (index or {}).get(trial.source)
    return fingerprint(cfg, entry["sha256"]) if entry else None


def read_record(storage: Storage, trial: PlannedTrial, expected: str | None) -> TrialRecord:
    folder = storage.path(trial.key)
    marker = storage.read_json(f"{trial.key}/{MARKER}")
    if expected is None or not marker or marker.get("fingerprint") != expected:
        return TrialRecord(trial, "pending", None, folder)
    result = storage.read_json(f"{trial.key}/{TrialFiles.RESULT}")
    if not result:
        return TrialRecord(trial, "running", None, folder)
    status = result.get("status")
    if status == "done" and result.get("best_score") is None:
        status = "failed"  # finished without a single finite evaluation: never a score of 0
    return TrialRecord(trial, status if status in ("done", "failed", "running") else "running", result, folder)


def read_stage(sweep, storage: Storage, trials: list[PlannedTrial]) -> list[TrialRecord]:
    index = source_index(storage) if any(t.stage == "transfer" for t in trials) else {}
    return [read_record(storage, t, expected_fingerprint(sweep, t, index)) for t in trials]
