"""Scheduling overhead per trial of the sweep, for many short trials, with and without reuse_actors.

Runs the real sweep stack (Tuner, trainable, trial folders, events) with the stand-in engine (`engine: fake`, which
trains nothing) on a local Ray instance, so the time between trials is the sweep's own overhead. Per trial it reads
the trainable's start/end events and reports, per concurrent slot, the gap from one trial's end to the next trial's
start (median), plus the stage wall time.

    python benchmarks/bench_sweep_overhead.py [--trials 40] [--cpus 2]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def sweep_file(folder: Path, trials: int, reuse: bool) -> Path:
    """`trials` source runs (8 tasks x seeds) plus one target run, stand-in engine."""
    sources = [f"syn_has{i}" for i in range(8)]
    seeds = list(range(1, (trials + len(sources) - 1) // len(sources) + 1))
    data = yaml.safe_load((ROOT / "sweeps" / "smoke.yaml").read_text())
    data.update(name=f"overhead_{'reuse' if reuse else 'fresh'}", engine="fake")
    data["grid"] = {"sources": sources, "targets": ["syn_and01"], "source_seeds": seeds, "target_seeds": [1]}
    data["stages"]["source"] = {"train": {"max_steps": 2, "eval_every": 1, "save_every": 2}}
    data["trial"]["train"].update(max_steps=2, eval_every=1, save_every=2)
    data["execution"] = {"reuse_actors": reuse}
    path = folder / f"{data['name']}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def gaps(root: Path, slots: int) -> tuple[list[float], float]:
    spans = []
    for folder in glob.glob(str(root / "events" / "tune" / "*")):
        ev = {json.loads(Path(f).read_text())["kind"]: json.loads(Path(f).read_text())["time"]
              for f in glob.glob(f"{folder}/*.json")}
        spans.append((ev["start"], ev["end"]))
    spans.sort()
    free = sorted(e for _, e in spans[:slots])
    out = []
    for start, end in spans[slots:]:  # each later trial takes the slot that freed up first
        prev = free.pop(0)
        out.append(max(0.0, start - prev))
        free = sorted(free + [end])
    busy = sum(e - s for s, e in spans)
    return out, busy


def run(trials: int, cpus: int) -> list[dict]:
    import ray

    from itsel_ray.sweep.cluster import cluster_info
    from itsel_ray.runs.sweep_file import load_sweep
    from itsel_ray.runs.plan import plan_stage
    from itsel_ray.sweep.stages import run_stage
    from itsel_ray.runs.storage import Storage

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        ray.init(address="local", num_cpus=cpus, include_dashboard=False, object_store_memory=256 * 1024**2,
                 log_to_driver=False)
        try:
            info = cluster_info()
            for reuse in (True, False):
                sweep = load_sweep(str(sweep_file(Path(tmp), trials, reuse)))
                storage = Storage(Path(tmp, "store", sweep.name))
                t0 = time.perf_counter()
                outcome = run_stage(sweep, "tune", storage, info, verbose=0)
                wall = time.perf_counter() - t0
                g, busy = gaps(storage.local(), cpus)
                n = len(plan_stage(sweep, "tune"))
                rows.append({"reuse_actors": reuse, "trials": n, "done": outcome.done, "wall_s": wall,
                             "gap_median_s": statistics.median(g), "gap_p90_s": sorted(g)[int(0.9 * (len(g) - 1))],
                             "overhead_per_trial_s": (wall * cpus - busy) / n})
        finally:
            ray.shutdown()
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=40)
    p.add_argument("--cpus", type=int, default=2)
    args = p.parse_args()
    rows = run(args.trials, args.cpus)
    print(f"\nsweep scheduling overhead, {rows[0]['trials']} short trials, local Ray with {args.cpus} CPUs "
          "(stand-in engine)")
    print(f"{'reuse_actors':>12} {'trials':>6} {'wall s':>8} {'median gap s':>13} {'p90 gap s':>10} "
          f"{'overhead/trial s':>17}")
    for r in rows:
        print(f"{str(r['reuse_actors']):>12} {r['trials']:>6} {r['wall_s']:>8.1f} {r['gap_median_s']:>13.3f} "
              f"{r['gap_p90_s']:>10.3f} {r['overhead_per_trial_s']:>17.3f}")
    fast, slow = rows
    print(f"reuse_actors=True: median gap {fast['gap_median_s'] / max(slow['gap_median_s'], 1e-9):.2f}x of "
          f"reuse_actors=False; stage wall time {fast['wall_s'] / slow['wall_s']:.2f}x")


if __name__ == "__main__":
    main()
