"""The sweep's cost per trial at the paper's size and at 10x: driver CPU, driver memory, bytes on storage, ETA.

The paper's grid (13 sources x 10 targets) with the stand-in engine (`engine: fake`, each trial sleeping
--trial-s in two evaluations) on a local Ray instance with fake resources (--cpus CPUs, --gpus GPUs, 0.25 GPU per
trial: 16 trials at once on 4 GPUs). Scale 1 is the paper's 69 tune + 390 transfer trials (3 seeds per role); scale
10 uses 30 seeds per role: 690 + 3,900. Each scale runs in a fresh process. Printed per scale: wall time, driver CPU
seconds per trial (the driver's overhead), driver memory growth per trial, bytes on storage per trial (trial
folders, Tune's experiment folders, logs), and the ETA the progress log gives at 25/50/75 % of the transfer stage
against the time that was really left until its last trial finished. Then the 10x / 1x ratios.

    python benchmarks/bench_sweep_scale.py                 # scales 1 and 10 (about 20 minutes on 2 cores)
    python benchmarks/bench_sweep_scale.py --scales 1      # the paper's size only
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
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


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _written(proc) -> int:
    try:
        return proc.io_counters().write_bytes
    except Exception:  # gone, or not readable
        return 0


def child(scale: int, trial_s: float, cpus: int, gpus: int, out: Path) -> None:
    import psutil
    import yaml

    from itsel_ray.runs.progress import eta_seconds, latest_run
    from itsel_ray.runs.storage import Storage
    from itsel_ray.sweep.cli import main
    from itsel_ray.sweep.cluster import start_local, shutdown

    me = psutil.Process()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, f"scale{scale}.yaml")
        path.write_text(yaml.safe_dump(sweep_definition(scale, trial_s)))
        store = Path(tmp, "store")
        root = Storage(store / f"scale{scale}")
        start_local(cpus, num_gpus=gpus, object_store_memory=256 * 1024**2)
        samples: list[tuple[float, int, int, float | None]] = []
        stop = threading.Event()

        def sample_eta():  # what `status` would say, every second, during the transfer stage
            while not stop.wait(1.0):
                run = latest_run(root, "transfer")
                if run.run is None or run.ended is not None:
                    continue
                finished = len(run.completions)
                samples.append((time.time(), finished, run.todo, eta_seconds(run.todo - finished, run, time.time())))

        threading.Thread(target=sample_eta, daemon=True).start()
        rss0, cpu0, t0 = me.memory_info().rss, sum(me.cpu_times()[:2]), time.time()
        io0 = me.io_counters().write_bytes
        stage_marks = {}
        code = main(["transfer", "--no-analyze", "--sweep", str(path), "--storage", str(store),
                     "--log-level", "WARNING"])
        wall, cpu, rss1 = time.time() - t0, sum(me.cpu_times()[:2]) - cpu0, me.memory_info().rss
        written = me.io_counters().write_bytes - io0  # the driver's own writes: experiment state, logs, tables
        workers = sum(_written(p) for p in me.children(recursive=True))  # the trial workers, still alive
        stop.set()
        shutdown()
        end = latest_run(root, "transfer")
        t_end = end.completions[-1] if end.completions else time.time()  # the last trial done: what the ETA predicts
        tune_run = latest_run(root, "tune")
        for stage, run in (("tune", tune_run), ("transfer", end)):
            stage_marks[stage] = {"trials": run.todo, "wall_s": (run.ended or {}).get("t", time.time()) - (run.started or 0)}
        eta = []
        for frac in (0.25, 0.5, 0.75):
            pick = [s for s in samples if s[3] is not None and s[1] >= frac * s[2]]
            if pick:
                t, _, _, predicted = pick[0]
                eta.append({"at": frac, "predicted_s": predicted, "actual_s": t_end - t})
        trials = sum(m["trials"] for m in stage_marks.values())
        sizes = {name: folder_bytes(store / f"scale{scale}" / name) for name in ("tune", "transfer", "ray_tune",
                                                                                  "progress", "events", "logs")}
        out.write_text(json.dumps({
            "scale": scale, "code": code, "trials": trials, "wall_s": wall, "driver_cpu_s": cpu,
            "driver_rss_growth_mb": (rss1 - rss0) / 2**20, "driver_rss_mb": rss1 / 2**20,
            "driver_written": written, "workers_written": workers, "stages": stage_marks, "bytes": sizes,
            "bytes_total": folder_bytes(store), "eta": eta,
        }))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scales", type=int, nargs="+", default=[1, 10])
    p.add_argument("--trial-s", type=float, default=1.0, help="seconds each stand-in trial takes")
    p.add_argument("--cpus", type=int, default=16)
    p.add_argument("--gpus", type=int, default=4)
    p.add_argument("--child", type=int, help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args.child, args.trial_s, args.cpus, args.gpus, Path(args.out))
        return
    rows = []
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    for scale in args.scales:
        with tempfile.NamedTemporaryFile(suffix=".json") as f:
            subprocess.run([sys.executable, __file__, "--child", str(scale), "--out", f.name, "--trial-s",
                            str(args.trial_s), "--cpus", str(args.cpus), "--gpus", str(args.gpus)], check=True,
                           env=env, cwd=ROOT)
            rows.append(json.loads(Path(f.name).read_text()))
    print(f"\nsweep cost per trial, stand-in engine, {args.trial_s:g} s trials, local Ray with {args.cpus} CPUs and "
          f"{args.gpus} fake GPUs (0.25 GPU per trial)")
    print(f"{'scale':>5} {'trials':>6} {'wall s':>8} {'driver CPU s/trial':>19} {'driver RSS MB':>14} "
          f"{'written KB/trial':>17} {'stored KB/trial':>16} {'ETA/actual at 25/50/75%':>26}")
    for r in rows:
        ratios = " ".join(f"{e['predicted_s'] / e['actual_s']:.2f}" for e in r["eta"] if e["actual_s"] > 0)
        written = (r["driver_written"] + r["workers_written"]) / r["trials"] / 1024
        print(f"{r['scale']:>5} {r['trials']:>6} {r['wall_s']:>8.1f} {r['driver_cpu_s'] / r['trials']:>19.4f} "
              f"{r['driver_rss_mb']:>14.0f} {written:>17.1f} {r['bytes_total'] / r['trials'] / 1024:>16.1f} "
              f"{ratios:>26}")
        print(f"      driver wrote {r['driver_written'] / r['trials'] / 1024:.1f} KB/trial, its RSS grew "
              f"{r['driver_rss_growth_mb']:.0f} MB over the run")
        parts = ", ".join(f"{k} {v / r['trials'] / 1024:.1f}" for k, v in r["bytes"].items())
        print(f"      storage KB/trial by folder: {parts}")
    if len(rows) >= 2:
        a, b = rows[0], rows[-1]
        per = lambda r, k: r[k] / r["trials"]  # noqa: E731
        wrote = lambda r: (r["driver_written"] + r["workers_written"]) / r["trials"]  # noqa: E731
        growth = (b["driver_rss_growth_mb"] - a["driver_rss_growth_mb"]) / (b["trials"] - a["trials"])
        print(f"{b['scale']}x / {a['scale']}x per trial: driver CPU {per(b, 'driver_cpu_s') / per(a, 'driver_cpu_s'):.2f}x, "
              f"bytes written {wrote(b) / max(wrote(a), 1):.2f}x, bytes stored "
              f"{per(b, 'bytes_total') / per(a, 'bytes_total'):.2f}x, wall {per(b, 'wall_s') / per(a, 'wall_s'):.2f}x; "
              f"driver memory {growth:.3f} MB per added trial")


if __name__ == "__main__":
    main()
