"""Slots kept busy and overhead per trial, for short and longer trials, with and without actor reuse.

Runs the real sweep stack (Tuner, queue, trainable, trial folders, attempt records) with the stand-in engine
(`engine: fake`, which trains nothing: each trial sleeps --trial-s in two evaluations) on a local Ray instance with
fake resources (--cpus CPUs, --gpus GPUs, 0.25 GPU and 1 CPU per trial: 16 slots on 4 GPUs), so everything between
trials is the sweep's own overhead. One stage of --trials source runs per mode and trial length, each in a fresh
process. Modes:
    reuse, newest   reuse_actors with the sweep's queue order (a finished trial's actor goes to the newest waiting
                    trial; itsel_ray/sweep/scheduling.py): the default
    reuse, fifo     reuse_actors with Tune's FIFO order (a finished trial's actor goes to the oldest waiting trial,
                    cancelling the actor Ray was starting for it)
    fresh           reuse_actors off: one new worker process per trial
Counted from the trials' own start/end records: peak and mean trials running at once over the middle half of the
stage against the slots, distinct worker processes, time from the stage's start to the first trial and to all slots
busy, and the overhead per trial: slot-seconds not spent inside a trial, per trial, from the first trial's start.

    python benchmarks/bench_sweep_overhead.py                       # 2 s and 8 s trials, 96 trials, three modes
    python benchmarks/bench_sweep_overhead.py --trial-s 2 --modes newest fresh
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODES = ("newest", "fifo", "fresh")


def sweep_file(folder: Path, trials: int, trial_s: float, mode: str) -> Path:
    sources = [f"syn_has{i}" for i in range(8)]
    seeds = list(range(1, (trials + len(sources) - 1) // len(sources) + 1))
    data = {
        "name": f"overhead_{mode}", "engine": "fake", "analysis": "demo",
        "grid": {"sources": sources, "targets": ["syn_and01"], "source_seeds": seeds, "target_seeds": [1]},
        "trial": {"train": {"max_steps": 2, "eval_every": 1, "save_every": 2}},
        "resources": {"use_gpu": "always", "gpu_per_trial": 0.25, "cpu_per_trial": 1},
        "execution": {"reuse_actors": mode != "fresh"},
        "testing": {"report_delay_s": trial_s / 2},
    }
    import yaml

    path = folder / f"{data['name']}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def child(mode: str, trials: int, trial_s: float, cpus: int, gpus: int, out: Path) -> None:
    from itsel_ray.sweep.cluster import cluster_info, shutdown, start_local

    start_local(cpus, num_gpus=gpus, object_store_memory=256 * 1024**2)  # before anything imports Ray
    from itsel_ray.runs.occupancy import occupancy, stage_spans
    from itsel_ray.runs.plan import plan_stage
    from itsel_ray.runs.resources import resource_plan, slots
    from itsel_ray.runs.storage import Storage
    from itsel_ray.runs.sweep_file import load_sweep
    from itsel_ray.sweep import scheduling, stages

    if mode == "fifo":  # Tune's own order: the oldest waiting trial takes a finished trial's actor
        class Fifo(scheduling.RecoveredFirst):
            def __init__(self, newest_first: bool = True):
                super().__init__(newest_first=False)

        stages.RecoveredFirst = Fifo
    with tempfile.TemporaryDirectory() as tmp:
        sweep = load_sweep(str(sweep_file(Path(tmp), trials, trial_s, mode)))
        storage = Storage(Path(tmp, "store", sweep.name))
        try:
            info = cluster_info()
            n_slots = slots(resource_plan(sweep, info), info)
            t0 = time.time()
            result = stages.run_stage(sweep, "tune", storage, info, verbose=0)
            wall = time.time() - t0
        finally:
            shutdown()
        spans = stage_spans(storage, plan_stage(sweep, "tune"))
        occ = occupancy(spans, n_slots, t0)
        first = min(s.start for s in spans)
        last = max(s.end for s in spans if s.end is not None)
        busy = sum(s.end - s.start for s in spans if s.end is not None)
        out.write_text(json.dumps({
            "mode": mode, "trial_s": trial_s, "trials": len(plan_stage(sweep, "tune")), "done": result.done,
            "wall_s": wall, "overhead_per_trial_s": ((last - first) * n_slots - busy) / len(spans),
            **occ.row()}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=96)
    p.add_argument("--trial-s", type=float, nargs="+", default=[2.0, 8.0])
    p.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    p.add_argument("--cpus", type=int, default=16)
    p.add_argument("--gpus", type=int, default=4)
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args.child, args.trials, args.trial_s[0], args.cpus, args.gpus, Path(args.out))
        return
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    rows = []
    for trial_s in args.trial_s:
        for mode in args.modes:
            with tempfile.NamedTemporaryFile(suffix=".json") as f:
                subprocess.run([sys.executable, __file__, "--child", mode, "--out", f.name, "--trials",
                                str(args.trials), "--trial-s", str(trial_s), "--cpus", str(args.cpus), "--gpus",
                                str(args.gpus)], check=True, env=env, cwd=ROOT)
                rows.append(json.loads(Path(f.name).read_text()))
    print(f"\nslots kept busy, stand-in engine, local Ray with {args.cpus} CPUs and {args.gpus} fake GPUs "
          "(0.25 GPU per trial), counted from the trials' own start/end records")
    print(f"{'trial s':>7} {'mode':>13} {'trials':>6} {'wall s':>7} {'running peak':>12} {'mean (mid half)':>15} "
          f"{'slots':>5} {'workers':>7} {'first trial s':>13} {'all busy s':>10} {'overhead/trial s':>16}")
    label = {"newest": "reuse, newest", "fifo": "reuse, fifo", "fresh": "fresh"}
    for r in rows:
        busy = f"{r['all_busy_s']:.1f}" if r["all_busy_s"] is not None else "never"
        print(f"{r['trial_s']:>7g} {label[r['mode']]:>13} {r['done']:>6} {r['wall_s']:>7.1f} {r['peak']:>12} "
              f"{r['mean_middle']:>15.2f} {r['slots']:>5} {r['workers']:>7} {r['first_start_s']:>13.1f} "
              f"{busy:>10} {r['overhead_per_trial_s']:>16.3f}")
    for trial_s in args.trial_s:
        by = {r["mode"]: r for r in rows if r["trial_s"] == trial_s}
        if "newest" in by:
            others = ", ".join(f"{label[m]} {by['newest']['wall_s'] / by[m]['wall_s']:.2f}x" for m in by if m != "newest")
            print(f"{trial_s:g} s trials: reuse, newest runs {by['newest']['mean_middle'] / by['newest']['slots']:.0%} "
                  f"of the slots; its stage wall time vs {others}")


if __name__ == "__main__":
    main()
