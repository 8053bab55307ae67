"""How far the demo's numbers move with the CPU's kernels and threads: one reduced demo, several environments.

    python benchmarks/demo_spread.py                                  # as is, then without vector kernels
    python benchmarks/demo_spread.py --envs default scalar threads2   # also with 2 torch threads per trial
    python benchmarks/demo_spread.py --existing /tmp/spread            # only compare finished runs

The demo's tasks, model and analysis (sweeps/demo.yaml) with one seed per role and fewer steps (14 tune + 48
transfer trials), run once per environment on this machine: `default` as is, `scalar` with
`ATEN_CPU_CAPABILITY=default` (torch's kernels without vector instructions: what another CPU's kernels do to the
rounding), `threads2` with `train.threads: 2`. Prints, against the first environment: how many trial scores came out
identical, the median and largest difference, the share of trials that kept their best step, and each selector's
nDCG, Spearman and Regret@1 side by side with their spread.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
ENVS = {
    "default": ({}, []),
    "scalar": ({"ATEN_CPU_CAPABILITY": "default"}, []),
    "threads2": ({}, ["--set", "trial.train.threads=2"]),
}
NAME = "demo-spread"


def reduced_demo(path: Path) -> Path:
    raw = yaml.safe_load((ROOT / "sweeps" / "demo.yaml").read_text())
    raw["name"] = NAME
    raw["grid"]["source_seeds"] = raw["grid"]["source_seeds"][:1]
    raw["grid"]["target_seeds"] = raw["grid"]["target_seeds"][:1]
    raw["trial"]["train"].update({"max_steps": 40, "eval_every": 20, "save_every": 20})
    raw["stages"]["source"]["train"] = {"max_steps": 60, "eval_every": 30, "save_every": 30}
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def run(root: Path, env: str) -> float:
    extra_env, extra_args = ENVS[env]
    sweep = reduced_demo(root / f"{NAME}.yaml")
    t0 = time.time()
    subprocess.run([sys.executable, "-m", "itsel_ray.sweep", "transfer", "--sweep", str(sweep), "--storage",
                    str(root / env), "--no-dashboard", "--quiet", *extra_args],
                   env={**os.environ, **extra_env}, check=True)
    return time.time() - t0


def compare(root: Path, envs: list[str]) -> None:
    folders = {e: root / e / NAME for e in envs}
    key = ["stage", "task", "source", "seed"]
    results = {e: pd.read_csv(f / "results" / "results.csv").set_index(key) for e, f in folders.items()}
    base = results[envs[0]]
    for env in envs[1:]:
        diff = (results[env].score - base.score).abs()
        kept = (results[env].best_step == base.best_step).mean()
        print(f"{env} vs {envs[0]}: {len(diff)} trials, {int((diff == 0).sum())} identical scores, median |diff| "
              f"{diff.median():.2f}, largest {diff.max():.2f} points; {kept:.0%} kept their best step")
    tables = {e: pd.read_csv(f / "analysis" / "table3_all_metrics.csv").set_index("selector")
              for e, f in folders.items()}
    for metric in ("nDCG", "Spearman", "R@1"):
        side = pd.DataFrame({e: t[metric] for e, t in tables.items()})
        side["spread"] = side.max(axis=1) - side.min(axis=1)
        print(f"\n{metric}\n{side.round(2).to_string()}")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--envs", nargs="+", choices=list(ENVS), default=["default", "scalar"])
    p.add_argument("--storage", default="/tmp/itsel-ray-spread", help="one folder per environment below it")
    p.add_argument("--existing", help="a --storage folder whose runs are finished: compare only")
    args = p.parse_args(argv)
    root = Path(args.existing or args.storage)
    if not args.existing:
        for env in args.envs:
            print(f"{env}: {run(root, env):.0f} s", flush=True)
    compare(root, args.envs)


if __name__ == "__main__":
    main()
