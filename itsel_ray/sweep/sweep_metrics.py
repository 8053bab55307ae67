"""The sweep's progress in Ray's own metrics system (ray.util.metrics), next to Ray's metrics on each node's
Prometheus endpoint, so Prometheus, Grafana and the dashboard's Metrics page show the sweep as the console does.

Ray exports each metric with a "ray_" prefix (`ray_itsel_ray_trials`, ...), a few seconds after it is set. The
driver sets them from the stage's Tune callback (itsel_ray/sweep/callbacks.py), so they cost one set per state at
most every COUNTS_EVERY_S, and one per reported result of a running trial:

    itsel_ray_trials{sweep, stage, state}          trials done, running, retrying, failed, waiting (the console's
                                                   line: done counts the trials storage held before this run)
    itsel_ray_eta_seconds{sweep, stage}            the stage's ETA (not set while unknown)
    itsel_ray_completions_per_minute{sweep, stage} trials finished over the last RATE_WINDOW_S of this run
    itsel_ray_trial_step{sweep, stage, trial}      a trial's latest reported training step
    itsel_ray_trial_score{sweep, stage, trial}     its latest validation score
    itsel_ray_trial_running{sweep, stage, trial}   1 while it runs, then 0 (panels of running trials filter on it)

Ray exports a series only when it was set since its last export, so the driver sets the counts (of every stage it
ran) and every running trial's series again with each count update; a trial's series end a little after the trial.

docs/grafana_sweep.json (a Grafana dashboard) plots them; docs/cluster.md says how the head runs Prometheus and Grafana.
"""

from __future__ import annotations

import math

STATES = ("done", "running", "retrying", "failed", "waiting")
METRICS = ("itsel_ray_trials", "itsel_ray_eta_seconds", "itsel_ray_completions_per_minute", "itsel_ray_trial_step",
           "itsel_ray_trial_score", "itsel_ray_trial_running")
RATE_WINDOW_S = 300.0
_GAUGES: dict = {}
_STAGES: dict = {}  # (sweep, stage) -> its latest trial counts, set again with every update of any stage


def _gauges() -> dict:
    """One Gauge object per metric per process (Ray registers a metric once by name)."""
    if not _GAUGES:
        from ray.util.metrics import Gauge

        stage, trial = ("sweep", "stage"), ("sweep", "stage", "trial")
        _GAUGES.update(
            trials=Gauge("itsel_ray_trials", "Trials of a sweep stage by state", tag_keys=(*stage, "state")),
            eta=Gauge("itsel_ray_eta_seconds", "Estimated seconds until the stage's trials are finished",
                      tag_keys=stage),
            rate=Gauge("itsel_ray_completions_per_minute", "Trials finished per minute, recent window",
                       tag_keys=stage),
            step=Gauge("itsel_ray_trial_step", "A trial's latest reported training step", tag_keys=trial),
            score=Gauge("itsel_ray_trial_score", "A trial's latest validation score", tag_keys=trial),
            running=Gauge("itsel_ray_trial_running", "1 while the trial runs, else 0", tag_keys=trial),
        )
    return _GAUGES


class SweepMetrics:
    """The metrics of one stage of one sweep, set by the driver."""

    def __init__(self, sweep: str, stage: str):
        self.tags = {"sweep": sweep, "stage": stage}

    def counts(self, counts: dict, eta: float | None, completions: list, now: float, started: float) -> None:
        """This stage's counts, and again those of the stages this driver ran before (a finished stage stays on
        the endpoint while the command runs)."""
        g = _gauges()
        _STAGES[(self.tags["sweep"], self.tags["stage"])] = dict(counts)
        for (sweep, stage), latest in _STAGES.items():
            if sweep != self.tags["sweep"]:
                continue
            for state in STATES:
                g["trials"].set(float(latest.get(state, 0)), tags={"sweep": sweep, "stage": stage, "state": state})
        if eta is not None:
            g["eta"].set(float(eta), tags=self.tags)
        g["rate"].set(completions_per_minute(completions, now, started), tags=self.tags)

    def trial(self, key: str, *, step=None, score=None, running: bool | None = None) -> None:
        g, tags = _gauges(), {**self.tags, "trial": key}
        if _finite(step):
            g["step"].set(float(step), tags=tags)
        if _finite(score):
            g["score"].set(float(score), tags=tags)
        if running is not None:
            g["running"].set(1.0 if running else 0.0, tags=tags)


def completions_per_minute(completions: list, now: float, started: float) -> float:
    """Trials finished in the last RATE_WINDOW_S (or since the run started, when that is shorter), per minute."""
    window = min(RATE_WINDOW_S, max(now - started, 1.0))
    return sum(1 for t in completions if t >= now - window) * 60.0 / window


def _finite(value) -> bool:
    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False
