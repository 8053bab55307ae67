"""The sweep at the paper's size, 10x and 100x: cost per trial, slots kept busy, start-up, ETA.

The paper's grid (13 sources x 10 targets) with the stand-in engine (`engine: fake`, each trial sleeping
--trial-s in two evaluations) on a local Ray instance with fake resources (--cpus CPUs, --gpus GPUs, 0.25 GPU per
trial: 16 slots on 4 GPUs). Scale 1 is the paper's 69 tune + 390 transfer trials (3 seeds per role); scale 10 uses
30 seeds per role (690 + 3,900), scale 100 300 seeds (6,900 + 39,000 = 45,900). Each run is a fresh process
(`itsel-ray transfer --no-analyze`, timed from the driver's start); this process watches it from outside, so its
sampling costs the driver nothing. Three parts:

1. trial creation: driver CPU for Tune to create every transfer trial from the stage's queue (no cluster), at
   --creation scales, and the single grid_search it replaces at the smaller sizes (quadratic).
2. full runs at --scales: wall time, driver CPU seconds per trial, driver memory, bytes written and stored per
   trial; per stage, counted from the trials' own start/end records: peak and mean trials running at once over the
   stage's middle half against the slots, distinct worker processes, time from the stage's start to its first trial
   and to all slots busy, and from the driver's start to the first trial; the ETA that `status` gives (the first
   reading and at 25/50/75 % of the transfer stage) against the time really left until the last trial finished.
3. start-up at --startup scales: the tune stage's results written in-process first (not timed), then the
   transfer stage is started, watched until every slot has been busy for --busy-s seconds, and interrupted:
   driver start to the first trial and to all slots busy, the driver's CPU until then, peak and workers.

    python benchmarks/bench_sweep_scale.py                         # all three (about 20 minutes on 2 cores)
    python benchmarks/bench_sweep_scale.py --scales 1 --startup --creation 1 10   # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ["mnli", "qqp", "qnli", "record", "cxc", "squad", "drop", "sst2", "winogrande", "hellaswag", "multirc",
           "cosmosqa", "race"]
TARGETS = ["boolq", "cola", "stsb", "wic", "cr", "mrpc", "rte", "wsc", "copa", "cb"]


def sweep_definition(scale: int, trial_s: float) -> dict:
    seeds = list(range(1, 3 * scale + 1))
    return {
        "name": f"scale{scale}", "engine": "fake", "analysis": "paper",
        "grid": {"sources": SOURCES, "targets": TARGETS, "source_seeds": seeds, "target_seeds": [s + 1000 for s in seeds]},
        "trial": {"train": {"max_steps": 20, "eval_every": 10, "save_every": 10}},
        "resources": {"use_gpu": "always", "gpu_per_trial": 0.25, "cpu_per_trial": 1},
        "testing": {"report_delay_s": trial_s / 2},
    }


def write_sweep(folder: Path, scale: int, trial_s: float) -> Path:
    import yaml

    path = folder / f"scale{scale}.yaml"
    path.write_text(yaml.safe_dump(sweep_definition(scale, trial_s)))
    return path


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# --------------------------------------------------------------------------------------------- 1. trial creation


def creation(scale: int, grid: bool) -> dict:
    """Driver CPU for Tune to create every transfer trial of the sweep at `scale` (the real per-trial requests)."""
    from ray import tune
    from ray.tune.experiment import Experiment
    from ray.tune.search import BasicVariantGenerator
    from ray.tune.search.search_generator import SearchGenerator

    from itsel_ray.runs.plan import plan_stage, trial_point
    from itsel_ray.runs.resources import ClusterInfo, resource_plan
    from itsel_ray.runs.sweep_file import load_sweep
    from itsel_ray.sweep.scheduling import PlanQueue
    from itsel_ray.sweep.stages import _Requests

    with tempfile.TemporaryDirectory() as tmp:
        sweep = load_sweep(str(write_sweep(Path(tmp), scale, 1.0)))
        trials = plan_stage(sweep, "transfer")
        node = {"CPU": 16.0, "GPU": 4.0}
        plan = resource_plan(sweep, ClusterInfo(total=node, nodes=[node]))
        trainable = tune.with_resources(lambda config: None, _Requests(sweep, "transfer", plan))
        t0 = time.process_time()
        if grid:  # what the stage did before: one grid_search axis over every trial's point
            search = BasicVariantGenerator()
            space = {"run": tune.grid_search([trial_point(t)["run"] for t in trials])}
            search.add_configurations([Experiment("x", trainable, config=space, storage_path=tmp)])
        else:
            search = SearchGenerator(PlanQueue(trials))
            search.add_configurations([Experiment("x", trainable, num_samples=len(trials), storage_path=tmp)])
        first, made = None, 0
        while search.next_trial() is not None:
            made += 1
            first = time.process_time() - t0 if first is None else first
        return {"scale": scale, "how": "grid_search" if grid else "queue", "trials": made,
                "first_s": first, "all_s": time.process_time() - t0}


# --------------------------------------------------------------------------------------------- the driver process


def child(scale: int, trial_s: float, cpus: int, gpus: int, store: Path, out: Path, seed_tune: bool) -> None:
    """One driver: `transfer --no-analyze` on a local instance with fake resources; writes its numbers to `out`."""
    import psutil

    from itsel_ray.sweep.cluster import shutdown, start_local

    sweep_path = write_sweep(store.parent, scale, trial_s)
    if seed_tune:
        seed_tune_results(sweep_path, store)
    me = psutil.Process()
    (store.parent / "t0.json").write_text(json.dumps({"t0": time.time(), "pid": os.getpid()}))
    rss0, cpu0, t0 = me.memory_info().rss, sum(me.cpu_times()[:2]), time.time()
    io0 = me.io_counters().write_bytes
    start_local(cpus, num_gpus=gpus, object_store_memory=256 * 1024**2)
    from itsel_ray.sweep.cli import main

    code = main(["transfer", "--no-analyze", "--sweep", str(sweep_path), "--storage", str(store),
                 "--log-level", "WARNING"])
    wall, cpu, rss1 = time.time() - t0, sum(me.cpu_times()[:2]) - cpu0, me.memory_info().rss
    written = me.io_counters().write_bytes - io0  # the driver's own writes: experiment state, logs, tables
    workers = sum(_written(p) for p in me.children(recursive=True))  # the trial workers, still alive
    shutdown()
    out.write_text(json.dumps({"code": code, "wall_s": wall, "driver_cpu_s": cpu, "driver_rss_mb": rss1 / 2**20,
                               "driver_rss_growth_mb": (rss1 - rss0) / 2**20, "driver_written": written,
                               "workers_written": workers}))


def _written(proc) -> int:
    try:
        return proc.io_counters().write_bytes
    except Exception:  # gone, or not readable
        return 0


def seed_tune_results(sweep_path: Path, store: Path) -> None:
    """Every tune trial finished, written in-process by the stand-in engine as a worker would (not timed)."""
    from itsel_ray.artifacts import write_json
    from itsel_ray.engine import get_engine
    from itsel_ray.runs.plan import plan_stage
    from itsel_ray.runs.storage import sweep_root
    from itsel_ray.runs.sweep_file import load_sweep
    from itsel_ray.runs.trial_state import MARKER, expected_fingerprint, marker_record, trial_config

    sweep = load_sweep(str(sweep_path))
    storage = sweep_root(str(store), sweep.name)
    engine = get_engine(sweep.spec.engine)
    for t in plan_stage(sweep, "tune"):
        work = storage.local(t.key)
        work.mkdir(parents=True, exist_ok=True)
        write_json(work / MARKER, marker_record(t, expected_fingerprint(sweep, t)))
        engine.run_trial(trial_config(sweep, t), work)


# --------------------------------------------------------------------------------------------- watching from outside


class LogFollower:
    """Reads the stage's progress log as it grows (only the new bytes) into the run's view, as `status` does."""

    def __init__(self, path: Path):
        from itsel_ray.runs.progress import RunProgress

        self.path, self.offset, self.run = path, 0, RunProgress()

    def poll(self):
        from itsel_ray.runs.progress import TRIAL_STATES, RunProgress

        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except OSError:
            return self.run
        end = data.rfind(b"\n") + 1
        self.offset += end
        for raw in data[:end].decode("utf-8", errors="replace").splitlines():
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            kind = line.get("kind")
            if kind == "run":
                self.run = RunProgress(run=line.get("run"), started=line["t"], todo=int(line.get("todo") or 0),
                                       slots=int(line.get("slots") or 0))  # as `status` reads it (latest_run)
            elif kind == "trial" and line.get("state") in TRIAL_STATES:
                self.run.trial_line(line.get("trial"), line["state"], line["t"], line.get("took"))
            elif kind == "tune":
                self.run.tune = dict(line.get("counts") or {})
            elif kind == "end":
                self.run.ended = line
        return self.run


def running_now(events: Path) -> tuple[int, int]:
    """(trials whose last record is a start, trials seen) from the attempt records written so far."""
    running = seen = 0
    try:
        folders = list(os.scandir(events))
    except OSError:
        return 0, 0
    for d in folders:
        kinds = sorted(os.listdir(d.path))
        seen += 1
        running += bool(kinds) and kinds[-1].endswith("-start.json")
    return running, seen


def launch(scale: int, args, tmp: Path, *, seed_tune: bool) -> tuple[subprocess.Popen, Path, Path]:
    store, out = tmp / "store", tmp / "out.json"
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    cmd = [sys.executable, __file__, "--child", str(scale), "--store", str(store), "--out", str(out), "--trial-s",
           str(args.trial_s), "--cpus", str(args.cpus), "--gpus", str(args.gpus)] + (["--seed-tune"] if seed_tune else [])
    return subprocess.Popen(cmd, env=env, cwd=ROOT), store, out


def stage_numbers(sweep_path: Path, store: Path, stage: str, t_driver: float) -> dict:
    from itsel_ray.runs.occupancy import occupancy, stage_spans
    from itsel_ray.runs.plan import plan_stage
    from itsel_ray.runs.progress import latest_run
    from itsel_ray.runs.storage import sweep_root
    from itsel_ray.runs.sweep_file import load_sweep

    sweep = load_sweep(str(sweep_path))
    storage = sweep_root(str(store), sweep.name)
    run = latest_run(storage, stage)
    lines = [json.loads(x) for x in (storage.local(f"progress/{stage}.jsonl")).read_text().splitlines() if x.strip()]
    slots = next(x.get("slots") for x in lines if x["kind"] == "run")
    spans = [s for s in stage_spans(storage, plan_stage(sweep, stage)) if s.start >= run.started]
    occ = occupancy(spans, slots, run.started)
    return {"stage": stage, "trials": run.todo, "wall_s": (run.ended or {}).get("t", time.time()) - run.started,
            "driver_to_first_s": min(s.start for s in spans) - t_driver if spans else None, **occ.row()}


def full_run(scale: int, args) -> dict:
    from itsel_ray.runs.progress import eta_seconds

    with tempfile.TemporaryDirectory() as tmp:
        proc, store, out = launch(scale, args, Path(tmp), seed_tune=False)
        follow = LogFollower(store / f"scale{scale}" / "progress" / "transfer.jsonl")
        samples = []
        while proc.poll() is None:  # what `status` would say, every second, during the transfer stage
            time.sleep(1.0)
            run = follow.poll()
            if run.run is None or run.ended is not None:
                continue
            finished = len(run.completions)
            samples.append((time.time(), finished, run.todo, eta_seconds(run.todo - finished, run, time.time())))
        if proc.returncode:
            raise SystemExit(f"scale {scale}: the driver exited with {proc.returncode}")
        row = json.loads(out.read_text())
        t_driver = json.loads((Path(tmp) / "t0.json").read_text())["t0"]
        sweep_path = Path(tmp) / f"scale{scale}.yaml"
        row["stages"] = [stage_numbers(sweep_path, store, s, t_driver) for s in ("tune", "transfer")]
        row["trials"] = sum(s["trials"] for s in row["stages"])
        t_end = follow.poll().completions[-1]  # the last trial done: what the ETA predicts
        eta = []
        with_eta = [s for s in samples if s[3] is not None]
        picks = [("first", with_eta[:1])] + [(f"{f:.0%}", [s for s in with_eta if s[1] >= f * s[2]][:1])
                                            for f in (0.25, 0.5, 0.75)]
        for label, pick in picks:
            if pick:
                t, finished, _, predicted = pick[0]
                eta.append({"at": label, "finished": finished, "predicted_s": predicted, "actual_s": t_end - t})
        row["eta"] = eta
        root = store / f"scale{scale}"
        row["bytes"] = {name: folder_bytes(root / name) for name in ("tune", "transfer", "ray_tune", "progress",
                                                                     "events", "logs")}
        row["bytes_total"] = folder_bytes(store)
        row["scale"] = scale
        return row


def startup_run(scale: int, args) -> dict:
    import psutil

    with tempfile.TemporaryDirectory() as tmp:
        proc, store, out = launch(scale, args, Path(tmp), seed_tune=True)
        t0_file = Path(tmp) / "t0.json"
        while not t0_file.exists():  # the tune results are being written
            if proc.poll() is not None:
                raise SystemExit(f"scale {scale}: the driver exited with {proc.returncode}")
            time.sleep(0.5)
        t0 = json.loads(t0_file.read_text())["t0"]
        me = psutil.Process(proc.pid)
        events = store / f"scale{scale}" / "events" / "transfer"
        first = busy = cpu_first = cpu_busy = None
        peak = 0
        slots = min(args.cpus, int(args.gpus / 0.25))  # 1 CPU and 0.25 GPU per trial
        deadline = time.time() + args.startup_timeout
        while proc.poll() is None and time.time() < deadline:
            time.sleep(0.2)
            running, seen = running_now(events)
            now, cpu = time.time(), sum(me.cpu_times()[:2])
            peak = max(peak, running)
            if seen and first is None:
                first, cpu_first = now, cpu
            if running >= slots and busy is None:
                busy, cpu_busy = now, cpu
            if busy is not None and now - busy >= args.busy_s:
                break
        proc.send_signal(signal.SIGINT)  # Ctrl-C: the driver stops the stage, keeps what finished, exits 130
        proc.wait(timeout=600)
        from itsel_ray.runs.occupancy import occupancy, spans_from_events

        evs = [json.loads(Path(d, f).read_text()) for d in (events.iterdir() if events.is_dir() else [])
               for f in os.listdir(d)]
        spans = spans_from_events(evs)
        occ = occupancy(spans, slots, t0, until=busy + args.busy_s if busy else None)
        lines = [json.loads(x) for x in (store / f"scale{scale}" / "progress" / "transfer.jsonl").read_text()
                 .splitlines() if x.strip()]
        stage_start = next((x["t"] for x in lines if x["kind"] == "run"), None)
        return {"scale": scale, "code": proc.returncode, "trials": next((x["todo"] for x in lines if x["kind"] == "run"), 0),
                "stage_start_s": stage_start - t0 if stage_start else None, "slots": slots,
                "first_s": occ.first_start_s, "all_busy_s": occ.all_busy_s, "peak": occ.peak, "workers": occ.workers,
                "cpu_first_s": cpu_first, "cpu_busy_s": cpu_busy, "started": occ.trials}


# --------------------------------------------------------------------------------------------- main


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scales", type=int, nargs="*", default=[1, 10], help="full runs")
    p.add_argument("--startup", type=int, nargs="*", default=[100], help="start-up only (then interrupted)")
    p.add_argument("--creation", type=int, nargs="*", default=[1, 10, 100], help="trial creation only")
    p.add_argument("--grid-creation", type=int, nargs="*", default=[1, 5],
                   help="the single grid_search, for comparison (quadratic: keep these small)")
    p.add_argument("--trial-s", type=float, default=2.0, help="seconds each stand-in trial takes")
    p.add_argument("--cpus", type=int, default=16)
    p.add_argument("--gpus", type=int, default=4)
    p.add_argument("--busy-s", type=float, default=10.0, help="start-up runs: how long all slots stay watched")
    p.add_argument("--startup-timeout", type=float, default=180.0)
    p.add_argument("--child", type=int, help=argparse.SUPPRESS)
    p.add_argument("--store", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--seed-tune", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--creation-child", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args.child, args.trial_s, args.cpus, args.gpus, Path(args.store), Path(args.out), args.seed_tune)
        return
    if args.creation_child:
        scale, how = args.creation_child
        print(json.dumps(creation(int(scale), how == "grid")))
        return
    print(f"machine: {os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f} at the start")

    made = []
    for how, scales in (("queue", args.creation), ("grid", args.grid_creation)):
        for scale in scales:  # each in a fresh process
            res = subprocess.run([sys.executable, __file__, "--creation-child", str(scale), how], check=True,
                                 capture_output=True, text=True, cwd=ROOT)
            made.append(json.loads(res.stdout.strip().splitlines()[-1]))
    if made:
        print("\n1. creating the transfer stage's trials in Tune (driver CPU, no cluster)")
        print(f"{'how':>12} {'scale':>5} {'trials':>7} {'first trial s':>13} {'all trials s':>12} {'ms/trial':>9}")
        for r in made:
            print(f"{r['how']:>12} {r['scale']:>5} {r['trials']:>7} {r['first_s']:>13.3f} {r['all_s']:>12.2f} "
                  f"{r['all_s'] / r['trials'] * 1e3:>9.3f}")
        queue = [r for r in made if r["how"] == "queue"]
        if len(queue) >= 2:
            a, b = queue[0], queue[-1]
            print(f"queue, {b['scale']}x / {a['scale']}x: CPU per trial "
                  f"{(b['all_s'] / b['trials']) / (a['all_s'] / a['trials']):.2f}x")

    rows = [full_run(scale, args) for scale in args.scales]
    if rows:
        print(f"\n2. full runs: stand-in engine, {args.trial_s:g} s trials, local Ray with {args.cpus} CPUs and "
              f"{args.gpus} fake GPUs (0.25 GPU per trial)")
        print(f"{'scale':>5} {'trials':>6} {'wall s':>8} {'driver CPU s/trial':>19} {'driver RSS MB':>14} "
              f"{'written KB/trial':>17} {'stored KB/trial':>16} {'ETA/actual first, 25/50/75%':>29}")
        for r in rows:
            ratios = " ".join(f"{e['predicted_s'] / e['actual_s']:.2f}" for e in r["eta"] if e["actual_s"] > 0)
            written = (r["driver_written"] + r["workers_written"]) / r["trials"] / 1024
            print(f"{r['scale']:>5} {r['trials']:>6} {r['wall_s']:>8.1f} {r['driver_cpu_s'] / r['trials']:>19.4f} "
                  f"{r['driver_rss_mb']:>14.0f} {written:>17.1f} {r['bytes_total'] / r['trials'] / 1024:>16.1f} "
                  f"{ratios:>29}")
            first = r["eta"][0] if r["eta"] else None
            if first:
                print(f"      first ETA reading after {first['finished']} completion(s): {first['predicted_s']:.0f} s "
                      f"predicted, {first['actual_s']:.0f} s really left")
            print(f"      driver wrote {r['driver_written'] / r['trials'] / 1024:.1f} KB/trial, its RSS grew "
                  f"{r['driver_rss_growth_mb']:.0f} MB over the run")
            parts = ", ".join(f"{k} {v / r['trials'] / 1024:.1f}" for k, v in r["bytes"].items())
            print(f"      storage KB/trial by folder: {parts}")
        print(f"\n{'scale':>5} {'stage':>8} {'trials':>6} {'wall s':>7} {'slots':>5} {'peak':>4} "
              f"{'mean (mid half)':>15} {'workers':>7} {'first trial s':>13} {'all busy s':>10} "
              f"{'driver start to first trial s':>29}")
        for r in rows:
            for s in r["stages"]:
                busy = f"{s['all_busy_s']:.1f}" if s["all_busy_s"] is not None else "never"
                print(f"{r['scale']:>5} {s['stage']:>8} {s['trials']:>6} {s['wall_s']:>7.1f} {s['slots']:>5} "
                      f"{s['peak']:>4} {s['mean_middle']:>15.2f} {s['workers']:>7} {s['first_start_s']:>13.1f} "
                      f"{busy:>10} {s['driver_to_first_s']:>29.1f}")
        if len(rows) >= 2:
            a, b = rows[0], rows[-1]
            per = lambda r, k: r[k] / r["trials"]  # noqa: E731
            wrote = lambda r: (r["driver_written"] + r["workers_written"]) / r["trials"]  # noqa: E731
            growth = (b["driver_rss_growth_mb"] - a["driver_rss_growth_mb"]) / (b["trials"] - a["trials"])
            print(f"{b['scale']}x / {a['scale']}x per trial: driver CPU "
                  f"{per(b, 'driver_cpu_s') / per(a, 'driver_cpu_s'):.2f}x, bytes written "
                  f"{wrote(b) / max(wrote(a), 1):.2f}x, bytes stored {per(b, 'bytes_total') / per(a, 'bytes_total'):.2f}x, "
                  f"wall {per(b, 'wall_s') / per(a, 'wall_s'):.2f}x; driver memory {growth:.3f} MB per added trial")

    ups = [startup_run(scale, args) for scale in args.startup]
    if ups:
        print(f"\n3. start-up of the transfer stage (tune results already there), then interrupted; times from the "
              "driver's start (Ray's start-up included)")
        print(f"{'scale':>5} {'trials':>6} {'stage starts s':>14} {'first trial s':>13} {'all busy s':>10} "
              f"{'slots':>5} {'peak':>4} {'workers':>7} {'driver CPU to first s':>21} {'to all busy s':>13}")
        for u in ups:
            fmt = lambda v: "never" if v is None else f"{v:.1f}"  # noqa: E731
            print(f"{u['scale']:>5} {u['trials']:>6} {fmt(u['stage_start_s']):>14} {fmt(u['first_s']):>13} "
                  f"{fmt(u['all_busy_s']):>10} {u['slots']:>5} {u['peak']:>4} {u['workers']:>7} "
                  f"{fmt(u['cpu_first_s']):>21} {fmt(u['cpu_busy_s']):>13}")
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
