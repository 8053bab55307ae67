"""One Tune `Tuner` per stage run: tune (sources and targets), then transfer (source x target x seed).

Each run of a stage is a fresh Tune experiment over exactly the trials storage does not yet hold as finished
(<sweep>/ray_tune/<stage>-<time>/), so nothing Tune saved earlier is ever restored, and so no file on storage is
unpickled: a rerun after a crash, a kill or a changed plan is a new experiment, and the trial folders carry every
trial's state. Tune keeps no trial checkpoints (the folders are the state) and saves its experiment state only
every EXPERIMENT_STATE_S, so the driver's cost per trial does not grow with the size of the sweep. Tune gets the
trials one at a time from the plan and runs a retried trial (a lost node, a crash) before any new one; with actor
reuse every slot stays busy for trials of any length (itsel_ray/sweep/scheduling.py).
"""

from __future__ import annotations

import os
import socket
import statistics
import time
from dataclasses import dataclass, field

import ray
from ray import tune

from itsel_ray.runs.plan import plan_stage, trial_from_config
from itsel_ray.runs.prepared import trial_data
from itsel_ray.runs.resources import ClusterInfo, resource_plan, slots
from itsel_ray.runs.source_prompts import persist_source_prompts, source_index
from itsel_ray.runs.storage import Storage
from itsel_ray.runs.trial_state import read_stage
from itsel_ray.sweep.callbacks import StageProgress
from itsel_ray.sweep.stopper import NO_TUNE_HANDLER
from itsel_ray.sweep.scheduling import (PENDING_ENV, OpenOnFirstStart, PlanQueue, RecoveredFirst, environment,
                                        pending_window)
from itsel_ray.sweep.trainable import StageContext, named_trainable, sweep_trial

TUNE_DIR = "ray_tune"
EXPERIMENT_STATE_S = "900"  # Tune's experiment snapshot: only for Tune's own tools, never restored here


@dataclass
class StageOutcome:
    stage: str
    total: int
    done: int = 0
    failed: list = field(default_factory=list)
    unfinished: list = field(default_factory=list)
    damaged: list = field(default_factory=list)
    trial_s: float | None = None  # the median wall time of the finished trials (what a resumed run's ETA starts from)
    step_s: float | None = None  # the median wall time per training step of the finished trials

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


def outcome(sweep, storage: Storage, stage: str, *, recover=None) -> StageOutcome:
    index = source_index(sweep, storage).entries if stage == "transfer" else None
    records = read_stage(sweep, storage, plan_stage(sweep, stage), index=index, recover=recover)
    finished = [r.result for r in records if r.status == "done" and r.result and r.result.get("wall_s") is not None]
    walls = [float(r["wall_s"]) for r in finished]
    per_step = [float(r["wall_s"]) / int(r["steps"]) for r in finished if int(r.get("steps") or 0) > 0]
    return StageOutcome(stage, len(records), done=sum(r.status == "done" for r in records),
                        failed=[r.trial.key for r in records if r.status == "failed"],
                        unfinished=[r.trial.key for r in records if r.status in ("pending", "running", "damaged")],
                        damaged=[r.trial.key for r in records if r.status == "damaged"],
                        trial_s=statistics.median(walls) if walls else None,
                        step_s=statistics.median(per_step) if per_step else None)


class _Requests:
    """Each trial's placement group: its CPUs and its task's GPU share (picklable, unlike a closure)."""

    def __init__(self, sweep, stage: str, plan):
        self.sweep, self.stage, self.plan = sweep, stage, plan

    def __call__(self, config: dict) -> tune.PlacementGroupFactory:
        t = trial_from_config(self.sweep, self.stage, config)
        request = self.plan.request(t.role, t.task)
        bundle = {"CPU": request["cpu"], **({"GPU": request["gpu"]} if request["gpu"] else {})}
        return tune.PlacementGroupFactory([bundle])


def _trial_name(trial) -> str:
    run = trial.config["run"]
    prefix = f"{run['source']}__" if run.get("source") else ""
    return f"{prefix}{run['task']}_seed={run['seed']}"


