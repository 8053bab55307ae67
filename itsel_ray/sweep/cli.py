"""The command line of the sweep stages (`python -m itsel_ray.sweep STAGE`, `itsel-ray STAGE`): arguments, `status`
and `--dry-run` (neither starts Ray), and the hand-off to the driver for the stages that run trials.

Every user mistake ends here as one line on stderr and an exit status from exit_codes, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys

from itsel_ray.runs.cost import cost_lines
from itsel_ray.runs.resources import ClusterInfo, ResourceError, concurrency, local_resources, memory_lines, resource_plan
from itsel_ray.runs.storage import Storage, StorageError, sweep_root
from itsel_ray.runs.sweep_file import load_sweep, pick_sweep
from itsel_ray.runs.sweep_spec import Sweep
from itsel_ray.schema import ConfigError
from itsel_ray.sweep import exit_codes

STORAGE_ENV = "ITSEL_RAY_STORAGE"
STAGES = ("prepare", "tune", "transfer", "analyze", "all", "status")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

STAGE_HELP = """\
stages:
  prepare   load every task's splits once (the Hub, or a local mirror: data.mirror / $ITSEL_RAY_DATA_MIRROR), check
            them against the task declarations, tokenise them once into the cache trials memory-map; cheap when
            done, and run before `tune` anyway. A wrong schema stops here, naming task, split and column
  tune      prompt-tune each source task on the source seeds and each target task on the target seeds
            (the targets' runs are the no-transfer baselines and the target prompts of the analysis)
  transfer  tune every target from every source's best prompt, on the target seeds; runs `tune` first
            when its results are missing, and `analyze` once every transfer trial is done (--no-analyze skips it)
  analyze   write the results tables and run the task-selection analysis on them
  all       prepare, tune, transfer, analyze
  status    per stage: trials done / running / retrying / failed / not started and an ETA, read from storage;
            starts nothing (no Ray)

examples:
  {prog} transfer                                   the offline demo on a local Ray instance (no GPU needed)
  {prog} transfer --sweep paper --dry-run           the paper's plan, resolved settings and resources
  {prog} tune --sweep smoke --set trial.train.max_steps=40 --set grid.target_seeds=[28]
  {prog} transfer --address auto --sweep paper --storage /mnt/shared/itsel-ray   on a Ray cluster
  {prog} status --sweep paper --storage /mnt/shared/itsel-ray

Re-running a command after Ctrl-C, a killed driver or a lost worker continues the sweep: finished trials are
kept, interrupted ones resume from their last state. One driver at a time per sweep storage.

exit status: 0 ok, 1 some trials failed, 2 bad sweep file, override, argument or task data, 3 cannot run here
(resources, cluster, storage, a full disk, another driver), 130 interrupted by Ctrl-C or Ray lost, 143 stopped by
SIGTERM (rerun to continue).
"""


def build_parser(prog: str = "python -m itsel_ray.sweep") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run the intermediate-task prompt-transfer study as a Ray Tune sweep.",
        epilog=STAGE_HELP.format(prog=prog))
    p.add_argument("stage", choices=STAGES, metavar="STAGE", help=" | ".join(STAGES) + " (see below)")
    p.add_argument("--sweep", metavar="NAME|PATH",
                   help="a shipped sweep (demo, paper, smoke) or a YAML file (default: demo, the offline demo; the "
                        "paper's study is --sweep paper)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one setting of the sweep file, by its dotted key (repeatable), checked like the "
                        "file: e.g. --set trial.train.max_steps=2000 --set grid.target_seeds=[28]")
    p.add_argument("--include", action="append", default=[], metavar="PATH",
                   help="also load a plugin (.py file, package folder or module name) or a task file or folder "
                        "(.yaml), as the sweep's `plugins:` / `tasks:` do; shipped to every worker (repeatable)")
    p.add_argument("--address", metavar="ADDR",
                   help="Ray cluster to join: 'auto' on a cluster node or under `ray job submit`, or HOST:PORT "
                        "(token auth). Default: start a private local Ray instance (loopback only, auth off) and "
                        "stop it at the end")
    p.add_argument("--storage", metavar="PATH",
                   help=f"root for trial folders, tables and logs: a folder, an NFS mount or s3://bucket/prefix "
                        f"(default: ${STORAGE_ENV}, else ./runs). On a multi-node cluster it must be shared storage")
    p.add_argument("--max-concurrent", type=int, metavar="N",
                   help="at most N trials at once (default: the sweep's execution.max_concurrent_trials, else as "
                        "many as the resources allow)")
    p.add_argument("--num-cpus", type=int, metavar="N",
                   help="CPUs of the local Ray instance (default: all of this machine's)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the resolved settings of one trial per role, the plan and the per-trial resources; "
                        "starts nothing; exits 3 when the plan cannot run on this cluster")
    p.add_argument("--no-dashboard", action="store_true",
                   help="start the local instance without its dashboard (about 200 MiB less memory)")
    p.add_argument("--no-analyze", action="store_true",
                   help="transfer: stop after the transfer trials instead of running the analysis on them")
    p.add_argument("--log-level", default="INFO", type=str.upper, choices=LOG_LEVELS,
                   help="console messages at or above this level (default INFO); the full log is kept in "
                        "<storage>/<sweep>/logs/ either way")
    p.add_argument("-v", "--verbose", action="count", default=0,
                   help="also show Tune's own progress tables (-v: per trial status, -vv: every result)")
    p.add_argument("--quiet", action="store_true", help="only warnings and errors (same as --log-level WARNING)")
    return p


def fail(code: int, message: str) -> int:
    print(f"error: {message}", file=sys.stderr, flush=True)
    return code


def main(argv: list[str] | None = None, *, prog: str = "python -m itsel_ray.sweep") -> int:
    args = build_parser(prog).parse_args(argv)
    for flag in ("max_concurrent", "num_cpus"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            return fail(exit_codes.BAD_INPUT, f"--{flag.replace('_', '-')} must be >= 1, got {value}")
    if args.quiet:
        args.log_level = "WARNING"
    for flag in ("sweep", "storage", "address"):  # an empty value is a mistake (an unset shell variable), not "default"
        value = getattr(args, flag)
        if value is not None and not value.strip():
            return fail(exit_codes.BAD_INPUT, f"--{flag} is empty; give a value or leave the option out")
    if not args.address:
        from itsel_ray.sweep.cluster import loopback_first

        loopback_first()
    storage_base = args.storage or os.environ.get(STORAGE_ENV) or "runs"
    try:
        if args.stage == "status":
            return _status(args, storage_base)
        if args.dry_run:
            return _dry_run(args, storage_base)
        from itsel_ray.sweep.driver import run_command

        return run_command(args, storage_base, explicit_storage=bool(args.storage or os.environ.get(STORAGE_ENV)))
    except ConfigError as err:
        return fail(exit_codes.BAD_INPUT, str(err))
    except (ResourceError, StorageError) as err:
        return fail(exit_codes.CANNOT_RUN, str(err))


def _status(args, storage_base: str) -> int:
    from itsel_ray.runs.status import check_storage_base, format_status, sweeps_in

    try:
        check_storage_base(storage_base)
    except StorageError as err:
        return fail(exit_codes.BAD_INPUT, str(err))
    if args.sweep:
        sweep = load_sweep(args.sweep, overrides=args.overrides, check_engine=False, include=args.include)
        root = sweep_root(storage_base, sweep.name)
        if not root.remote and not root.local().is_dir():
            held = sweeps_in(storage_base)
            return fail(exit_codes.BAD_INPUT, f"no sweep {sweep.name!r} in storage {storage_base}: it holds "
                        + (f"{', '.join(held)} (pass --sweep {held[0]})" if held else "no sweep")
                        + "; or pass the --storage the sweep ran with")
        print(format_status(sweep, root))
        return exit_codes.OK
    names = sweeps_in(storage_base)
    if not names:
        print(f"no sweeps under {storage_base}; pass --sweep NAME (and --storage PATH) to check one")
        return exit_codes.OK
    for name in names:
        root = sweep_root(storage_base, name)
        sweep = load_sweep(_stored_definition(root) or name, check_engine=False)
        print(format_status(sweep, root) + "\n")
    return exit_codes.OK


def _stored_definition(root: Storage) -> str | None:
    """The path of the sweep.yaml a sweep ran with (a store's: a node-local copy), or None."""
    if not root.remote:
        stored = root.local("sweep.yaml")
        return str(stored) if stored.is_file() else None
    from itsel_ray.runs.stored_results import local_file

    try:
        return str(local_file(root.path("sweep.yaml")))
    except FileNotFoundError:
        return None


def _dry_run(args, storage_base: str) -> int:
    if args.address:
        from itsel_ray.sweep import cluster as cl

        try:
            info = cl.connect(args.address, dashboard=False)
        except cl.ClusterError as err:
            return fail(exit_codes.CANNOT_RUN, str(err))
        finally:
            cl.shutdown()
    else:
        info = local_resources(args.num_cpus)
    sweep, why = pick_sweep(args.sweep, overrides=args.overrides, include=args.include)
    if why:
        print(why)
    storage = sweep_root(storage_base, sweep.name)
    text, runnable = describe_plan(sweep, storage, info, args.max_concurrent)
    print(text)
    if not runnable:
        return fail(exit_codes.CANNOT_RUN, "the plan cannot run here: " + text.split("CANNOT RUN HERE: ", 1)[1]
                    .splitlines()[0])
    return exit_codes.OK


def describe_plan(sweep: Sweep, storage: Storage, info: ClusterInfo, max_concurrent: int | None) -> tuple[str, bool]:
    """The plan as --dry-run prints it, and whether it can run on `info`."""
    import yaml

    from itsel_ray.runs.plan import plan_stage

    lines = [f"sweep {sweep.name} ({sweep.path})", f"  {sweep.spec.description}".rstrip(),
             f"storage: {storage.root}", f"resources: {info.describe()}"]
    runnable = True
    try:
        plan = resource_plan(sweep, info)
        cap = max_concurrent or sweep.spec.execution.max_concurrent_trials
        shares = sorted({m.share or 0.0 for m in plan.tasks.values()})
        fit = concurrency({"cpu": plan.cpu, "gpu": max(shares)}, info)
        lines.append(f"per trial: {plan.cpu:g} CPU, {'/'.join(f'{g:g}' for g in shares)} GPU -> at least "
                     f"{min(fit, cap or fit)} trial(s) at once" + (f" (capped at {cap})" if cap else ""))
    except ResourceError as err:
        lines.append(f"per trial: CANNOT RUN HERE: {err}")
        runnable = False
    lines += memory_lines(sweep, info.gpu_memory)
    lines += cost_lines(sweep, storage)
    for stage in ("tune", "transfer"):
        trials = plan_stage(sweep, stage)
        roles: dict[str, int] = {}
        for t in trials:
            roles[t.role] = roles.get(t.role, 0) + 1
        steps = {r: sweep.settings[r].train.max_steps for r in roles}
        lines.append(f"{stage}: {len(trials)} trials (" + ", ".join(
            f"{n} {r} x {steps[r]} steps, lr {sweep.settings[r].optim.lr:g}" for r, n in roles.items()) + ")")
        shown = trials[:3] + [None] + trials[-1:] if len(trials) > 4 else trials
        lines += ["    ..." if t is None else f"    {storage.path(t.key)}" for t in shown]
    lines.append(f"tables: {storage.path('results')}/results.{{parquet,csv}}, prompts.{{parquet,csv}}")
    lines.append("resolved settings of one trial per role:")
    examples = [("source", sweep.grid.sources[0], sweep.grid.source_seeds[0], None),
                ("target", sweep.grid.targets[0], sweep.grid.target_seeds[0], None),
                ("transfer", sweep.grid.targets[0], sweep.grid.target_seeds[0], sweep.grid.sources[0])]
    for role, task, seed, source in examples:
        cfg = sweep.trial_config(role, task=task, seed=seed, source=source).to_dict()
        body = yaml.safe_dump(cfg, sort_keys=False, default_flow_style=None, width=110).rstrip()
        lines.append(f"  {role}:")
        lines += [f"    {line}" for line in body.splitlines()]
    if not runnable:
        lines.append("CANNOT RUN HERE (see 'per trial' above)")
    return "\n".join(line for line in lines if line.strip()), runnable
