"""The `analyze` stage: refresh the results tables, score the source prompts through the frozen model where the
engine has one (the model-backed inputs its analysis needs: PROBE, LOGME, ...), then hand the results folder to the
analysis package.

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

from itsel_ray.engine import get_engine
from itsel_ray.runs.model_tables import needed_model_inputs, write_model_table
from itsel_ray.runs.progress import ProgressLog
from itsel_ray.runs.storage import Storage
from itsel_ray.runs.sweep_file import analysis_config_path
from itsel_ray.runs.sweep_spec import Sweep
from itsel_ray.runs.tables import RESULTS_DIR, write_tables

ANALYSIS_DIR = "analysis"


class AnalysisUnavailable(RuntimeError):
    """The analysis cannot run here (no finished transfers); the tables are still written."""


def run_analyze(sweep: Sweep, storage: Storage, *, console, recover=None, use_ray: bool = True) -> str:
    """Write the tables and run the analysis; returns the report's path. The headline table (every selector's
    nDCG and Regret@1 over all targets, with intervals) goes to the console."""
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
            from itsel_ray.runs.resources import ResourceError, resource_plan
            from itsel_ray.sweep.cluster import cluster_info

            try:
                plan = resource_plan(sweep, cluster_info())
                gpu = max(plan.request("transfer", t)["gpu"] for t in sweep.grid.targets)
            except ResourceError:  # the trials' plan does not fit here: the analysis needs no trial resources
                gpu = 1.0
        model_map = make_ray_map(num_gpus=gpu, chunksize=1)  # one task per target, on a GPU share when there is one
    cfg = load_analysis_config(analysis_config_path(sweep))
    if get_engine(sweep.spec.engine).has_model:  # the stand-in engine has no model to score prompts with
        for name in needed_model_inputs(cfg):
            table = write_model_table(name, sweep, storage, model_map)
            console.info(f"[analyze] {name}: {len(table)} (source, target) pairs -> "
                         f"{storage.path(RESULTS_DIR)}/{name}.csv")
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
    table3 = result.files.get("table3")
    if table3 is not None and Path(table3).is_file():
        import pandas as pd

        text = headline_table(pd.read_csv(table3, index_col=0))
        if text:
            console.summary(text)
    return report


HEADLINE = (("nDCG", "ALL nDCG"), ("Regret@1", "ALL R@1"))  # (shown as, Table 3's column over all targets)


def headline_table(table3) -> str:
    """Selectors x nDCG / Regret@1 over all targets, each "mean [low, high]", from Table 3 (its wide CSV, one row
    per selector, interval columns "<column> low|high"), as a plain-text table; "" when it has neither column."""
    import math

    shown = [(name, column) for name, column in HEADLINE if column in table3.columns]
    if not shown:
        return ""

    def cell(selector, column):
        values = [table3.at[selector, c] if c in table3.columns else math.nan
                  for c in (column, f"{column} low", f"{column} high")]
        if not math.isfinite(values[0]):
            return "-"
        interval = f" [{values[1]:.2f}, {values[2]:.2f}]" if all(map(math.isfinite, values[1:])) else ""
        return f"{values[0]:.2f}{interval}"

    rows = [["selector", *[f"{name} (ALL)" for name, _ in shown]]]
    rows += [[str(selector), *[cell(selector, column) for _, column in shown]] for selector in table3.index]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
             for r in rows]
    return "\n".join(["[analyze] headline over all targets (nDCG x100; intervals as in the report's Table 3):", *lines])
