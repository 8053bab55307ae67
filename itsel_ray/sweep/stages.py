"""One Tune `Tuner` per stage, resumable: tune (sources and targets), then transfer (source x target x seed).

A stage's Tune experiment lives under <sweep>/ray_tune/<stage>-<plan hash>-<time>, recorded in <sweep>/<stage>/run.json.
Re-running the same command restores it (Tuner.restore with the trainable and param_space re-specified, so the
source-prompt ObjectRefs are fresh); a changed plan gets a new experiment, and the trial folders still skip every
trial already finished for the same config. Only this stage layer and the trainable talk to Tune.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field

import ray
from ray import tune

from itsel_ray.sweep.cluster import ClusterInfo, trial_resources
from itsel_ray.sweep.plan import param_space, plan_stage
from itsel_ray.sweep.progress import StageProgress
from itsel_ray.sweep.records import expected_fingerprint, read_stage
from itsel_ray.sweep.sources import persist_source_prompts
from itsel_ray.sweep.storage import Storage
from itsel_ray.sweep.trainable import StageContext, sweep_trial

TUNE_DIR = "ray_tune"


@dataclass
class StageOutcome:
    stage: str
    total: int
    done: int = 0
    failed: list = field(default_factory=list)
    unfinished: list = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.unfinished

    def line(self) -> str:
        text = f"[{self.stage}] {self.done}/{self.total} done"
        if self.failed:
            text += f", {len(self.failed)} failed: {', '.join(self.failed[:5])}{' ...' if len(self.failed) > 5 else ''}"
        if self.unfinished:
            text += f", {len(self.unfinished)} unfinished"
        return text


def outcome(sweep, storage: Storage, stage: str) -> StageOutcome:
    records = read_stage(sweep, storage, plan_stage(sweep, stage))
    return StageOutcome(stage, len(records), done=sum(r.status == "done" for r in records),
                        failed=[r.trial.key for r in records if r.status == "failed"],
                        unfinished=[r.trial.key for r in records if r.status in ("pending", "running")])


def plan_hash(sweep, stage: str, index: dict) -> str:
    items = [(t.key, expected_fingerprint(sweep, t, index)) for t in plan_stage(sweep, stage)]
    return hashlib.sha256(json.dumps(items).encode()).hexdigest()[:10]


def _trial_name(trial) -> str:
    c = trial.config
    if "run" in c:
        return f"{c['run']['task']}_seed={c['run']['seed']}"
    return f"{c['source']}__{c['target']}_seed={c['seed']}"


def run_stage(sweep, stage: str, storage: Storage, cluster: ClusterInfo, *, max_concurrent: int | None = None,
              verbose: int = 1) -> StageOutcome:
    """Run (or resume) the stage's Tuner and return what storage says afterwards."""
    request = trial_resources(sweep.spec.resources, cluster, sweep_name=sweep.name)
    extra, index = {}, {}
    if stage == "transfer":
        prompts, index = persist_source_prompts(sweep, storage)
        extra["prompts"] = {source: ray.put(p) for source, p in prompts.items()}  # one put per source prompt
    ctx = StageContext(sweep=sweep, stage=stage, storage_root=storage.root, source_index=index)
    trainable = tune.with_resources(tune.with_parameters(sweep_trial, ctx=ctx, **extra), request)
    space = param_space(sweep, stage)
    cap = max_concurrent or sweep.spec.execution.max_concurrent_trials
    digest = plan_hash(sweep, stage, index)
    previous = storage.read_json(f"{stage}/run.json") or {}
    exp_path = previous.get("experiment")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")  # tiny sweeps only
    if (exp_path and previous.get("plan_hash") == digest and tune.Tuner.can_restore(exp_path)
            and not _stale(sweep, storage, stage)):
        print(f"[{stage}] resuming {exp_path}", flush=True)
        if previous.get("max_concurrent_trials") != cap:
            print(f"[{stage}] note: a resumed stage keeps its first concurrency cap "
                  f"({previous.get('max_concurrent_trials')})", flush=True)
        tuner = tune.Tuner.restore(exp_path, trainable, resume_errored=True, param_space=space)
    else:
        name = f"{stage}-{digest}-{time.strftime('%Y%m%d-%H%M%S')}"
        exp_path = storage.path(f"{TUNE_DIR}/{name}")
        storage.write_json(f"{stage}/run.json", {"experiment": exp_path, "plan_hash": digest,
                                                 "max_concurrent_trials": cap, "resources_per_trial": request,
                                                 "cluster": cluster.describe(), "started_at": time.time()})
        tuner = tune.Tuner(trainable, param_space=space, tune_config=_tune_config(sweep, cap),
                           run_config=_run_config(sweep, stage, storage, name, verbose))
    tuner.fit()
    return outcome(sweep, storage, stage)


def _stale(sweep, storage: Storage, stage: str) -> bool:
    """True when Tune thinks a trial finished that storage does not hold (e.g. its folder was deleted): the old
    experiment would never rerun it, so a fresh experiment is needed (finished trials are still skipped)."""
    tune_says = (storage.read_json(f"{stage}/progress.json") or {}).get("trials", {})
    return any(tune_says.get(key) == "done" for key in outcome(sweep, storage, stage).unfinished)


def _tune_config(sweep, cap: int | None) -> tune.TuneConfig:
    return tune.TuneConfig(reuse_actors=sweep.spec.execution.reuse_actors, max_concurrent_trials=cap,
                           trial_name_creator=_trial_name, trial_dirname_creator=_trial_name)


def _run_config(sweep, stage: str, storage: Storage, name: str, verbose: int) -> tune.RunConfig:
    ex = sweep.spec.execution
    progress = StageProgress(sweep, stage, storage.root, total=len(plan_stage(sweep, stage)))
    return tune.RunConfig(
        name=name,
        storage_path=storage.path(TUNE_DIR),
        failure_config=tune.FailureConfig(max_failures=ex.max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=ex.checkpoints_to_keep),
        sync_config=tune.SyncConfig(sync_artifacts=True),  # with log_to_file: stdout/stderr reach storage
        log_to_file=True,
        callbacks=[progress],
        verbose=verbose,
    )

