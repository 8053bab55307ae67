"""Sweep files (sweeps/*.yaml) -> one validated, frozen `Sweep`.

A sweep file lists only what it changes; it is merged over sweeps/defaults.yaml and parsed with the strict
`from_dict` of itsel_ray/schema.py, so an unknown key, a bad type or an unknown task fails with the key and the file
before anything starts. No Ray here: `--dry-run`, `status` and the tests use it without a cluster.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import yaml

from itsel_ray.trial_config import DataConfig, ModelConfig, OptimConfig, PromptConfig, TrainConfig, TrialConfig

from itsel_ray.schema import ConfigError
from itsel_ray.engine import ENGINES, get_engine
from itsel_ray.schema import from_dict, merge

ROLES = ("source", "target", "transfer")
USE_GPU = ("auto", "always", "never")


def sweeps_dir() -> Path:
    """The project's sweeps/ folder: beside the package (editable install, job working dir), else ./sweeps."""
    here = Path(__file__).resolve().parents[2] / "sweeps"
    return here if here.is_dir() else Path.cwd() / "sweeps"


@dataclass(frozen=True)
class TrialSettings:
    """TrialConfig minus the per-trial fields (task, seed, source): what every run of a stage shares."""

    model: ModelConfig = field(default_factory=ModelConfig)
    prompt: PromptConfig = field(default_factory=PromptConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)


@dataclass(frozen=True)
class Grid:
    sources: list[str] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)
    source_seeds: list[int] = field(default_factory=lambda: [42, 150, 386])
    target_seeds: list[int] = field(default_factory=lambda: [28, 52, 112])

    def __post_init__(self):
        for key in ("sources", "targets", "source_seeds", "target_seeds"):
            values = getattr(self, key)
            if not values:
                raise ConfigError(f"grid.{key} must not be empty")
            dupes = sorted({v for v in values if values.count(v) > 1})
            if dupes:
                raise ConfigError(f"grid.{key} lists {dupes} more than once")
        both = sorted(set(self.sources) & set(self.targets))
        if both:
            raise ConfigError(f"grid: {both} are both sources and targets; a task has one role in a sweep")


@dataclass(frozen=True)
class Stages:
    """Per-stage overrides of `trial` (same keys); checked when the sweep is resolved."""

    source: dict = field(default_factory=dict)
    target: dict = field(default_factory=dict)
    transfer: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Resources:
    use_gpu: str = "auto"
    gpu_per_trial: float = 0.25
    cpu_per_trial: float = 1.0

    def __post_init__(self):
        if self.use_gpu not in USE_GPU:
            raise ConfigError(f"resources.use_gpu must be one of {', '.join(USE_GPU)}, got {self.use_gpu!r}")
        whole = self.gpu_per_trial > 1 and self.gpu_per_trial == int(self.gpu_per_trial)
        if not (0 < self.gpu_per_trial <= 1 or whole):
            raise ConfigError(f"resources.gpu_per_trial must be in (0, 1] or a whole number, got {self.gpu_per_trial}")
        if self.cpu_per_trial <= 0:
            raise ConfigError(f"resources.cpu_per_trial must be > 0, got {self.cpu_per_trial}")


@dataclass(frozen=True)
class Execution:
    max_concurrent_trials: int | None = None
    max_failures: int = 2
    reuse_actors: bool = True
    checkpoints_to_keep: int = 1

    def __post_init__(self):
        if self.max_concurrent_trials is not None and self.max_concurrent_trials < 1:
            raise ConfigError(f"execution.max_concurrent_trials must be >= 1, got {self.max_concurrent_trials}")
        if self.max_failures < 0:
            raise ConfigError(f"execution.max_failures must be >= 0, got {self.max_failures}")
        if self.checkpoints_to_keep < 1:
            raise ConfigError(f"execution.checkpoints_to_keep must be >= 1, got {self.checkpoints_to_keep}")


@dataclass(frozen=True)
class Testing:
    """Fault injection for the sweep's own tests; leave empty in real sweeps."""

    fail_once_at_step: int | None = None
    fail_trials: list[str] = field(default_factory=list)
    report_delay_s: float = 0.0


@dataclass(frozen=True)
class SweepFile:
    """The raw shape of a sweep file (after merging over defaults.yaml)."""

    name: str | None = None
    description: str = ""
    engine: str = "torch"
    analysis: str = "paper"
    grid: Grid = field(default_factory=Grid)
    trial: TrialSettings = field(default_factory=TrialSettings)
    stages: Stages = field(default_factory=Stages)
    resources: Resources = field(default_factory=Resources)
    execution: Execution = field(default_factory=Execution)
    testing: Testing = field(default_factory=Testing)

    def __post_init__(self):
        if self.engine not in ENGINES:
            raise ConfigError(f"engine must be one of {', '.join(ENGINES.names())}, got {self.engine!r}")


@dataclass(frozen=True)
class Sweep:
    """A resolved sweep: the file's settings plus one TrialSettings per role (trial merged with its stage)."""

    name: str
    path: str
    spec: SweepFile
    settings: Mapping[str, TrialSettings]
    raw: Mapping = field(default_factory=dict)  # the merged YAML, stored beside the results for `status`

    @property
    def grid(self) -> Grid:
        return self.spec.grid

    def trial_config(self, role: str, *, task: str, seed: int, source: str | None = None) -> TrialConfig:
        s = self.settings[role]
        return TrialConfig(task=task, seed=seed, source=source, model=s.model, prompt=s.prompt, optim=s.optim,
                           train=s.train, data=s.data)


# ------------------------------------------------------------------------------------------------ loading


