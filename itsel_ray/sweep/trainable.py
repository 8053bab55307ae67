"""The Tune function trainable: one grid point -> TrialConfig -> the engine's run_trial -> tune.report.

The trial folder on storage is the unit of resume, so Tune keeps no checkpoints: a finished trial (result.json
"done" for this exact config) is reported again and never retrained; an unfinished one continues from the state in
its folder, whichever node runs it. A damaged file is mended before the engine starts (the marker and result.json
from the other files); a resume state that cannot be read at all is set aside under _stale/ and the trial starts
over, with the reason in the trial's events. On remote storage (s3://...) the trial trains in a node-local scratch
folder, downloaded from storage on resume, and uploads each file that changed after every evaluation; it reads the
prepared data from a node-local copy fetched once per node.
"""

from __future__ import annotations

import hashlib
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

from itsel_ray.artifacts import StateError, TrialFiles, read_json, write_json
from itsel_ray.data.cache import CACHE_ENV
from itsel_ray.engine import get_engine
from itsel_ray.environment import describe
from itsel_ray.runs.attempts import record_attempt
from itsel_ray.runs.plan import PlannedTrial, trial_from_config
from itsel_ray.runs.prepared import local_cache
from itsel_ray.runs.provenance import record_environment
from itsel_ray.runs.storage import Storage, scratch_dir
from itsel_ray.runs.sweep_spec import Sweep
from itsel_ray.runs.trial_state import MARKER, expected_fingerprint, marker_record, read_record, trial_config


def keep_credentials_out_of_ray() -> None:
    """Ray Tune copies the driver's AWS_* credentials into every trial actor's runtime env, which Ray logs in plain
    text (runtime_env_agent.log, on every node) and shows on the dashboard's Actors page. Trials take credentials
    the way every other process of their node does instead: inherited from the driver on a local instance, the
    node's own (an instance profile) on a cluster."""
    try:
        from ray.tune.execution import class_cache
    except ImportError:
        return
    class_cache.ENV_VARS_TO_PROPAGATE = frozenset(
        v for v in class_cache.ENV_VARS_TO_PROPAGATE if not v.startswith("AWS_"))


keep_credentials_out_of_ray()


class InjectedFailure(RuntimeError):
    """Raised once per trial when the sweep's testing.fail_once_at_step asks for it."""


@dataclass(frozen=True)
class StageContext:
    """What every trial of a stage shares; shipped once through the object store by tune.with_parameters."""

    sweep: Sweep
    stage: str
    storage_root: str
    source_index: dict = field(default_factory=dict)  # transfer: {source: {seed, step, score, sha256, ...}}
    data_cache: str | None = None  # the prepared data the engine memory-maps: a folder or a store URI
    prepared: dict = field(default_factory=dict)  # store: {task: {stored folder: version}} (runs/prepared.py)


