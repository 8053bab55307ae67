"""The sweep driver behind the CLI: check, lock, connect, run the stages in order, always leave tables.

Before Ray starts: the sweep is parsed (all of it, analysis definition included), the storage is checked (a folder,
writable, with free space), and the sweep's lock is taken, so a second driver on the same storage is refused with
the first one named. The tables are rewritten after every stage and on the way out (Ctrl-C included); the local Ray
instance is always stopped and the lock released. Finished work lives in the trial folders, so nothing here needs to
survive a killed driver.
"""

from __future__ import annotations

import os
import sys
import time
import traceback

import yaml

from itsel_ray.engine import get_engine
from itsel_ray.disk import describe_os_error, disk_full_error
from itsel_ray.runs.lock import DriverLock, LockedError
from itsel_ray.runs.resources import ResourceError, resource_plan
from itsel_ray.runs.source_prompts import MissingSourcesError
from itsel_ray.runs.storage import StorageError, sweep_root
from itsel_ray.runs.sweep_file import pick_sweep, sweep_plugins
from itsel_ray.runs.tables import write_tables
from itsel_ray.sweep import cluster as cl
from itsel_ray.sweep import exit_codes, reaper
from itsel_ray.sweep.console import Console
from itsel_ray.sweep.instance_watch import InstanceWatch
from itsel_ray.sweep.signals import StopRequests


class Interrupted(Exception):
    """A stage stopped before all its trials finished (Ctrl-C, a stop signal)."""


def run_command(args, storage_base: str, *, explicit_storage: bool = True) -> int:
    console = Console(level=args.log_level)
    stops = StopRequests()
    try:
        return _run(args, storage_base, explicit_storage, console, stops)
    finally:
        stops.restore()
        console.close()


def _run(args, storage_base: str, explicit_storage: bool, console: Console, stops: StopRequests) -> int:
    started = time.time()
    owns_ray = not cl.is_initialized()
    info = None
    sweep = _pick(args, console)  # everything that can be checked without Ray, first (plugins imported here)
    plugins = sweep_plugins(sweep)
    run = _Running(console)
    run.sweep = sweep
    try:
        stops.install()
        run.storage, run.lock = _claim(sweep, storage_base, args.stage)
        storage = run.storage
        _keep_log(console, storage, run.lock, args.stage)
        if owns_ray:
            if not args.address:  # the private instance must not outlive this process, however it ends
                run.reaper = reaper.spawn()
                cl.loopback_first()  # before Ray is imported, which it is here so that its start-up line is quiet
            import ray  # noqa: F401

            console.quiet_ray(args.verbose)
            info = cl.connect(args.address, num_cpus=args.num_cpus, dashboard=not args.no_dashboard,
                              plugins=plugins, metadata=job_metadata(args.stage, sweep, storage))
            if not args.address:  # its raylet or GCS dying ends the driver at once, with the rerun message
                run.watch = InstanceWatch.start(run.instance_lost)
        else:
            cl.check_job_ships(plugins)
            info = cl.cluster_info(args.address)
        stops.install()  # again: starting Ray put its own SIGTERM handler in place
        console.quiet_ray(args.verbose)
        if info.dashboard_url:
            console.info(f"Ray dashboard: {info.dashboard_url}")
        metrics = cl.metrics_url()
        if metrics:
            console.info(f"sweep metrics (Prometheus): {metrics}")
        if owns_ray and not args.address and not args.no_dashboard:
            for problem in cl.dashboard_problems(info.dashboard_url):
                console.warning(f"{problem}. The sweep runs as usual: follow it here, with `itsel-ray status` and "
                                "in <storage>/<sweep>/logs; stop the other Ray instance to have the whole "
                                "dashboard")
        console.info(f"Ray: {info.describe()}")
        if plugins:
            console.info(f"plugins shipped to every worker: {', '.join(m.name for m in plugins.modules) or '-'}; "
                         f"tasks from files: {', '.join(plugins.task_names) or '-'}")
        if runs_trials(args.stage):  # fail fast (GPUs, GPU memory per task), before writing anything; the
            resource_plan(sweep, info)  # analysis and `prepare` need no trial resources (a GPU sweep on a laptop)
        if args.address and not storage.remote and not explicit_storage:
            console.warning(f"storage defaults to {storage.root} on this node; a multi-node cluster needs shared "
                            "storage (--storage /shared/path or s3://...)")
        storage.write_bytes("sweep.yaml", yaml.safe_dump(dict(sweep.raw), sort_keys=False).encode())
        code = _run_stages(args, sweep, storage, info, console, stops)
        _outcome_line(console, code, started, storage)
        return code
    except (cl.ClusterError, LockedError, ResourceError, StorageError) as err:
        console.error(str(err))
        return exit_codes.CANNOT_RUN
    except (KeyboardInterrupt, Interrupted) as err:
        console.error(f"interrupted{' by ' + stops.name if stops.first else ''}"
                      f"{': ' + str(err) if str(err) else ''}. Finished trials are kept; rerun the same "
                      "command to continue from the trials' last state.")
        return stops.exit_code
    except Exception as err:
        fault = classify_fault(err)
        if fault is None:
            raise
        code, message = fault
        console.error(message)
        return code
    finally:
        if run.watch is not None:
            run.watch.stop()
        if run.storage is not None and run.lock is not None:
            try:
                write_tables(run.sweep, run.storage, recover=_recover(run.sweep))
            except Exception as err:  # never mask the real outcome
                console.warning(f"could not rewrite the results tables: {err}")
        if owns_ray:
            cl.shutdown()
            reaper.finish(run.reaper)
        if run.lock is not None:
            _upload_log(console, run.storage)
            run.lock.release()


