"""The paper sweep's cost as `--dry-run` models it, in itsel-ray's default setup and in the authors' (fp32), side by
side (docs/cluster.md prints its output).

Before `prepare` the cost model knows a task's training size, length limits and, where the task file declares it,
the size of its validation split (tasks/paper.yaml gives the dataset cards' sizes; ReCoRD's 1,000 queries are
carved; CR's local split publishes none, so its evaluation stays uncounted). Lengths are the declared limits: an
upper bound on FLOPs.

    python benchmarks/sweep_cost.py [--storage DIR] [--set KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from itsel_ray.runs.cost import cost_lines, sweep_costs, throughput  # noqa: E402
from itsel_ray.runs.storage import Storage  # noqa: E402
from itsel_ray.runs.sweep_file import load_sweep  # noqa: E402

SETUPS = {
    "itsel-ray default (train.precision auto: bf16 autocast on the GPU)": [],
    "the authors' setup (fp32)": ["trial.train.precision=fp32"],
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sweep", default="paper")
    p.add_argument("--storage", default=None, help="a sweep folder whose prepared data and calibration to read")
    p.add_argument("--set", dest="overrides", action="append", default=[])
    args = p.parse_args(argv)
    storage = Storage(args.storage) if args.storage else None
    totals = {}
    for label, extra in SETUPS.items():
        sweep = load_sweep(args.sweep, overrides=[*args.overrides, *extra])
        print(f"## {label}")
        print("\n".join(cost_lines(sweep, storage)))
        costs = sweep_costs(sweep, storage)
        rate = throughput(storage)
        flops = sum(c.trials * c.cost.total_flops for c in costs)
        hours = sum(c.trials * c.cost.total_flops / rate.of(c.precision) / 3600 for c in costs)
        evals = sum(c.trials * (c.cost.eval_total_flops or 0) for c in costs)
        totals[label] = (flops, hours, evals)
        print()
    print("## side by side")
    for label, (flops, hours, evals) in totals.items():
        print(f"{label}: {flops / 1e18:.1f} EFLOP ({100 * evals / flops:.0f} % evaluation), {hours:,.0f} GPU-hours")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
