"""Experiment trackers from the sweep's `tracking:` setting: Tune's MLflow and W&B logger callbacks.

Tune always writes TensorBoard event files per trial (<sweep>/ray_tune/<stage>-<time>/<trial>/events.out.tfevents.*).
With `tracking: {mlflow: {}}` every trial is also an MLflow run (by default in MLflow's file store under the
sweep's storage, <sweep>/mlruns, which needs no server or network; `mlflow ui --backend-store-uri` opens it), and with `tracking: {wandb: {}}` a W&B run (offline by default; `wandb
sync` uploads later). Each run carries the trial's name, stage, role, task, seed and source as tags.
"""

from __future__ import annotations

import os
from pathlib import Path

from itsel_ray.runs.plan import trial_from_config
from itsel_ray.runs.storage import Storage
from itsel_ray.schema import ConfigError


def trial_tags(sweep, stage: str, trial) -> dict[str, str]:
    t = trial_from_config(sweep, stage, trial.config)
    return {"sweep": sweep.name, "stage": t.stage, "role": t.role, "task": t.task, "seed": str(t.seed),
            "source": t.source, "trial": t.key}


def mlflow_uri(sweep, storage: Storage) -> str:
    configured = sweep.spec.tracking.mlflow.tracking_uri
    if configured:
        return configured
    if storage.remote:
        raise ConfigError("tracking.mlflow: set tracking_uri (a server, or a shared folder) for remote storage")
    return Path(storage.local("mlruns")).as_uri()


def tracking_callbacks(sweep, stage: str, storage: Storage) -> list:
    """The logger callbacks `tracking:` asks for; a tracker that is not installed is a clear error."""
    spec, out = sweep.spec.tracking, []
    if spec.mlflow is not None:
        try:
            from ray.air.integrations.mlflow import MLflowLoggerCallback
            import mlflow  # noqa: F401
        except ImportError:
            raise ConfigError("tracking.mlflow needs MLflow: pip install 'itsel-ray[tracking]' (or mlflow)") from None

        class TaggedMLflow(MLflowLoggerCallback):
            def log_trial_start(self, trial):
                base = self.tags
                self.tags = {**(base or {}), **trial_tags(sweep, stage, trial)}
                try:
                    super().log_trial_start(trial)
                finally:
                    self.tags = base

        uri = mlflow_uri(sweep, storage)
        if uri.startswith("file:"):  # MLflow 3 keeps its file store only on request; it needs no server or network
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        out.append(TaggedMLflow(tracking_uri=uri,
                                experiment_name=spec.mlflow.experiment or sweep.name, tags={"sweep": sweep.name}))
    if spec.wandb is not None:
        try:
            from ray.air.integrations.wandb import WandbLoggerCallback
            import wandb  # noqa: F401
        except ImportError:
            raise ConfigError("tracking.wandb needs wandb: pip install wandb") from None

        class TaggedWandb(WandbLoggerCallback):
            def log_trial_start(self, trial):
                tags = trial_tags(sweep, stage, trial)
                self.kwargs["tags"] = [f"{k}:{v}" for k, v in tags.items() if v]
                super().log_trial_start(trial)

        out.append(TaggedWandb(project=spec.wandb.project or sweep.name, group=spec.wandb.group or stage,
                               mode=spec.wandb.mode))
    return out