def run_stage(sweep, stage: str, storage: Storage, cluster: ClusterInfo, *, max_concurrent: int | None = None,
              verbose: int = 0, console=None, callbacks=(), recover=None,
              before: StageOutcome | None = None, later: float = 0.0, stops=None,
              prior_s: float | None = None) -> StageOutcome:
    """Run the stage's unfinished trials in a fresh Tuner and return what storage says afterwards (`before`: what
    storage said just now, when the caller has read it; `later`: the trials the command runs after this stage,
    in this stage's trial lengths, for the command's ETA; `prior_s`: a trial's duration guessed from another stage,
    used for the ETA until one of this stage's trials finished; `stops`: the driver's StopRequests, which end the
    experiment on Ctrl-C or SIGTERM instead of Tune's own handler)."""
    before = before or outcome(sweep, storage, stage, recover=recover)
    todo_keys = set(before.unfinished) | set(before.failed)
    trials = [t for t in plan_stage(sweep, stage) if t.key in todo_keys]
    plan = resource_plan(sweep, cluster)
    extra, index = {}, {}
    if stage == "transfer":
        prompts, index = persist_source_prompts(sweep, storage)
        extra["prompts"] = {source: ray.put(p) for source, p in prompts.items()}  # one put per source prompt
    ctx = StageContext(sweep=sweep, stage=stage, storage_root=storage.root, source_index=index,
                       **trial_data(sweep, storage))
    reuse = sweep.spec.execution.reuse_actors
    trainable = tune.with_resources(named_trainable(tune.with_parameters(sweep_trial, ctx=ctx, **extra), sweep=sweep,
                                                    stage=stage, reuse=reuse), _Requests(sweep, stage, plan))
    cap = max_concurrent or sweep.spec.execution.max_concurrent_trials
    fit = slots(plan, cluster, cap)
    run = f"{stage}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    progress = StageProgress(sweep, stage, storage.root, run=run, total=before.total, done_before=before.done,
                             todo=len(trials), slots=fit, console=console,
                             prior_s=before.trial_s or prior_s, later=later)
    progress.log.write("run", total=before.total, todo=len(trials), host=socket.gethostname(), pid=os.getpid(),
                       resources={f"{r}/{t}": m.share for (r, t), m in plan.tasks.items()}, cpu=plan.cpu,
                       cluster=cluster.describe(), max_concurrent=cap, slots=fit, reuse_actors=reuse)
    settings = {"TUNE_GLOBAL_CHECKPOINT_S": EXPERIMENT_STATE_S, PENDING_ENV: str(pending_window(fit))}
    if stops is not None:
        settings.update(NO_TUNE_HANDLER)
    if not verbose:  # Tune's new console output prints its experiment table even when silent; the old one does not
        settings["RAY_AIR_NEW_OUTPUT"] = "0"
    queue = PlanQueue(trials, head_start=min(fit, max(1, os.cpu_count() or 1)))
    tune_config = tune.TuneConfig(search_alg=queue, num_samples=max(1, len(trials)), reuse_actors=reuse,
                                  max_concurrent_trials=cap, scheduler=RecoveredFirst(newest_first=reuse),
                                  trial_name_creator=_trial_name, trial_dirname_creator=_trial_name)
    run_config = tune.RunConfig(
        name=run, storage_path=storage.path(TUNE_DIR),
        failure_config=tune.FailureConfig(max_failures=sweep.spec.execution.max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=None),
        sync_config=tune.SyncConfig(sync_artifacts=True),  # with log_to_file: stdout/stderr reach storage
        log_to_file=True, callbacks=[OpenOnFirstStart(queue), progress, *callbacks], verbose=verbose,
        stop=stops.stopper() if stops is not None else None)
    outcome_kind = "interrupted"
    try:
        with environment(**settings):  # Tune reads these when the Tuner runs
            if stops is not None:
                stops.in_stage = True
            try:
                tune.Tuner(trainable, tune_config=tune_config, run_config=run_config).fit()
            finally:
                if stops is not None:
                    stops.in_stage = False
        after = outcome(sweep, storage, stage, recover=recover)
        outcome_kind = "complete" if after.complete and not after.failed else (
            "failed" if after.complete else "interrupted")
        return after
    finally:
        if console is not None:
            console.progress(progress.line(), final=True)
        progress.log.write("end", outcome=outcome_kind)
        progress.log.flush()
