"""The trial plan of a sweep: which trials each stage runs, their stable folder names, and the config Tune gives each.

Pure (no Ray): `--dry-run`, `status`, the results table, the stage's trial queue and the tests all expand the same
plan. A trial's key is also its folder under the sweep root, stable across drivers and Ray versions:
    tune/<task>/seed=<s>                  source and target prompt tuning
    transfer/<source>__<target>/seed=<s>  a target tuned from a source's best prompt
Tune receives the plan one trial at a time (itsel_ray/sweep/scheduling.py), each as `trial_point(t)`, never as one
grid over all of them: Tune's grid expansion copies the whole grid once per value, quadratic in the trials.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from itsel_ray.runs.sweep_spec import Sweep
from itsel_ray.schema import ConfigError

STAGES = ("tune", "transfer")
RUN_STAGES = ("tune", "transfer", "analyze")


@dataclass(frozen=True)
class PlannedTrial:
    stage: str  # "tune" | "transfer"
    role: str  # "source" | "target" | "transfer"
    task: str  # the task trained on (transfer: the target)
    seed: int
    source: str = ""  # transfer only

    @property
    def target(self) -> str:
        return "" if self.role == "source" else self.task

    @property
    def key(self) -> str:
        """The trial's folder relative to the sweep root."""
        if self.stage == "transfer":
            return f"transfer/{self.source}__{self.task}/seed={self.seed}"
        return f"tune/{self.task}/seed={self.seed}"

    @property
    def name(self) -> str:
        """A one-segment name for Tune (trial names and dirnames may not contain '/')."""
        if self.stage == "transfer":
            return f"{self.source}__{self.task}_seed={self.seed}"
        return f"{self.task}_seed={self.seed}"


def plan_stage(sweep: Sweep, stage: str) -> list[PlannedTrial]:
    """The trials of `stage` in the sweep's order (sources, then targets; seeds as listed)."""
    g = sweep.grid
    if stage == "tune":
        return [PlannedTrial("tune", "source", t, s) for t in g.sources for s in g.source_seeds] + [
            PlannedTrial("tune", "target", t, s) for t in g.targets for s in g.target_seeds
        ]
    if stage == "transfer":
        return [
            PlannedTrial("transfer", "transfer", t, s, source=src)
            for src in g.sources for t in g.targets for s in g.target_seeds
        ]
    raise ValueError(f"unknown stage {stage!r}; valid: {', '.join(STAGES)}")


def trial_point(trial: PlannedTrial) -> dict:
    """The config Tune gives one trial: its (task, seed, source), which `trial_from_config` maps back to the trial."""
    return {"run": {"task": trial.task, "seed": trial.seed, "source": trial.source}}


def trial_from_config(sweep: Sweep, stage: str, config: Mapping[str, Any]) -> PlannedTrial:
    """The planned trial behind one Tune config (`trial_point`'s inverse)."""
    run = config["run"]
    task, seed, source = run["task"], int(run["seed"]), run.get("source") or ""
    if stage == "tune":
        return PlannedTrial("tune", "source" if task in sweep.grid.sources else "target", task, seed)
    return PlannedTrial("transfer", "transfer", task, seed, source=source)


def check_testing_keys(sweep: Sweep) -> None:
    """testing.fail_trials must name planned trials (a typo would silently inject nothing)."""
    keys = {t.key for stage in STAGES for t in plan_stage(sweep, stage)}
    for i, key in enumerate(sweep.spec.testing.fail_trials):
        if key not in keys:
            raise ConfigError(f"testing.fail_trials[{i}]: {key!r} is not a trial of this sweep in {sweep.path}")
