"""Benchmark: every prompt selector on every (target, seed, step) cell, plain map against Ray tasks.

The paper's size: 13 sources x 10 targets x 3 seeds x 6 checkpoint steps, prompts of 100 x 768. Prints the median
wall time over repeats for the plain map and for `ray_map` on a local Ray instance, their ratio, and a sweep over
problem sizes that shows where Ray starts to pay off.

    python benchmarks/bench_selectors.py [--repeats 3] [--num-cpus 2] [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from itsel_ray.analysis.cells import CellRunner
from itsel_ray.analysis.analysis_file import analysis_config_from_dict
from itsel_ray.analysis.run import build_context
from itsel_ray.analysis.synthetic import synthetic_study

PROMPT_SELECTORS = ["feature", "unigram", "max", "max-topk", "mmd", "fusion"]
STEPS = (5000, 10000, 15000, 20000, 25000, 30000)


def setup(n_steps: int, tokens: int, dim: int):
    study = synthetic_study(n_sources=13, n_targets=10, seeds=(28, 52, 112), steps=STEPS[:n_steps] if n_steps <= 6
                            else tuple(range(1000, 1000 * (n_steps + 1), 1000)), tokens=tokens, dim=dim)
    cfg = analysis_config_from_dict({"selectors": PROMPT_SELECTORS, "table4_selectors": ["max"],
                                     "step_selectors": ["max"]})
    ctx, cells, _ = build_context(study, cfg)
    return ctx, [c for c in cells if c.step is not None]


def interleaved_medians(fns, repeats: int) -> list[float]:
    """Median wall time of each function, alternating them so that a change in machine load hits all alike."""
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, out in zip(fns, times):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    return [statistics.median(t) for t in times]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--num-cpus", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="fewer problem sizes")
    args = p.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    from itsel_ray.sweep.parallel import local_ray, ray_map

    sizes = [(1, 16, 64), (1, 100, 768), (6, 100, 768)] if args.quick else [
        (1, 16, 64), (6, 16, 64), (1, 50, 256), (6, 50, 256), (1, 100, 768), (2, 100, 768), (6, 100, 768),
        (12, 100, 768)]
    prepared = [(s, *setup(*s)) for s in sizes]
    t0 = time.perf_counter()
    with local_ray(args.num_cpus):
        init_s = time.perf_counter() - t0
        ray_map(CellRunner(prepared[0][1]), prepared[0][2][:2])  # warm the worker pool
        print(f"selectors: {', '.join(PROMPT_SELECTORS)}; 13 sources x 10 targets x 3 seeds x steps; "
              f"median of {args.repeats}; Ray: {args.num_cpus} CPUs, init {init_s:.1f} s (not counted); "
              f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start")
        print("plain = builtin map in this process, one BLAS thread per cell (the default); plain-nt = the same "
              "with the default BLAS threads; ray = ray_map over the same cells")
        print(f"{'steps':>5} {'tokens x dim':>13} {'cells':>6} {'plain s':>9} {'plain-nt s':>11} {'ray s':>9} "
              f"{'plain/ray':>10}")
        rows = []
        for (n_steps, tokens, dim), ctx, cells in prepared:
            runner, threaded = CellRunner(ctx), CellRunner(ctx, blas_threads=None)
            plain, plain_nt, parallel = interleaved_medians(
                [lambda r=runner, cs=cells: [r(c) for c in cs], lambda r=threaded, cs=cells: [r(c) for c in cs],
                 lambda r=runner, cs=cells: ray_map(r, cs)], args.repeats)
            rows.append((n_steps, tokens, dim, len(cells), plain, parallel))
            print(f"{n_steps:>5} {f'{tokens} x {dim}':>13} {len(cells):>6} {plain:>9.3f} {plain_nt:>11.3f} "
                  f"{parallel:>9.3f} {plain / parallel:>10.2f}")
    by_work = sorted(rows, key=lambda r: r[4])
    # the smallest problem from which Ray is faster at that size and every larger one
    first = next((i for i in range(len(by_work)) if all(r[5] < r[4] for r in by_work[i:])), None)
    if first is not None:
        r = by_work[first]
        print(f"Ray pays off from about {r[4]:.2f} s of plain compute ({r[3]} cells of {r[1]} x {r[2]} prompts) "
              "on this machine.")
    else:
        print("Ray did not pay off at the largest measured size on this machine (at this load).")
    paper = [r for r in rows if r[:3] == (6, 100, 768)]
    if paper:
        print(f"paper size (180 cells, 100 x 768): plain {paper[0][4]:.2f} s, Ray {paper[0][5]:.2f} s, "
              f"ratio {paper[0][4] / paper[0][5]:.2f}")


if __name__ == "__main__":
    main()
