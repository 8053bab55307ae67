"""The command line of `python -m itsel_ray.sweep STAGE`: arguments, `status` and `--dry-run` (neither starts Ray),
and the hand-off to the driver for the stages that run trials."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from itsel_ray.schema import ConfigError
from itsel_ray.sweep.config import Sweep, load_sweep
from itsel_ray.sweep.plan import plan_stage
from itsel_ray.sweep.storage import Storage

STORAGE_ENV = "ITSEL_RAY_STORAGE"
EXIT_OK, EXIT_FAILED_TRIALS, EXIT_BAD_INPUT, EXIT_RESOURCES, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

STAGE_HELP = """\
stages:
  tune      prompt-tune each source task on the source seeds and each target task on the target seeds
            (the targets' runs are the no-transfer baselines and the target prompts of the analysis)
  transfer  tune every target from every source's best prompt, on the target seeds; runs `tune` first
            when its results are missing, and `analyze` once every transfer trial is done (--no-analyze skips it)
  analyze   write the results tables and run the task-selection analysis on them
  all       tune, transfer, analyze
  status    per stage: trials done / running / failed / not started and an ETA, read from storage;
            starts nothing (no Ray)

Re-running a command after Ctrl-C, a killed driver or a lost worker continues the sweep: finished trials are
kept, interrupted ones resume from their last checkpoint.

exit status: 0 ok, 1 some trials failed, 2 bad sweep file or arguments, 3 resources can never fit,
130 interrupted (rerun to continue).
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m itsel_ray.sweep", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run the intermediate-task prompt-transfer study as a Ray Tune sweep.", epilog=STAGE_HELP)
    p.add_argument("stage", choices=("tune", "transfer", "analyze", "all", "status"), metavar="STAGE",
                   help="tune | transfer | analyze | all | status (see below)")
    p.add_argument("--sweep", metavar="NAME|PATH",
                   help="sweeps/NAME.yaml or a YAML file (default: 'paper' when the cluster has GPUs, else 'demo')")
    p.add_argument("--address", metavar="ADDR",
                   help="Ray cluster to join: 'auto' on a cluster node or under `ray job submit`, or HOST:PORT "
                        "(token auth). Default: start a private local Ray instance (auth off, dashboard on "
                        "127.0.0.1) and stop it at the end")
    p.add_argument("--storage", metavar="PATH",
                   help=f"root for trial folders, Tune state and tables: a folder, an NFS mount or s3://bucket/prefix "
                        f"(default: ${STORAGE_ENV}, else ./runs). On a multi-node cluster it must be shared storage")
    p.add_argument("--max-concurrent", type=int, metavar="N",
                   help="at most N trials at once (default: the sweep's execution.max_concurrent_trials, else as "
                        "many as the resources allow)")
    p.add_argument("--num-cpus", type=int, metavar="N",
                   help="CPUs of the local Ray instance (default: all of this machine's)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the trial plan and per-trial resources, then exit; starts nothing")
    p.add_argument("--no-dashboard", action="store_true",
                   help="start the local instance without its dashboard (about 200 MiB less memory)")
    p.add_argument("--quiet", action="store_true", help="only stage-level progress lines, no Tune trial table")
    p.add_argument("--no-analyze", action="store_true",
                   help="transfer: stop after the transfer trials instead of running the analysis on them")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.max_concurrent is not None and args.max_concurrent < 1:
        return _fail(EXIT_BAD_INPUT, f"--max-concurrent must be >= 1, got {args.max_concurrent}")
    storage_base = args.storage or os.environ.get(STORAGE_ENV) or "runs"
    try:
        if args.stage == "status":
            return _status(args, storage_base)
        if args.dry_run:
            return _dry_run(args, storage_base)
        from itsel_ray.sweep.driver import run_command

        return run_command(args, storage_base, explicit_storage=bool(args.storage or os.environ.get(STORAGE_ENV)))
    except ConfigError as err:
        return _fail(EXIT_BAD_INPUT, str(err))


