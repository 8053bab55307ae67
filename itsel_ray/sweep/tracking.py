"""Experiment trackers from the sweep's `tracking:` setting: Tune's TensorBoard, MLflow and W&B logger callbacks.

TensorBoard event files are always written per trial (<sweep>/ray_tune/<stage>-<time>/<trial>/events.out.tfevents.*).
TensorBoard and MLflow plot a trial's metrics against its training step (Tune's own loggers would use the report
number, which restarts when a trial resumes), carry only the metrics a researcher reads (score, loss, best score,
the task's eval_* metrics: none of Tune's bookkeeping), and log the trial's resolved settings as hparams / params
(lr, steps, model, prompt, loss, eval mode, ...).
With `tracking: {mlflow: {}}` every trial is also an MLflow run (by default in MLflow's file store under the
sweep's storage, <sweep>/mlruns, which needs no server or network; `MLFLOW_ALLOW_FILE_STORE=true mlflow ui
--backend-store-uri` opens it), and with `tracking: {wandb: {}}` a W&B run (offline by default; `wandb
sync` uploads later). Each run carries the trial's name, stage, role, task, seed and source as tags.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from itsel_ray.runs.plan import trial_from_config
from itsel_ray.runs.storage import Storage
from itsel_ray.schema import ConfigError


def trial_tags(sweep, stage: str, trial) -> dict[str, str]:
    t = trial_from_config(sweep, stage, trial.config)
    return {"sweep": sweep.name, "stage": t.stage, "role": t.role, "task": t.task, "seed": str(t.seed),
            "source": t.source, "trial": t.key}


CHART_KEYS = ("score", "loss", "best_score")


def chart_metrics(result: dict) -> dict[str, float]:
    """The metrics worth a chart: score, loss, best score and the task's eval_* metrics, finite numbers only."""
    out = {}
    for key, value in result.items():
        if (key in CHART_KEYS or key.startswith("eval_")) and isinstance(value, (int, float)) \
                and not isinstance(value, bool) and math.isfinite(value):
            out[key] = float(value)
    return out


def training_step(result: dict) -> int:
    """The trial's training step of a result (Tune's report number only when the trial reported none)."""
    step = result.get("step")
    if isinstance(step, (int, float)) and not isinstance(step, bool) and math.isfinite(step):
        return int(step)
    return int(result.get("training_iteration") or 0)


def trial_params(sweep, stage: str, trial) -> dict[str, object]:
    """The trial's resolved settings, flattened to dotted keys ("optim.lr", "train.max_steps", "model.name", ...):
    numbers, strings and booleans as they are, anything else as text."""
    from itsel_ray.runs.trial_state import trial_config

    def flat(prefix: str, value, out: dict) -> dict:
        if isinstance(value, dict):
            for k, v in value.items():
                flat(f"{prefix}.{k}" if prefix else str(k), v, out)
        elif value is None:
            out[prefix] = "none"
        elif isinstance(value, (bool, int, float, str)):
            out[prefix] = value
        else:
            out[prefix] = str(value)
        return out

    planned = trial_from_config(sweep, stage, trial.config)
    return flat("", trial_config(sweep, planned).to_dict(), {})


def tensorboard_callback(sweep, stage: str):
    """Tune's TensorBoard logger, writing against the training step, charts only, and the settings as hparams."""
    from ray.tune.logger import TBXLoggerCallback

    class StepTensorBoard(TBXLoggerCallback):
        def log_trial_result(self, iteration, trial, result):
            if trial not in self._trial_writer:
                self.log_trial_start(trial)
            step, metrics = training_step(result), chart_metrics(result)
            for key, value in metrics.items():
                self._trial_writer[trial].add_scalar(f"itsel_ray/{key}", value, global_step=step)
            self._trial_result[trial] = {f"itsel_ray/{k}": v for k, v in metrics.items()}
            self._trial_writer[trial].flush()

        def _try_log_hparams(self, trial, result):  # Tune's version reads the grid point, not the settings
            pass

        def log_trial_end(self, trial, failed: bool = False):
            if trial in self._trial_writer and self._trial_result.get(trial):
                try:
                    from tensorboardX.summary import hparams

                    for summary in hparams(hparam_dict=trial_params(sweep, stage, trial),
                                           metric_dict=self._trial_result[trial]):
                        self._trial_writer[trial].file_writer.add_summary(summary)
                except Exception:  # a chart without hparams beats a lost trial end
                    pass
            super().log_trial_end(trial, failed)

    return StepTensorBoard()


def mlflow_uri(sweep, storage: Storage) -> str:
    configured = sweep.spec.tracking.mlflow.tracking_uri
    if configured:
        return configured
    if storage.remote:
        raise ConfigError("tracking.mlflow: set tracking_uri (a server, or a shared folder) for remote storage")
    return Path(storage.local("mlruns")).as_uri()


def tracking_callbacks(sweep, stage: str, storage: Storage) -> list:
    """The logger callbacks `tracking:` asks for; a tracker that is not installed is a clear error."""
    spec, out = sweep.spec.tracking, [tensorboard_callback(sweep, stage)]
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
                self.mlflow_util.log_params(run_id=self._trial_runs[trial],
                                            params_to_log=trial_params(sweep, stage, trial))

            def log_trial_result(self, iteration, trial, result):
                self.mlflow_util.log_metrics(run_id=self._trial_runs[trial], metrics_to_log=chart_metrics(result),
                                             step=training_step(result))

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
