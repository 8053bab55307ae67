"""The `analyze` stage: refresh the results tables, then hand them to the analysis package (the one call site).

The analysis reads <sweep>/results/ and writes its tables, figures and report to <sweep>/analysis/. When a Ray
instance is up its cells fan out as Ray tasks (itsel_ray/sweep/parallel.py); otherwise the builtin map is used.
"""

from __future__ import annotations

from itsel_ray.sweep.config import Sweep, analysis_config_path
from itsel_ray.sweep.probe import write_probe_table
from itsel_ray.sweep.results import RESULTS_DIR, write_tables
from itsel_ray.sweep.storage import Storage

ANALYSIS_DIR = "analysis"


class AnalysisUnavailable(RuntimeError):
    """The analysis cannot run here (remote storage, no finished transfers); the tables are still written."""


def run_analyze(sweep: Sweep, storage: Storage, *, use_ray: bool = True) -> str:
    """Write the tables and run the analysis; returns the report's path (or the results folder)."""
    results, _ = write_tables(sweep, storage)
    print(f"[analyze] results tables: {storage.path(RESULTS_DIR)}", flush=True)
    if storage.remote:
        raise AnalysisUnavailable(f"the analysis reads prompt files from local paths; copy {storage.path(RESULTS_DIR)} "
                                  "and the trial folders to a local or NFS path and run analyze there")
    if not (results["stage"].eq("transfer") & results["status"].eq("done")).any():
        raise AnalysisUnavailable("no finished transfer trial yet: run `transfer` first")
    return _call_analysis(sweep, storage, use_ray=use_ray)


def _call_analysis(sweep: Sweep, storage: Storage, *, use_ray: bool) -> str:
    from itsel_ray.analysis import analyze_folder, load_analysis_config

    map_fn = model_map = map
    if use_ray:
        import ray

        from itsel_ray.sweep.parallel import make_ray_map, ray_map

        map_fn = ray_map
        gpu = sweep.spec.resources.gpu_per_trial if ray.cluster_resources().get("GPU", 0) > 0 else 0
        model_map = make_ray_map(num_gpus=gpu, chunksize=1)  # one task per target, on a GPU share when there is one
    if sweep.spec.engine == "torch":  # probes run the real model; the stand-in engine has none
        table = write_probe_table(sweep, storage, model_map)
        print(f"[analyze] zero-shot probes: {len(table)} (source, target) pairs -> "
              f"{storage.path(RESULTS_DIR)}/probe.csv", flush=True)
    cfg = load_analysis_config(analysis_config_path(sweep))
    result = analyze_folder(storage.local(RESULTS_DIR), storage.local(ANALYSIS_DIR), cfg, map_fn)
    for message in result.messages:
        print(f"[analyze] {message}", flush=True)
    return str(result.report)