class _Running:
    """What the driver holds while it runs, so that a lost Ray instance can be handled from the watch's thread."""

    def __init__(self, console: Console):
        self.console = console
        self.sweep = self.storage = self.lock = self.reaper = self.watch = None

    def instance_lost(self, what: str) -> None:
        """The private instance's raylet or GCS ended: Ray cannot be used (nor shut down) from here on. Say so,
        write the tables and free the lock (storage only), and end the process with the rerun status; the reaper
        stops the instance's remaining processes when it sees this process go without its "done"."""
        self.console.error(f"the private Ray instance stopped: its {what} process ended (killed, or out of memory). "
                           "Finished trials are kept; rerun the same command to continue from the trials' last state.")
        try:
            if self.storage is not None and self.lock is not None:
                write_tables(self.sweep, self.storage, recover=_recover(self.sweep))
        except Exception as err:
            self.console.warning(f"could not rewrite the results tables: {err}")
        finally:
            if self.lock is not None:
                self.lock.release()
            self.console.close()
            os._exit(exit_codes.INTERRUPTED)


OUTCOMES = {exit_codes.FAILED_TRIALS: "some trials failed", exit_codes.BAD_INPUT: "bad input, nothing was started",
            exit_codes.CANNOT_RUN: "cannot run here", exit_codes.INTERRUPTED: "interrupted, rerun to continue",
            exit_codes.TERMINATED: "stopped by SIGTERM, rerun to continue"}


def _outcome_line(console: Console, code: int, started: float, storage) -> None:
    """The last lines: "finished" only when every stage succeeded, else what stopped it (the log keeps both)."""
    took = time.time() - started
    if code == exit_codes.OK:
        console.summary(f"finished in {took:.1f}s; results in {storage.path('results')}")
    else:
        console.summary(f"stopped after {took:.1f}s with exit status {code} ({OUTCOMES.get(code, 'failed')}); the "
                        f"results tables (done trials only) are in {storage.path('results')}")
    if console.log_path:
        console.summary(f"full log: {console.log_path}" + (
            f" (stored as {storage.path('logs/' + console.log_path.name)})" if storage.remote else ""))


def classify_fault(err: BaseException) -> tuple[int, str] | None:
    """(exit status, one line) for a failure of the machine rather than of the code: a full or unwritable disk
    (CANNOT_RUN, naming the file), a Ray system error such as a lost node or actor (INTERRUPTED, rerun); None for
    anything else (a bug: its traceback is shown)."""
    if disk_full_error(err) is not None:
        return exit_codes.CANNOT_RUN, describe_os_error(err)
    ray = sys.modules.get("ray")
    ray_error = getattr(getattr(ray, "exceptions", None), "RayError", None)
    if ray_error is not None and isinstance(err, ray_error) and not _is_task_error(err):
        first = str(err).splitlines()[0][:300] if str(err) else ""
        return exit_codes.INTERRUPTED, (f"Ray failed ({type(err).__name__}: {first}). Finished trials are kept; "
                                        "rerun the same command to continue from the trials' last state.")
    if isinstance(err, OSError) and not isinstance(err, ConnectionError):
        return exit_codes.CANNOT_RUN, describe_os_error(err)
    return None


