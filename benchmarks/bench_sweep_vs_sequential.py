"""The demo study through the Ray sweep against the same trials one after another in one process, on this machine.

Both sides run as fresh processes and are timed end to end (interpreter start, imports, Ray start and stop for the
sweep): `python -m itsel_ray.sweep transfer --no-analyze` (tune first, then transfer; the analysis is left out on
both sides) versus a loop over the same trial plan calling the engine's `run_trial` directly, transfers starting
from the same best source prompts. The sequential loop may use one torch thread (like one sweep trial) or every
core through torch's threads; both are reported. The sweep runs one single-threaded trial per core. The default
plan is the demo with one seed per role (6 sources x 4 targets: 10 tune + 24 transfer trials; about 15 minutes for
the three runs on 2 cores). Where the sweep loses time on 2 cores: about 20 s before the first trial starts (imports, Ray
start; trial workers importing torch and transformers), about 10 s between the stages (the transfer stage's new
workers import again), and two trials side by side each run about 10 % slower than one alone. Small plans
(--sources 4 --targets 2) therefore show a worse ratio than large ones.

    python benchmarks/bench_sweep_vs_sequential.py [--sweep demo] [--sources N] [--targets N] [--seeds 1] [--cpus 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def bench_sweep_file(folder: Path, base: str, seeds: int, sources: int, targets: int) -> Path:
    """The base sweep cut to its first sources, targets and seeds (the full demo takes ~15 min sequentially)."""
    from itsel_ray.runs.sweep_file import resolve_sweep_path

    data = yaml.safe_load(resolve_sweep_path(base).read_text())
    data["name"] = f"bench_{base}"
    data["grid"]["sources"] = data["grid"]["sources"][:sources or None]
    data["grid"]["targets"] = data["grid"]["targets"][:targets or None]
    for key, default in (("source_seeds", [42, 150, 386]), ("target_seeds", [28, 52, 112])):
        data["grid"][key] = (data["grid"].get(key) or default)[:seeds]
    path = folder / f"{data['name']}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def sequential(sweep_path: str, out: str, threads: int) -> None:
    """Every trial of the plan in this process, in plan order."""
    import torch

    torch.set_num_threads(threads)
    from itsel_ray.artifacts import load_prompt
    from itsel_ray.engine import get_engine
    from itsel_ray.runs.sweep_file import load_sweep
    from itsel_ray.runs.plan import plan_stage

    sweep = load_sweep(sweep_path)
    run_trial = get_engine(sweep.spec.engine).run_trial
    best: dict[str, tuple[float, Path]] = {}
    for t in plan_stage(sweep, "tune"):
        work = Path(out, t.key)
        r = run_trial(sweep.trial_config(t.role, task=t.task, seed=t.seed), work)
        if t.role == "source" and (t.task not in best or r.best_score > best[t.task][0]):
            best[t.task] = (r.best_score, work / "best.safetensors")
    for t in plan_stage(sweep, "transfer"):
        cfg = sweep.trial_config("transfer", task=t.task, seed=t.seed, source=t.source)
        run_trial(cfg, Path(out, t.key), init_prompt=load_prompt(best[t.source][1]))


def timed(cmd: list[str], log: Path, env: dict) -> float:
    t0 = time.perf_counter()
    with log.open("w") as f:
        code = subprocess.run(cmd, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT).returncode
    wall = time.perf_counter() - t0
    if code != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({code}); see {log}:\n{log.read_text()[-2000:]}")
    return wall


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sweep", default="demo")
    p.add_argument("--seeds", type=int, default=1, help="seeds per role (default 1)")
    p.add_argument("--sources", type=int, help="first N sources of the sweep (default: all)")
    p.add_argument("--targets", type=int, help="first N targets of the sweep (default: all)")
    p.add_argument("--cpus", type=int, default=2)
    p.add_argument("--sequential-into", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=2, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.sequential_into:
        sequential(args.sweep, args.sequential_into, args.threads)
        return

    from itsel_ray.runs.sweep_file import load_sweep
    from itsel_ray.runs.plan import plan_stage

    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("OMP_NUM_THREADS", None)
    with tempfile.TemporaryDirectory() as tmp:
        path = bench_sweep_file(Path(tmp), args.sweep, args.seeds, args.sources, args.targets)
        sweep = load_sweep(str(path))
        n = {s: len(plan_stage(sweep, s)) for s in ("tune", "transfer")}
        print(f"{sweep.name}: {n['tune']} tune + {n['transfer']} transfer trials, {args.cpus} CPUs; "
              f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
        ray_wall = timed([sys.executable, "-m", "itsel_ray.sweep", "transfer", "--sweep", str(path), "--storage",
                          f"{tmp}/sweep", "--no-dashboard", "--num-cpus", str(args.cpus), "--quiet", "--no-analyze"],
                         Path(tmp, "sweep.log"), env)
        print(f"ray sweep ({args.cpus} trials at once, 1 thread each): {ray_wall:7.1f} s", flush=True)
        seq = {}
        for threads in sorted({1, args.cpus}):
            out = Path(tmp, f"seq{threads}")
            seq[threads] = timed([sys.executable, __file__, "--sweep", str(path), "--sequential-into", str(out),
                                  "--threads", str(threads)], Path(tmp, f"seq{threads}.log"), env)
            same = _compare(sweep, Path(tmp, "sweep", sweep.name), out)
            print(f"sequential, one process, {threads} torch thread(s): {seq[threads]:7.1f} s "
                  f"(identical best scores: {same})", flush=True)
        print(f"load average after: {os.getloadavg()[0]:.2f}")
    for threads, wall in seq.items():
        ratio = ray_wall / wall
        print(f"ratio sweep / sequential({threads} thread{'s' if threads > 1 else ''}): {ratio:.2f} "
              f"(target <= 0.70: {'met' if ratio <= 0.7 else 'NOT met'})")


def _compare(sweep, ray_root: Path, seq_root: Path) -> str:
    from itsel_ray.artifacts import read_json
    from itsel_ray.runs.plan import plan_stage

    trials = plan_stage(sweep, "tune") + plan_stage(sweep, "transfer")
    same = sum(read_json(ray_root / t.key / "result.json")["best_score"]
               == read_json(seq_root / t.key / "result.json")["best_score"] for t in trials)
    return f"{same}/{len(trials)} trials"


if __name__ == "__main__":
    main()
