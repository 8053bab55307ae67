"""The Ray adapters of the sweep: a thin layer over the pure run state in itsel_ray/runs/.

cluster (connect: a private loopback-only instance or a cluster, checked first), stages (one Tuner per stage run),
trainable (the Tune function around an engine's run_trial), callbacks (progress log and console line), tracking
(MLflow / W&B callbacks), parallel (the analysis' Ray map), analyze_stage, driver (the run path) and cli (the
command line; `status` and `--dry-run` never start Ray). Only this package may import ray.
"""
