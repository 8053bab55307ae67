"""The shape of a sweep definition (sweeps/*.yaml) as frozen dataclasses, each checking its own values.

`sweep_file.load_sweep` parses a file into these with the strict `from_dict`, so every key is one of these fields;
the checks here name the key they refuse. No I/O and no Ray.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping

from itsel_ray.engine import ENGINES
from itsel_ray.schema import ConfigError
from itsel_ray.trial_config import (
    DataConfig, ModelConfig, OptimConfig, PromptConfig, TrainConfig, TrialConfig, check_schedule,
)

ROLES = ("source", "target", "transfer")
USE_GPU = ("auto", "always", "never")
SEED_LIMIT = 2**32  # numpy and torch seed generators take 32-bit seeds
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")  # one folder under --storage, never a path


@dataclass(frozen=True)
class TrialSettings:
    """TrialConfig minus the per-trial fields (task, seed, source): what every run of a stage shares."""

    model: ModelConfig = field(default_factory=ModelConfig)
    prompt: PromptConfig = field(default_factory=PromptConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)

    def __post_init__(self):
        check_schedule(self.optim, self.train)


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
            folded: dict = {}
            for v in values:  # task names are looked up case-insensitively: SYN_HAS0 is syn_has0
                if isinstance(v, str) and v.casefold() in folded:
                    raise ConfigError(f"grid.{key} lists {folded[v.casefold()]!r} and {v!r}, one task (task names "
                                      "are not case-sensitive)")
                folded[v.casefold() if isinstance(v, str) else v] = v
        for key in ("source_seeds", "target_seeds"):
            for i, seed in enumerate(getattr(self, key)):
                if not 0 <= seed < SEED_LIMIT:
                    raise ConfigError(f"grid.{key}[{i}]: seed {seed} is outside [0, 2**32)")
        both = sorted({s for s in self.sources if s.casefold() in {t.casefold() for t in self.targets}})
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
    """What one trial asks Ray for. gpu_per_trial "auto" gives each task the share of a GPU its predicted memory
    needs (the engine's `predict_memory`); gpu_memory_gb overrides the GPU memory the cluster reports."""

    use_gpu: str = "auto"
    gpu_per_trial: float | str = 0.25
    cpu_per_trial: float = 1.0
    gpu_memory_gb: float | None = None

    def __post_init__(self):
        if self.use_gpu not in USE_GPU:
            raise ConfigError(f"resources.use_gpu must be one of {', '.join(USE_GPU)}, got {self.use_gpu!r}")
        g = self.gpu_per_trial
        if isinstance(g, str):
            if g != "auto":
                raise ConfigError(f"resources.gpu_per_trial must be a number or 'auto', got {g!r}")
        elif not (0 < g <= 1 or (g > 1 and g == int(g))):
            raise ConfigError(f"resources.gpu_per_trial must be in (0, 1] or a whole number, got {g}")
        if self.gpu_memory_gb is not None and not 0 < self.gpu_memory_gb <= 4096:
            raise ConfigError(f"resources.gpu_memory_gb must be in (0, 4096], got {self.gpu_memory_gb}")
        if not 0 < self.cpu_per_trial <= 1024:
            raise ConfigError(f"resources.cpu_per_trial must be in (0, 1024], got {self.cpu_per_trial}")


@dataclass(frozen=True)
class Execution:
    """How Tune runs the trials. Trial state lives in the trial folders, so Tune keeps no checkpoints of its own."""

    max_concurrent_trials: int | None = None
    max_failures: int = 2
    reuse_actors: bool = True

    def __post_init__(self):
        if self.max_concurrent_trials is not None and self.max_concurrent_trials < 1:
            raise ConfigError(f"execution.max_concurrent_trials must be >= 1, got {self.max_concurrent_trials}")
        if not 0 <= self.max_failures <= 100:
            raise ConfigError(f"execution.max_failures must be in [0, 100], got {self.max_failures}")


@dataclass(frozen=True)
class MlflowTracking:
    """MLflow: `tracking_uri` null = a file store at <storage>/<sweep>/mlruns (works offline); `experiment` null =
    the sweep name."""

    tracking_uri: str | None = None
    experiment: str | None = None


WANDB_MODES = ("offline", "online", "disabled")


@dataclass(frozen=True)
class WandbTracking:
    """Weights & Biases: `mode` offline (default; `wandb sync` later) or online; `project` null = the sweep name."""

    project: str | None = None
    mode: str = "offline"
    group: str | None = None

    def __post_init__(self):
        if self.mode not in WANDB_MODES:
            raise ConfigError(f"tracking.wandb.mode must be one of {', '.join(WANDB_MODES)}, got {self.mode!r}")


@dataclass(frozen=True)
class Tracking:
    """Experiment trackers fed by Tune's logger callbacks, on top of the TensorBoard files Tune always writes."""

    mlflow: MlflowTracking | None = None
    wandb: WandbTracking | None = None


@dataclass(frozen=True)
class Testing:
    """Fault injection for the sweep's own tests; leave empty in real sweeps."""

    fail_once_at_step: int | None = None
    fail_trials: list[str] = field(default_factory=list)
    report_delay_s: float = 0.0

    def __post_init__(self):
        if not 0 <= self.report_delay_s <= 60:
            raise ConfigError(f"testing.report_delay_s must be in [0, 60], got {self.report_delay_s}")


@dataclass(frozen=True)
class SweepFile:
    """The raw shape of a sweep file (after merging over defaults.yaml). plugins / tasks: the user's modules and
    task files (itsel_ray/plugins.py), absolute once loaded; they are imported before the rest is checked."""

    name: str | None = None
    description: str = ""
    plugins: list[str] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)
    engine: str = "t5"
    analysis: str = "paper"
    grid: Grid = field(default_factory=Grid)
    trial: TrialSettings = field(default_factory=TrialSettings)
    stages: Stages = field(default_factory=Stages)
    resources: Resources = field(default_factory=Resources)
    execution: Execution = field(default_factory=Execution)
    tracking: Tracking = field(default_factory=Tracking)
    testing: Testing = field(default_factory=Testing)

    def __post_init__(self):
        if self.engine not in ENGINES:
            raise ConfigError(f"engine must be one of {', '.join(ENGINES.names())}, got {self.engine!r}")
        if self.name is not None and not NAME_PATTERN.fullmatch(self.name):
            raise ConfigError(f"name {self.name!r} must be one folder name (letters, digits, '.', '_', '-'; no "
                              "'/' and not starting with '.'): the sweep's folder under --storage")


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