def _is_task_error(err: BaseException) -> bool:
    """A RayTaskError carries an exception raised by our own code in a task: not a Ray failure."""
    task_error = getattr(getattr(sys.modules.get("ray"), "exceptions", None), "RayTaskError", None)
    return task_error is not None and isinstance(err, task_error)


def job_metadata(command: str, sweep, storage) -> dict:
    """What the dashboard's Jobs page shows for this driver: the Name (`job_name`) says sweep and command, the
    metadata the storage."""
    name = f"itsel-ray {sweep.name} {command}" if sweep is not None else f"itsel-ray {command}"
    out = {"job_name": name, "command": command, "tool": "itsel-ray"}
    if sweep is not None:
        out["sweep"] = sweep.name
    if storage is not None:
        out["storage"] = storage.root
    return out


def _pick(args, console: Console):
    sweep, why = pick_sweep(args.sweep, overrides=args.overrides, include=getattr(args, "include", None) or ())
    if why:
        console.info(why)
    return sweep


def _claim(sweep, storage_base: str, command: str):
    storage = sweep_root(storage_base, sweep.name)
    storage.check_usable()
    storage.check_entries()  # no symlink, FIFO or device anywhere in the sweep's folder
    return storage, DriverLock(storage, command).acquire()


def _keep_log(console: Console, storage, lock, command: str) -> None:
    """The full log: in <sweep>/logs/ on a folder; on an object store in a node-local file put there at the end."""
    if not storage.remote:
        console.keep_log(storage.local("logs"), command)
        return
    from itsel_ray.runs import node_cache

    console.keep_log(node_cache.location(storage.root, "logs"), command)
    if lock.mode == "advisory":
        console.warning(f"{storage.root} offers no conditional writes here (boto3 missing, or not s3://): the "
                        "driver lock is advisory, so start one driver at a time")


def _upload_log(console: Console, storage) -> None:
    if storage is None or not storage.remote or console.log_path is None:
        return
    try:
        storage.upload_file(console.log_path, f"logs/{console.log_path.name}")
    except OSError as err:
        console.warning(f"could not store the log {console.log_path}: {err}")


def _recover(sweep):
    return get_engine(sweep.spec.engine).recover_record


STAGE_RUNS = {"all": ["prepare", "tune", "transfer", "analyze"], "tune": ["prepare", "tune"],
              "transfer": ["transfer", "analyze"]}


def runs_trials(command: str) -> bool:
    """Whether the command runs trial stages (which need the trials' resources), not only prepare or analyze."""
    return any(stage in ("tune", "transfer") for stage in STAGE_RUNS.get(command, [command]))


def _run_stages(args, sweep, storage, info, console: Console, stops: StopRequests | None = None) -> int:
    from itsel_ray.analysis.inputs import InputError
    from itsel_ray.artifacts import PromptFileError
    from itsel_ray.sweep.analyze_stage import AnalysisUnavailable, run_analyze
    from itsel_ray.sweep.stages import outcome

    stages = list(STAGE_RUNS.get(args.stage, [args.stage]))
    if args.stage == "transfer" and args.no_analyze:
        stages.remove("analyze")
    if args.stage == "transfer":
        tune_state = outcome(sweep, storage, "tune", recover=_recover(sweep))
        if not tune_state.complete:
            console.info(f"[transfer] tune results missing ({len(tune_state.unfinished)} of {tune_state.total} "
                         "trials unfinished): running tune first")
            stages = ["prepare", "tune", *stages]
    failed = False
    for k, stage in enumerate(stages, 1):
        console.step = (k, len(stages)) if len(stages) > 1 else None
        if stage == "prepare":
            if not _prepare(sweep, storage, console):
                return exit_codes.BAD_INPUT
            continue
        if stage == "analyze":
            try:
                report = run_analyze(sweep, storage, console=console, recover=_recover(sweep))
                console.summary(f"[analyze] report: {report}")
            except AnalysisUnavailable as err:
                console.error(f"[analyze] not run: {err}")
                failed = True
            except (InputError, PromptFileError) as err:  # a table or prompt file the analysis cannot use
                console.error(f"[analyze] failed: {err} (the results tables were written; the previous report is "
                              "kept)")
                failed = True
            except StorageError as err:
                console.error(f"[analyze] {err}")
                return exit_codes.CANNOT_RUN
            except Exception as err:  # the tables are written; show the analysis' own error and go on to exit 1
                fault = classify_fault(err)
                if fault is not None:
                    console.error(f"[analyze] {fault[1]} (the previous report is kept)")
                    return fault[0]
                console.error("[analyze] failed (the results tables were written; the previous report is kept):\n"
                              + traceback.format_exc())
                failed = True
            continue
        try:
            failed |= _one_stage(args, sweep, storage, info, stage, console,
                                 later=_later_trials(sweep, stage, stages[k:]), stops=stops)
        except MissingSourcesError as err:
            console.error(str(err))
            return exit_codes.FAILED_TRIALS
    console.step = None
    return exit_codes.FAILED_TRIALS if failed else exit_codes.OK


