"""The Tune function trainable: one grid point -> TrialConfig -> the engine's run_trial -> tune.report.

The trial's work folder is the unit of resume. A finished trial (result.json "done" for this exact config) is
reported again and never retrained; an unfinished one continues from the state in its folder, or, when the folder
is gone or stale (another node, remote storage), from Tune's latest checkpoint, which is a copy of that folder.
"""

from __future__ import annotations

import math
import os
import platform
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray
from ray import tune

from itsel_ray.artifacts import TrialFiles, read_json, write_json
from itsel_ray.sweep.config import Sweep
from itsel_ray.engine import get_engine
from itsel_ray.sweep.plan import PlannedTrial, trial_from_config
from itsel_ray.sweep.records import MARKER, expected_fingerprint
from itsel_ray.sweep.storage import Storage, scratch_dir


class InjectedFailure(RuntimeError):
    """Raised once per trial when the sweep's testing.fail_once_at_step asks for it."""


@dataclass(frozen=True)
class StageContext:
    """What every trial of a stage shares; shipped once through the object store by tune.with_parameters."""

    sweep: Sweep
    stage: str
    storage_root: str
    source_index: dict = field(default_factory=dict)  # transfer: {source: {seed, step, score, sha256, ...}}


def sweep_trial(config: dict, *, ctx: StageContext, prompts: dict | None = None) -> None:
    """Tune entry point. `prompts` maps each source to the ObjectRef of its best prompt (transfer only)."""
    trial = trial_from_config(ctx.sweep, ctx.stage, config)
    storage = Storage(ctx.storage_root)
    cfg = ctx.sweep.trial_config(trial.role, task=trial.task, seed=trial.seed, source=trial.source or None)
    expected = expected_fingerprint(ctx.sweep, trial, ctx.source_index)
    work = scratch_dir(ctx.sweep.name, trial.key) if storage.remote else storage.local(trial.key)

    finished = _finished_record(storage, trial, expected)
    if finished is not None:
        _event(storage, trial, "skip", steps=finished.get("steps"))
        tune.report(_final_metrics(trial, finished))
        return

    stale = _set_aside_stale(storage, trial, work, expected)
    resumed = _prepare_work_dir(work, expected)
    write_json(work / MARKER, {"fingerprint": expected, "trial": trial.key, "stage": trial.stage,
                               "source_prompt": ctx.source_index.get(trial.source) if trial.source else None})
    _event(storage, trial, "start", resumed_from_step=resumed, host=socket.gethostname(), pid=os.getpid(),
           omp_threads=os.environ.get("OMP_NUM_THREADS"), set_aside=stale)
    init = ray.get(prompts[trial.source]) if trial.stage == "transfer" else None
    reporter = _Reporter(ctx, trial, storage, work)
    try:
        get_engine(ctx.sweep.spec.engine).run_trial(cfg, work, report=reporter, init_prompt=init)
    except BaseException as err:
        _event(storage, trial, "error", error=f"{type(err).__name__}: {err}", step=reporter.last_step)
        _publish(storage, trial, work)
        raise
    _publish(storage, trial, work)
    _event(storage, trial, "end", steps=reporter.last_step)


def _finished_record(storage: Storage, trial: PlannedTrial, expected: str | None) -> dict | None:
    marker = storage.read_json(f"{trial.key}/{MARKER}")
    if not marker or marker.get("fingerprint") != expected:
        return None
    result = storage.read_json(f"{trial.key}/{TrialFiles.RESULT}")
    return result if result and result.get("status") == "done" else None


