"""What storage says about one planned trial: finished, failed, running, damaged or not started, for *this* config.

A trial folder carries `sweep_trial.json` (MARKER), the fingerprint of its TrialConfig and, for a transfer, of the
source prompt it started from. A folder whose fingerprint differs belongs to another version of the sweep and counts
as not started; otherwise the engine's result.json is the source of truth. A single damaged file that the others
can rebuild is rebuilt (the marker from config.json and the initial prompt; result.json from the engine's resume
state, through the engine's own `recover_record`), so a finished result is never lost to one bad file. No Ray.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from functools import partial
from typing import Callable

import numpy as np

from itsel_ray.artifacts import PromptFileError, TrialFiles, prompt_from_bytes
from itsel_ray.runs.plan import PlannedTrial
from itsel_ray.runs.storage import Storage
from itsel_ray.schema import short_repr
from itsel_ray.trial_config import TrialConfig

MARKER = "sweep_trial.json"
STATUSES = ("done", "failed", "running", "damaged", "pending")

# recover(cfg, work_folder) -> the engine's result record rebuilt from its resume state, or None
Recover = Callable[[TrialConfig, object], "dict | None"]


def fingerprint(cfg: TrialConfig, init_sha256: str | None = None) -> str:
    """A stable hash of everything that determines a trial's outcome."""
    blob = json.dumps({"config": cfg.identity(), "init_prompt": init_sha256}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def prompt_sha256(prompt: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(prompt, dtype=np.float32).tobytes()).hexdigest()


@dataclass(frozen=True)
class TrialRecord:
    trial: PlannedTrial
    status: str  # one of STATUSES
    result: dict | None  # the engine's result.json when it belongs to this config
    key: str  # the trial folder, relative to the sweep root
    note: str = ""  # what was damaged or rebuilt, for status and the tables

    @property
    def score(self) -> float:
        if self.status != "done" or not self.result or self.result.get("best_score") is None:
            return math.nan
        return float(self.result["best_score"])


def trial_config(sweep, trial: PlannedTrial) -> TrialConfig:
    return sweep.trial_config(trial.role, task=trial.task, seed=trial.seed, source=trial.source or None)


def expected_fingerprint(sweep, trial: PlannedTrial, index: dict | None = None) -> str | None:
    """The fingerprint this sweep expects in the trial's folder; None when it is not known yet (no source prompt)."""
    cfg = trial_config(sweep, trial)
    if trial.stage != "transfer":
        return fingerprint(cfg)
    entry = (index or {}).get(trial.source)
    return fingerprint(cfg, entry["sha256"]) if entry else None


def _same_trial(saved, cfg: TrialConfig) -> bool:
    try:
        return TrialConfig.from_dict(saved).identity() == cfg.identity()
    except (TypeError, ValueError):
        return False


def marker_record(trial: PlannedTrial, expected: str, source_prompt: dict | None = None) -> dict:
    return {"fingerprint": expected, "trial": trial.key, "stage": trial.stage, "source_prompt": source_prompt}


def read_marker(storage: Storage, sweep, trial: PlannedTrial, expected: "str | None | Callable[[], str | None]",
                index: dict | None = None) -> tuple[dict | None, str]:
    """The trial's marker and a note; a damaged marker is rebuilt when config.json (and, for a transfer, the
    initial prompt) prove that the folder belongs to this config."""
    marker, damaged = storage.read_json_checked(f"{trial.key}/{MARKER}")
    if not damaged:
        return marker, ""
    expected = expected() if callable(expected) else expected
    if expected is None:
        return None, f"{MARKER} is damaged"
    config, _ = storage.read_json_checked(f"{trial.key}/{TrialFiles.CONFIG}")
    if not config or not _same_trial(config.get("config"), trial_config(sweep, trial)):
        return None, f"{MARKER} is damaged and config.json does not prove the config"
    if trial.stage == "transfer":
        data = storage.read_bytes(f"{trial.key}/{TrialFiles.PROMPTS}/step_000000.safetensors")
        try:
            start = prompt_sha256(prompt_from_bytes(data or b"", name="initial prompt"))
        except PromptFileError:
            return None, f"{MARKER} is damaged and the initial prompt cannot prove the source"
        if start != ((index or {}).get(trial.source) or {}).get("sha256"):
            return None, f"{MARKER} is damaged and the initial prompt is not the source's"
    rebuilt = marker_record(trial, expected, (index or {}).get(trial.source) if trial.stage == "transfer" else None)
    if not storage.remote:
        storage.write_json(f"{trial.key}/{MARKER}", rebuilt)
    return rebuilt, f"{MARKER} was damaged; rebuilt from config.json"


def result_problem(result, task: str) -> str | None:
    """Why a finished result.json cannot be a real result, or None: its best_score must be a finite number inside
    the range of the task's metric (x100; [-100, 100] for a correlation, else [0, 100])."""
    if not isinstance(result, dict):
        return f"is a JSON {type(result).__name__}, not a record"
    if result.get("status") != "done" or result.get("best_score") is None:
        return None
    score = result["best_score"]
    if isinstance(score, bool) or not isinstance(score, (int, float)):
        return f"has best_score {short_repr(score)}, not a number"
    from itsel_ray.analysis.inputs import score_range

    low, high, why = score_range(task)
    if not (math.isfinite(score) and low <= score <= high):
        return f"has best_score {score!r}, outside the score range [{low:g}, {high:g}] ({why})"
    return None


def read_record(storage: Storage, sweep, trial: PlannedTrial, expected: "str | None | Callable[[], str | None]", *,
                index: dict | None = None, recover: Recover | None = None) -> TrialRecord:
    """The trial's state for this sweep's config. A result.json that is not JSON, larger than any record, or
    finished with a score that cannot be (NaN, outside the metric's range) is damaged: with `recover` (the driver)
    it is rebuilt from the engine's resume state and written back, else the trial is rerun; without it (status),
    the trial reads as damaged, with why. `expected` may be a function that computes the fingerprint: called only
    for a trial that has a marker."""
    marker, note = read_marker(storage, sweep, trial, expected, index)
    if marker:
        expected = expected() if callable(expected) else expected
    if expected is None or not marker or marker.get("fingerprint") != expected:
        return TrialRecord(trial, "pending", None, trial.key, note)
    result, why = storage.read_json_why(f"{trial.key}/{TrialFiles.RESULT}")
    if why is None and result is not None:
        why = result_problem(result, trial.task)
    if why is not None:
        rebuilt = recover(trial_config(sweep, trial), storage.local(trial.key)) if recover and not storage.remote \
            else None
        if rebuilt is None or result_problem(rebuilt, trial.task) is not None:
            return TrialRecord(trial, "damaged", None, trial.key,
                               f"{storage.path(trial.key)}/{TrialFiles.RESULT} {_phrase(why)} (a rerun rebuilds it "
                               "from the resume state, or reruns the trial)")
        storage.write_json(f"{trial.key}/{TrialFiles.RESULT}", rebuilt)
        result, note = rebuilt, f"result.json {_phrase(why)}; rebuilt from the resume state"
    if not result:
        return TrialRecord(trial, "running", None, trial.key, note)
    status = result.get("status")
    if status == "done" and result.get("best_score") is None:
        status = "failed"  # finished without a single finite evaluation: never a score of 0
    return TrialRecord(trial, status if status in ("done", "failed", "running") else "running", result, trial.key,
                       note)


def _phrase(why: str) -> str:
    """A damage reason as a predicate: "is damaged (not valid JSON)", "has best_score nan, ..."."""
    return why if why.startswith(("has ", "is a JSON")) else f"is damaged ({why})"


def read_stage(sweep, storage: Storage, trials: list[PlannedTrial], *, index: dict | None = None,
               recover: Recover | None = None) -> list[TrialRecord]:
    """Records of `trials`; transfer trials need the source index (source_prompts.source_index)."""
    if index is None and any(t.stage == "transfer" for t in trials):
        raise ValueError("reading transfer trials needs the source index (source_prompts.source_index)")
    # the fingerprint (most of the cost) only for trials with a folder: a stage of 39,000 not started reads in a second
    return [read_record(storage, sweep, t, partial(expected_fingerprint, sweep, t, index), index=index,
                        recover=recover) for t in trials]