def sweep_trial(config: dict, *, ctx: StageContext, prompts: dict | None = None) -> None:
    """Tune entry point. `prompts` maps each source to the ObjectRef of its best prompt (transfer only)."""
    trial = trial_from_config(ctx.sweep, ctx.stage, config)
    storage = Storage(ctx.storage_root)
    engine = get_engine(ctx.sweep.spec.engine)
    cfg = trial_config(ctx.sweep, trial)
    expected = expected_fingerprint(ctx.sweep, trial, ctx.source_index)
    record = read_record(storage, ctx.sweep, trial, expected, index=ctx.source_index,
                         recover=engine.recover_record)
    if record.note:
        record_attempt(storage, trial, "repair", note=record.note)
    if record.status == "done":
        record_attempt(storage, trial, "skip", steps=record.result.get("steps"))
        announce(trial, ctx.sweep.name, "skipped: already done")
        tune.report(_final_metrics(trial, record.result))
        return

    work = _scratch(ctx, trial) if storage.remote else storage.local(trial.key)
    stale = _set_aside_stale(storage, trial, work, expected, why="another config")
    stored = _download(storage, trial, work, expected) if storage.remote else {}
    if (work / MARKER).is_file() and _unreadable(work / TrialFiles.CONFIG):  # the marker proves the config
        write_json(work / TrialFiles.CONFIG, {"config": cfg.to_dict(), "rebuilt": "from the trial's marker"})
        record_attempt(storage, trial, "repair", note=f"{TrialFiles.CONFIG} was damaged; rewritten from the config")
    write_json(work / MARKER, marker_record(trial, expected, ctx.source_index.get(trial.source)
                                            if trial.source else None))
    if ctx.data_cache:  # where the engine finds the prepared data (a store's: this node's copy, fetched once)
        os.environ[CACHE_ENV] = local_cache(ctx.data_cache, ctx.prepared.get(cfg.task, {}))
    init = ray.get(prompts[trial.source]) if trial.stage == "transfer" else None
    reporter = _Reporter(ctx, trial, storage, work, stored)
    resumed = _resume_step(work)
    record_attempt(storage, trial, "start", resumed_from_step=resumed, host=socket.gethostname(),
                   node=ray.get_runtime_context().get_node_id(), pid=os.getpid(),
                   omp_threads=os.environ.get("OMP_NUM_THREADS"), set_aside=stale, env=describe())
    started = time.time()
    announce(trial, ctx.sweep.name, "starts" + (f", resumed from step {resumed}" if resumed else ""))
    try:
        try:
            engine.run_trial(cfg, work, report=reporter, init_prompt=init)
        except StateError as err:  # nothing to resume from: start over, keeping the unreadable folder aside
            moved = _set_aside_stale(storage, trial, work, None, why="unreadable state")
            record_attempt(storage, trial, "restart", reason=str(err), set_aside=moved)
            work.mkdir(parents=True, exist_ok=True)
            write_json(work / MARKER, marker_record(trial, expected, ctx.source_index.get(trial.source)
                                                    if trial.source else None))
            engine.run_trial(cfg, work, report=reporter, init_prompt=init)
    except BaseException as err:
        env = record_environment(work)  # what the engine ran with, its libraries loaded
        record_attempt(storage, trial, "error", error=f"{type(err).__name__}: {err}", step=reporter.last_step,
                       environment=env["fingerprint"])
        announce(trial, ctx.sweep.name, f"stopped at step {reporter.last_step} after {time.time() - started:.1f}s: "
                                        f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
        reporter.upload()
        raise
    env = record_environment(work)
    reporter.upload()
    record_attempt(storage, trial, "end", steps=reporter.last_step, environment=env["fingerprint"])
    announce(trial, ctx.sweep.name, f"done at step {reporter.last_step} in {time.time() - started:.1f}s")
    if storage.remote:  # everything is stored: the node keeps no copy of a finished trial
        shutil.rmtree(work, ignore_errors=True)


def named_trainable(fn, *, sweep: Sweep, stage: str, reuse: bool):
    """`fn` (the trial function, with its parameters) as a Tune trainable class whose actors the dashboard's Actors
    page can tell apart: Ray shows an actor's repr, taken once when the actor starts. Without actor reuse each
    trial has its own actor, named by the trial's key ("transfer/<source>__<target>/seed=<seed>"); with reuse an
    actor runs trial after trial, so it is named for its stage and its log names each trial."""
    from ray.tune.trainable.function_trainable import wrap_function

    base = wrap_function(fn)

    class SweepTrial(base):
        def __repr__(self):
            if reuse:
                return f"itsel-ray {sweep.name} {stage} (trials run one after another: see its log)"
            try:
                return trial_from_config(sweep, stage, self.config).key
            except Exception:  # no config yet
                return f"itsel-ray {sweep.name} {stage}"

    SweepTrial.__name__ = SweepTrial.__qualname__ = "SweepTrial"
    return SweepTrial


def trial_line(trial: PlannedTrial, sweep: str, what: str) -> str:
    """The line that opens and the one that closes a trial in its actor's log (the dashboard's Actors page): the
    trial's key, sweep, stage, task, source and seed, and what happened."""
    source = f", source {trial.source}" if trial.source else ""
    return (f"[itsel-ray] trial {trial.key} {what} (sweep {sweep}, stage {trial.stage}, {trial.role} task "
            f"{trial.task}{source}, seed {trial.seed}, pid {os.getpid()})")


def announce(trial: PlannedTrial, sweep: str, what: str) -> None:
    """Print the trial's line to the actor's stdout (Ray's worker log; Tune also copies it to the trial's own)."""
    print(trial_line(trial, sweep, what), flush=True)


def _scratch(ctx: StageContext, trial: PlannedTrial) -> Path:
    """The node-local folder of a trial on remote storage, one per storage location (two sweeps of one name on two
    buckets never share one)."""
    digest = hashlib.sha256(ctx.storage_root.encode()).hexdigest()[:12]
    return scratch_dir(f"{ctx.sweep.name}-{digest}", trial.key)


def _unreadable(path: Path) -> bool:
    if not path.is_file():
        return True
    try:
        read_json(path)
        return False
    except (OSError, ValueError):
        return True


def _resume_step(work: Path) -> int | None:
    """The step the engine resumes from (None: a fresh start)."""
    files = TrialFiles(work)
    if not files.state_candidates():
        return None
    try:
        return int(read_json(files.result).get("steps"))
    except (OSError, ValueError, TypeError, AttributeError):
        return -1  # state without a readable record: the engine still resumes from its state


def _set_aside_stale(storage: Storage, trial: PlannedTrial, work: Path, expected: str | None, *, why: str) -> str | None:
    """Move a folder that is not this config's (or whose state is unreadable) to _stale/, never delete it."""
    if not work.exists() or not any(work.iterdir()):
        return None
    if expected is not None:
        try:
            if read_json(work / MARKER).get("fingerprint") == expected:
                return None
        except (OSError, ValueError, AttributeError):
            pass
    stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    if storage.remote:
        shutil.rmtree(work, ignore_errors=True)  # scratch only; the stored copy is replaced as the trial trains
        return None
    dest = storage.local(f"_stale/{trial.key}-{stamp}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    work.rename(dest)
    (dest / "SET_ASIDE").write_text(f"set aside: {why}\n")
    return storage.relative(str(dest))


def _download(storage: Storage, trial: PlannedTrial, work: Path, expected: str | None) -> dict:
    """Remote storage: scratch becomes this config's stored folder (or empty). What scratch held is never trusted:
    the trial may have gone on on another node since, and the stored folder is what the last checkpoint put.
    Returns the stamps of the files fetched, which need no upload until they change."""
    shutil.rmtree(work, ignore_errors=True)
    stored = storage.read_json(f"{trial.key}/{MARKER}") or {}
    if stored.get("fingerprint") == expected:
        storage.download_dir(trial.key, work)
    work.mkdir(parents=True, exist_ok=True)
    return _stamps(work)


def _stamps(work: Path) -> dict[str, tuple[int, int]]:
    """{relative path: (mtime, size)} of the folder's files: what the store holds right after a download."""
    return {p.relative_to(work).as_posix(): (p.stat().st_mtime_ns, p.stat().st_size)
            for p in work.rglob("*") if p.is_file() and not p.name.startswith(".")}


class _Reporter:
    """The engine's report callback: forwards metrics to tune.report (no Tune checkpoint: the folder is the state)."""

    def __init__(self, ctx: StageContext, trial: PlannedTrial, storage: Storage, work: Path,
                 stored: dict | None = None):
        self.trial, self.storage, self.work = trial, storage, work
        testing = ctx.sweep.spec.testing
        self.fail_at = testing.fail_once_at_step
        if self.fail_at is not None and testing.fail_trials and trial.key not in testing.fail_trials:
            self.fail_at = None
        self.delay = testing.report_delay_s
        self.last_step: int | None = None
        self._uploaded: dict[str, tuple[int, int]] = dict(stored or {})  # what the store already holds

    def __call__(self, metrics: dict, checkpointed: bool) -> None:
        self.last_step = int(metrics.get("step", 0))
        if checkpointed:
            self.upload()
        tune.report(_tune_metrics(self.trial, metrics))
        if self.delay:
            time.sleep(self.delay)
        if self.fail_at is not None and self.last_step >= self.fail_at and checkpointed:
            marker = f"_testing/{self.trial.stage}/{self.trial.name}.failed"
            if not self.storage.exists(marker):
                self.storage.write_json(marker, {"step": self.last_step, "host": platform.node()})
                raise InjectedFailure(f"injected failure at step {self.last_step} (testing.fail_once_at_step)")

    def upload(self) -> None:
        """Remote storage: put every file of the folder that changed since the last upload (one object each)."""
        if not self.storage.remote:
            return
        for path in sorted(self.work.rglob("*")):
            if not path.is_file() or path.name.startswith("."):
                continue
            rel = path.relative_to(self.work).as_posix()
            stat = path.stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
            if self._uploaded.get(rel) != stamp:
                self.storage.upload_file(path, f"{self.trial.key}/{rel}")
                self._uploaded[rel] = stamp


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
