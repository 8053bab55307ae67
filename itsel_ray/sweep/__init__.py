"""The study as a distributed Ray Tune sweep: `python -m itsel_ray.sweep {tune,transfer,analyze,all,status}`.

Pure modules (no Ray): config (sweep YAML), plan (trials, folder names), storage, records, sources, results, status.
Ray adapters: cluster (init, resources), trainable (the Tune function), progress (callback), stages (Tuners),
driver (the CLI's run path), parallel (the analysis' Ray map). Only this package may import ray.
"""