def _prior_s(sweep, storage, stage: str) -> float | None:
    """A transfer trial's duration before any has finished: the tune trials' time per step (from storage) times
    the transfer trials' steps; None for other stages or without finished tune trials."""
    from itsel_ray.runs.plan import plan_stage
    from itsel_ray.sweep.stages import outcome

    if stage != "transfer":
        return None
    step_s = outcome(sweep, storage, "tune", recover=_recover(sweep)).step_s
    steps = [sweep.settings[t.role].train.max_steps for t in plan_stage(sweep, "transfer")]
    return step_s * sum(steps) / len(steps) if step_s and steps else None


def _later_trials(sweep, stage: str, later: list[str]) -> float:
    """The trials of the `later` stages, in units of this stage's trials (by their steps), for the command's ETA.
    A later stage's trials count whole (what storage already holds of it is not read before it runs)."""
    from itsel_ray.runs.plan import plan_stage

    def steps(name: str) -> list[int]:
        return [sweep.settings[t.role].train.max_steps for t in plan_stage(sweep, name)]

    here = steps(stage)
    if not here:
        return 0.0
    mean = sum(here) / len(here)
    return sum(s for name in later if name in ("tune", "transfer") for s in steps(name)) / max(mean, 1)


def _prepare(sweep, storage, console: Console) -> bool:
    """Load, check and tokenise every task once (cheap when done); False when a task's data is wrong."""
    from itsel_ray.runs.prepared import console_lines, describe, prepare_sweep, problems
    from itsel_ray.sweep.parallel import make_ray_map

    started = time.time()
    try:
        reports, root = prepare_sweep(sweep, storage, make_ray_map(num_cpus=1, chunksize=1))
    except Exception as err:  # a full disk in a prepare task arrives wrapped by Ray: name the file, say "disk full"
        if disk_full_error(err) is not None:
            raise StorageError(f"[prepare] {describe_os_error(err)}") from None
        raise
    if root is None:
        console.info("[prepare] nothing to prepare (the stand-in engine reads no data)")
        return True
    console.debug(describe(reports))
    bad = problems(reports)
    if bad:
        console.info(describe(reports))
        console.error(f"[prepare] {len(bad)} problem(s) in the tasks' data; no trial was started:\n  "
                      + "\n  ".join(bad))
        return False
    for line in console_lines(reports):
        (console.warning if line.startswith("warning: ") else console.info)(line.removeprefix("warning: "))
    reused = sum(r.reused for r in reports)
    console.info(f"[prepare] {len(reports)} task(s) ready in {root} ({reused} already up to date, "
                 f"{time.time() - started:.1f}s)")
    return True


def _one_stage(args, sweep, storage, info, stage: str, console: Console, *, later: float = 0.0,
               stops: StopRequests | None = None) -> bool:
    """Run one stage; True when trials failed. Raises Interrupted when trials were left unfinished."""
    from itsel_ray.sweep.stages import outcome, run_stage
    from itsel_ray.sweep.tracking import tracking_callbacks

    before = outcome(sweep, storage, stage, recover=_recover(sweep))
    if before.complete and not before.failed:
        console.info(f"[{stage}] all {before.total} trials already done")
        return False
    console.info(f"[{stage}] {before.done}/{before.total} done; running the rest"
                 + (f" ({len(before.failed)} failed before: retried)" if before.failed else ""))
    after = run_stage(sweep, stage, storage, info, max_concurrent=args.max_concurrent, verbose=args.verbose,
                      console=console, callbacks=tracking_callbacks(sweep, stage, storage), recover=_recover(sweep),
                      before=before, later=later, stops=stops, prior_s=_prior_s(sweep, storage, stage))
    write_tables(sweep, storage, recover=_recover(sweep))
    console.info(after.line())
    if not after.complete or (stops is not None and stops.requested):
        raise Interrupted(f"{stage}: {len(after.unfinished)} trial(s) unfinished")
    return bool(after.failed)