def resolve_sweep_path(name_or_path: str) -> Path:
    """A sweep NAME (sweeps/NAME.yaml) or a PATH to a YAML file."""
    p = Path(name_or_path).expanduser()
    if p.suffix in (".yaml", ".yml") or os.sep in name_or_path:
        if not p.is_file():
            raise ConfigError(f"sweep file not found: {p}")
        return p.resolve()
    candidate = sweeps_dir() / f"{name_or_path}.yaml"
    if not candidate.is_file():
        known = sorted(q.stem for q in sweeps_dir().glob("*.yaml") if q.stem != "defaults")
        raise ConfigError(f"unknown sweep {name_or_path!r}; known sweeps: {', '.join(known)} (or give a .yaml path)")
    return candidate


def read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: a sweep file must be a mapping of keys, got {type(data).__name__}")
    return dict(data)


def load_sweep(name_or_path: str, *, check_tasks: bool = True, check_engine: bool = True) -> Sweep:
    """Parse defaults.yaml, then the sweep file over it; every error names the key and the file at fault."""
    path = resolve_sweep_path(name_or_path)
    defaults_path = sweeps_dir() / "defaults.yaml"
    defaults = read_yaml(defaults_path) if defaults_path.is_file() else {}
    if defaults_path.is_file() and path.resolve() == defaults_path.resolve():
        raise ConfigError(f"{path} is the defaults layer, not a sweep; pick a sweep file")
    # Resolve the defaults alone first: from then on every error comes from the sweep file, so it can be named.
    _resolve(_with_placeholder_grid(defaults), where=str(defaults_path))
    if (defaults.get("name") is not None) or (defaults.get("grid") or {}).get("sources"):
        raise ConfigError(f"{defaults_path}: 'name' and the grid's tasks belong in a sweep file, not the defaults")
    raw = merge(defaults, read_yaml(path))
    spec, settings = _resolve(raw, where=str(path))
    name = spec.name or path.stem
    sweep = Sweep(name=name, path=str(path), spec=spec, settings=settings, raw={**raw, "name": name})
    _check_transfer_shape(sweep)
    _check_analysis(sweep)
    _check_fault_keys(sweep)
    if check_tasks:
        check_task_names(sweep)
    if check_engine:
        check_engine_options(sweep)
    return sweep


def _resolve(data: Mapping, *, where: str) -> tuple[SweepFile, dict[str, TrialSettings]]:
    spec = from_dict(SweepFile, data, where=where)
    trial = data.get("trial") or {}
    settings = {
        role: from_dict(TrialSettings, merge(trial, getattr(spec.stages, role)), where=where, path=f"stages.{role}")
        for role in ROLES
    }
    return spec, settings


def _with_placeholder_grid(defaults: Mapping) -> dict:
    """The defaults layer names no tasks; stand-ins let it be checked on its own."""
    grid = dict(defaults.get("grid") or {})
    for key in ("sources", "targets"):
        grid[key] = grid.get(key) or [f"<{key}>"]
    return merge(defaults, {"grid": grid})


def _check_transfer_shape(sweep: Sweep) -> None:
    """A transfer run starts from a source prompt, so both stages must agree on its shape and backbone."""
    src, tr = sweep.settings["source"], sweep.settings["transfer"]
    if src.prompt.length != tr.prompt.length or src.model != tr.model:
        raise ConfigError(
            f"stages.source and stages.transfer must use the same model and prompt.length (a transfer starts from "
            f"the source prompt) in {sweep.path}"
        )


def _check_fault_keys(sweep: Sweep) -> None:
    from itsel_ray.sweep.plan import STAGES, plan_stage

    keys = {t.key for stage in STAGES for t in plan_stage(sweep, stage)}
    for i, key in enumerate(sweep.spec.testing.fail_trials):
        if key not in keys:
            raise ConfigError(f"testing.fail_trials[{i}]: {key!r} is not a trial of this sweep in {sweep.path}")


def analysis_config_path(sweep: Sweep) -> Path:
    """analysis/<name>.yaml of the checkout, or a path."""
    value = sweep.spec.analysis
    if value.endswith((".yaml", ".yml")) or os.sep in value:
        return Path(value).expanduser()
    return sweeps_dir().parent / "analysis" / f"{value}.yaml"


def _check_analysis(sweep: Sweep) -> None:
    path = analysis_config_path(sweep)
    if not path.is_file():
        raise ConfigError(f"analysis: no analysis config {str(path)!r} (from {sweep.spec.analysis!r}) in {sweep.path}")


def check_task_names(sweep: Sweep) -> None:
    from itsel_ray.tasks import TASKS

    for key in ("sources", "targets"):
        for i, name in enumerate(getattr(sweep.grid, key)):
            if name not in TASKS:
                raise ConfigError(
                    f"grid.{key}[{i}]: unknown task {name!r} in {sweep.path}; valid tasks: {', '.join(TASKS.names())}"
                )


def check_engine_options(sweep: Sweep) -> None:
    """Let the engine check every option name (cheap, no model load) for one trial per task and role."""
    engine = get_engine(sweep.spec.engine)
    grid = sweep.grid
    probes = [("source", t, None) for t in grid.sources] + [("target", t, None) for t in grid.targets]
    probes += [("transfer", t, grid.sources[0]) for t in grid.targets]
    for role, task, source in probes:
        cfg = sweep.trial_config(role, task=task, seed=0, source=source)
        try:
            engine.validate_config(cfg)
        except (ValueError, RuntimeError) as err:
            raise ConfigError(f"{sweep.path}: stage {role!r}, task {task!r}: {err}") from None