def _fail(code: int, message: str) -> int:
    print(f"error: {message}", file=sys.stderr, flush=True)
    return code


def sweep_root(storage_base: str, name: str) -> Storage:
    base = storage_base.rstrip("/") if "://" in storage_base else str(Path(storage_base).expanduser().resolve())
    return Storage(f"{base}/{name}" if "://" in base else str(Path(base, name)))


def default_sweep(gpus: float) -> tuple[str, str]:
    if gpus > 0:
        return "paper", f"the cluster has {gpus:g} GPU(s)"
    return "demo", "the cluster has no GPU (the paper sweep needs GPUs; the demo runs offline on CPUs)"


def _status(args, storage_base: str) -> int:
    from itsel_ray.sweep.status import format_status, sweeps_in

    if args.sweep:
        sweep = load_sweep(args.sweep, check_engine=False)
        print(format_status(sweep, sweep_root(storage_base, sweep.name)))
        return EXIT_OK
    names = sweeps_in(storage_base)
    if not names:
        print(f"no sweeps under {storage_base}; pass --sweep NAME (and --storage PATH) to check one")
        return EXIT_OK
    for name in names:
        stored = sweep_root(storage_base, name).path("sweep.yaml")
        sweep = load_sweep(stored if Path(stored).is_file() else name, check_engine=False)
        print(format_status(sweep, sweep_root(storage_base, name)) + "\n")
    return EXIT_OK


def _dry_run(args, storage_base: str) -> int:
    from itsel_ray.sweep import cluster as cl

    if args.address:
        info = cl.connect(args.address, dashboard=False)
        cl.shutdown()
    else:
        info = cl.local_resources(args.num_cpus)
    sweep = _pick_sweep(args, info.gpus)
    storage = sweep_root(storage_base, sweep.name)
    print(describe_plan(sweep, storage, info, args.max_concurrent))
    return EXIT_OK


def _pick_sweep(args, gpus: float) -> Sweep:
    if args.sweep:
        return load_sweep(args.sweep)
    name, why = default_sweep(gpus)
    print(f"sweep: {name} (no --sweep given and {why})", flush=True)
    return load_sweep(name)


def describe_plan(sweep: Sweep, storage: Storage, info, max_concurrent: int | None) -> str:
    from itsel_ray.sweep.cluster import ResourceError, concurrency, trial_resources

    lines = [f"sweep {sweep.name} ({sweep.path})", f"  {sweep.spec.description}".rstrip(),
             f"storage: {storage.root}", f"resources: {info.describe()}"]
    try:
        req = trial_resources(sweep.spec.resources, info, sweep_name=sweep.name)
        cap = max_concurrent or sweep.spec.execution.max_concurrent_trials
        fit = concurrency(req, info)
        lines.append(f"per trial: {req['cpu']:g} CPU, {req['gpu']:g} GPU -> {min(fit, cap or fit)} trial(s) at once"
                     + (f" (capped at {cap})" if cap else ""))
    except ResourceError as err:
        lines.append(f"per trial: CANNOT RUN HERE: {err}")
    for stage in ("tune", "transfer"):
        trials = plan_stage(sweep, stage)
        roles = {}
        for t in trials:
            roles[t.role] = roles.get(t.role, 0) + 1
        steps = {r: sweep.settings[r].train.max_steps for r in roles}
        lines.append(f"{stage}: {len(trials)} trials (" + ", ".join(
            f"{n} {r} x {steps[r]} steps, lr {sweep.settings[r].optim.lr:g}" for r, n in roles.items()) + ")")
        shown = trials[:3] + ([] if len(trials) <= 4 else [None]) + trials[-1:] if len(trials) > 4 else trials
        lines += ["    ..." if t is None else f"    {storage.path(t.key)}" for t in shown]
    lines.append(f"tables: {storage.path('results')}/results.{{parquet,csv}}, prompts.{{parquet,csv}}")
    return "\n".join(line for line in lines if line.strip())
