"""The `analyze` stage: refresh the results tables, score the source prompts through the frozen model where the
engine has one (PROBE), then hand the results folder to the analysis package.

The analysis reads <sweep>/results/ and writes its tables, figures and report to <sweep>/analysis/ (swapped in
whole, so a killed analysis leaves the previous complete report). On an object store it reads a node-local copy of
the tables and the prompts they name, and puts its outputs back one object per file, the report last. Its cells fan out as Ray tasks
(itsel_ray/sweep/parallel.py); the model tables run one Ray task per target, on a GPU share when there is one.
The stage's start and end go to progress/analyze.jsonl, so `status` can show it.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

from itsel_ray.runs.model_tables import MODEL_TABLES, write_model_table
from itsel_ray.runs.progress import ProgressLog
from itsel_ray.runs.storage import Storage
from itsel_ray.runs.sweep_file import analysis_config_path
from itsel_ray.runs.sweep_spec import Sweep
from itsel_ray.runs.tables import RESULTS_DIR, write_tables

ANALYSIS_DIR = "analysis"


class AnalysisUnavailable(RuntimeError):
    """The analysis cannot run here (no finished transfers); the tables are still written."""


def run_analyze(sweep: Sweep, storage: Storage, *, console, recover=None, use_ray: bool = True) -> str:
    """Write the tables and run the analysis; returns the report's path."""
    log = ProgressLog(storage, "analyze", f"analyze-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
    log.write("run", host=socket.gethostname(), pid=os.getpid())
    try:
        report = _analyze(sweep, storage, console=console, recover=recover, use_ray=use_ray)
    except BaseException as err:
        log.write("end", outcome="error" if isinstance(err, Exception) else "interrupted",
                  error=f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
        raise
    log.write("end", outcome="complete", report=report)
    return report


def _analyze(sweep: Sweep, storage: Storage, *, console, recover, use_ray: bool) -> str:
    results, _ = write_tables(sweep, storage, recover=recover)
    console.info(f"[analyze] results tables: {storage.path(RESULTS_DIR)}")
    if not (results["stage"].eq("transfer") & results["status"].eq("done")).any():
        raise AnalysisUnavailable("no finished transfer trial yet: run `transfer` first")
    from itsel_ray.analysis import analyze_folder, load_analysis_config

    map_fn = model_map = map
    if use_ray:
        import ray

        from itsel_ray.sweep.parallel import make_ray_map, ray_map

        map_fn = ray_map
        gpu = 0.0
        if ray.cluster_resources().get("GPU", 0) > 0:  # the largest share a target's transfer trial gets
            from itsel_ray.runs.resources import resource_plan
            from itsel_ray.sweep.cluster import cluster_info

            plan = resource_plan(sweep, cluster_info())
            gpu = max(plan.request("transfer", t)["gpu"] for t in sweep.grid.targets)
        model_map = make_ray_map(num_gpus=gpu, chunksize=1)  # one task per target, on a GPU share when there is one
    if sweep.spec.engine == "torch":  # the stand-in engine has no model to score prompts with
        for name in MODEL_TABLES:
            table = write_model_table(name, sweep, storage, model_map)
            console.info(f"[analyze] {name}: {len(table)} (source, target) pairs -> "
                         f"{storage.path(RESULTS_DIR)}/{name}.csv")
    cfg = load_analysis_config(analysis_config_path(sweep))
    if not storage.remote:
        result = analyze_folder(storage.local(RESULTS_DIR), storage.local(ANALYSIS_DIR), cfg, map_fn)
        report = str(result.report)
    else:  # a node-local copy of the tables and the prompts they name in, the outputs back out, report last
        from itsel_ray.runs import node_cache
        from itsel_ray.runs.stored_results import local_results, upload_folder

        out = node_cache.location(storage.root, "analysis") / ANALYSIS_DIR
        result = analyze_folder(local_results(storage.path(RESULTS_DIR)), out, cfg, map_fn)
        upload_folder(out, storage, ANALYSIS_DIR, last=Path(result.report).name)
        report = storage.path(f"{ANALYSIS_DIR}/{Path(result.report).name}")
    for message in result.messages:
        console.info(f"[analyze] {message}")
    return report
