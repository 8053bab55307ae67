"""The sweep driver behind the CLI: connect to Ray, pick the sweep, run the stages in order, always leave tables.

The tables are rewritten after every stage and on the way out (Ctrl-C included), and the local Ray instance is
always stopped. Finished work lives in the trial folders, so nothing here needs to survive a killed driver.
"""

from __future__ import annotations

import sys
import time
import traceback

from itsel_ray.sweep import cluster as cl
from itsel_ray.sweep.cli import (EXIT_FAILED_TRIALS, EXIT_INTERRUPTED, EXIT_OK, EXIT_RESOURCES, _fail,
                                      _pick_sweep, sweep_root)
from itsel_ray.sweep.analyze import AnalysisUnavailable, run_analyze
from itsel_ray.sweep.results import write_tables
from itsel_ray.sweep.sources import MissingSourcesError
from itsel_ray.sweep.stages import outcome, run_stage


class Interrupted(Exception):
    """A stage stopped before all its trials finished (Ctrl-C)."""


def run_command(args, storage_base: str, *, explicit_storage: bool = True) -> int:
    started = time.time()
    owns_ray = not _ray_initialized()
    # Trial output goes to each trial's own log files (and the dashboard), not to this console.
    info = (cl.connect(args.address, num_cpus=args.num_cpus, dashboard=not args.no_dashboard, log_to_driver=False)
            if owns_ray
            else cl.cluster_info(args.address))
    storage = None
    try:
        if info.dashboard_url:
            print(f"Ray dashboard: {info.dashboard_url}", flush=True)
        print(f"Ray: {info.describe()}", flush=True)
        sweep = _pick_sweep(args, info.gpus)
        cl.trial_resources(sweep.spec.resources, info, sweep_name=sweep.name)  # fail fast, before writing anything
        storage = sweep_root(storage_base, sweep.name)
        if args.address and not storage.remote and not explicit_storage:
            print(f"warning: storage defaults to {storage.root} on this node; a multi-node cluster needs shared "
                  "storage (--storage /shared/path or s3://...)", file=sys.stderr, flush=True)
        _store_sweep_file(sweep, storage)
        code = _run_stages(args, sweep, storage, info)
        print(f"finished in {time.time() - started:.1f}s; results in {storage.path('results')}", flush=True)
        return code
    except cl.ResourceError as err:
        return _fail(EXIT_RESOURCES, str(err))
    except (KeyboardInterrupt, Interrupted) as err:
        print(f"\ninterrupted{': ' + str(err) if str(err) else ''}. Finished trials are kept; rerun the same command "
              "to continue from the last checkpoints.", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    finally:
        if storage is not None:
            try:
                write_tables(sweep, storage)
            except Exception as err:  # never mask the real outcome
                print(f"warning: could not rewrite the results tables: {err}", file=sys.stderr, flush=True)
        if owns_ray:
            cl.shutdown()


def _run_stages(args, sweep, storage, info) -> int:
    stages = {"all": ["tune", "transfer", "analyze"],
              "transfer": ["transfer"] if args.no_analyze else ["transfer", "analyze"]}.get(args.stage, [args.stage])
    verbose = 0 if args.quiet else 1
    failed = False
    for stage in stages:
        if stage == "analyze":
            try:
                print(f"[analyze] report: {run_analyze(sweep, storage)}", flush=True)
            except AnalysisUnavailable as err:
                print(f"[analyze] not run: {err}", file=sys.stderr, flush=True)
                failed = True
            except Exception:  # the tables are written; show the analysis' own error and go on to exit 1
                traceback.print_exc()
                print("[analyze] failed (the results tables were written)", file=sys.stderr, flush=True)
                failed = True
            continue
        if stage == "transfer":
            tune_state = outcome(sweep, storage, "tune")
            if not tune_state.complete:
                print(f"[transfer] tune results missing ({len(tune_state.unfinished)} of {tune_state.total} trials "
                      "unfinished): running tune first", flush=True)
                failed |= _one_stage(args, sweep, storage, info, "tune", verbose)
            try:
                failed |= _one_stage(args, sweep, storage, info, "transfer", verbose)
            except MissingSourcesError as err:
                return _fail(EXIT_FAILED_TRIALS, str(err))
        else:
            failed |= _one_stage(args, sweep, storage, info, stage, verbose)
    return EXIT_FAILED_TRIALS if failed else EXIT_OK


def _one_stage(args, sweep, storage, info, stage: str, verbose: int) -> bool:
    """Run one stage; True when trials failed. Raises Interrupted when trials were left unfinished."""
    before = outcome(sweep, storage, stage)
    if before.complete and not before.failed:
        print(f"[{stage}] all {before.total} trials already done", flush=True)
        return False
    print(f"[{stage}] {before.done}/{before.total} done; running the rest", flush=True)
    after = run_stage(sweep, stage, storage, info, max_concurrent=args.max_concurrent, verbose=verbose)
    write_tables(sweep, storage)
    print(after.line(), flush=True)
    if not after.complete:
        raise Interrupted(f"{stage}: {len(after.unfinished)} trial(s) unfinished")
    return bool(after.failed)


def _store_sweep_file(sweep, storage) -> None:
    """The merged sweep settings beside the results, so `status` can read a sweep without its file."""
    import yaml

    storage.write_bytes("sweep.yaml", yaml.safe_dump(dict(sweep.raw), sort_keys=False).encode())


def _ray_initialized() -> bool:
    import ray

    return ray.is_initialized()