def _set_aside_stale(storage: Storage, trial: PlannedTrial, work: Path, expected: str | None) -> str | None:
    """A local trial folder left by another config of this sweep is moved to _stale/, never deleted."""
    if storage.remote or not work.exists():
        return None
    try:
        marker = read_json(work / MARKER)
    except (OSError, ValueError):
        marker = {}
    if marker.get("fingerprint") == expected:
        return None
    if not any(work.iterdir()):
        return None
    dest = storage.local(f"_stale/{trial.key}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    work.rename(dest)
    return str(dest)


def _prepare_work_dir(work: Path, expected: str | None) -> int | None:
    """Make `work` hold this trial's latest resumable state; returns the step it resumes from (None: fresh)."""
    if not _holds(work, expected):
        shutil.rmtree(work, ignore_errors=True)
        checkpoint = tune.get_checkpoint()
        if checkpoint is not None:
            work.mkdir(parents=True, exist_ok=True)
            checkpoint.to_directory(str(work))
            if not _holds(work, expected):  # a checkpoint of another config: start over
                shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    if not (work / TrialFiles.STATE).is_file():
        return None
    try:
        return int(read_json(work / TrialFiles.RESULT).get("steps"))
    except (OSError, ValueError, TypeError):
        return -1  # state without a readable record: the engine still resumes from state.pt


def _holds(work: Path, expected: str | None) -> bool:
    try:
        marker = read_json(work / MARKER)
    except (OSError, ValueError):
        return False
    return marker.get("fingerprint") == expected and (work / TrialFiles.STATE).is_file()


def _publish(storage: Storage, trial: PlannedTrial, work: Path) -> None:
    """Remote storage: upload the trial folder (local storage trains in place)."""
    if storage.remote:
        storage.upload_dir(work, trial.key)


class _Reporter:
    """The engine's report callback: forwards to tune.report, with the work folder as the checkpoint."""

    def __init__(self, ctx: StageContext, trial: PlannedTrial, storage: Storage, work: Path):
        self.trial, self.storage, self.work = trial, storage, work
        testing = ctx.sweep.spec.testing
        self.fail_at = testing.fail_once_at_step
        if self.fail_at is not None and testing.fail_trials and trial.key not in testing.fail_trials:
            self.fail_at = None
        self.delay = testing.report_delay_s
        self.last_step: int | None = None

    def __call__(self, metrics: dict, checkpointed: bool) -> None:
        self.last_step = int(metrics.get("step", 0))
        checkpoint = tune.Checkpoint.from_directory(str(self.work)) if checkpointed else None
        tune.report(_tune_metrics(self.trial, metrics), checkpoint=checkpoint)
        if self.delay:
            time.sleep(self.delay)
        if self.fail_at is not None and self.last_step >= self.fail_at and checkpointed:
            marker = f"_testing/{self.trial.stage}/{self.trial.name}.failed"
            if not self.storage.exists(marker):
                self.storage.write_json(marker, {"step": self.last_step, "host": platform.node()})
                raise InjectedFailure(f"injected failure at step {self.last_step} (testing.fail_once_at_step)")


def _tune_metrics(trial: PlannedTrial, metrics: dict) -> dict:
    """Flat scalars for Tune; the engine's `done` is renamed, since Tune reads `done` as 'stop this trial'."""
    out: dict[str, Any] = {"trial": trial.key}
    for k, v in metrics.items():
        if k == "done":
            out["trial_done"] = bool(v)
        elif v is None:
            out[k] = math.nan
        elif isinstance(v, (int, float, str, bool)):
            out[k] = v
    return out


def _final_metrics(trial: PlannedTrial, result: dict) -> dict:
    metrics = {"step": result.get("steps"), "score": result.get("best_score"), "best_score": result.get("best_score"),
               "best_step": result.get("best_step"), "wall_s": result.get("wall_s"), "done": True,
               "skipped": True, **{f"eval_{k}": v for k, v in (result.get("best_metrics") or {}).items()}}
    return _tune_metrics(trial, metrics)


def _event(storage: Storage, trial: PlannedTrial, kind: str, **fields) -> None:
    """An append-only audit of trial attempts (one small file per event), for humans and the resume tests."""
    stamp = time.time_ns()
    try:
        storage.write_json(f"events/{trial.stage}/{trial.name}/{stamp}-{kind}.json",
                           {"kind": kind, "trial": trial.key, "time": stamp / 1e9, **fields})
    except OSError:
        pass  # the audit must never fail a trial
