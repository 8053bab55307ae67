"""What shipping a user's plugin and task file costs: the same sweep stage with and without them, measured in one run.

Each repetition runs `itsel-ray tune` on a fresh storage in a fresh process (a private local Ray instance each time),
alternating the two variants: the smoke sweep on the stand-in engine (`engine: fake`, so the trials themselves cost
almost nothing and the runtime environment's share shows), and the same sweep naming a plugin module and a task file
(tests/own_study.py writes them; its task joins the grid's targets). Prints the median wall time of each, the ratio
and the difference per worker process Ray started.

    python benchmarks/bench_plugins.py --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def variants(folder: Path) -> dict[str, Path]:
    from tests.own_study import write_study

    paths = write_study(folder / "study", engine="fake")
    with_plugins = yaml.safe_load(paths["sweep"].read_text())
    with_plugins["analysis"] = "demo"
    with_plugins["grid"]["targets"] = ["syn_and01", "mine_task"]
    plain = {k: v for k, v in with_plugins.items() if k not in ("plugins", "tasks")}
    plain["grid"] = {**with_plugins["grid"], "targets": ["syn_and01", "syn_cnt2"]}
    out = {}
    for name, data in (("plain", plain), ("plugins", with_plugins)):
        path = paths["sweep"].with_name(f"{name}.yaml")
        path.write_text(yaml.safe_dump({**data, "name": name}))
        out[name] = path
    return out


def run_once(sweep: Path, storage: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "itsel_ray.sweep", "tune", "--sweep", str(sweep), "--storage",
                           str(storage), "--no-dashboard", "--quiet"], capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise SystemExit(f"{sweep.name}: exit {done.returncode}\n{done.stderr[-2000:]}")
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-plugins-") as tmp:
        sweeps = variants(Path(tmp))
        times: dict[str, list[float]] = {name: [] for name in sweeps}
        for i in range(args.repeats):
            for name, sweep in sweeps.items():
                times[name].append(run_once(sweep, Path(tmp) / f"store-{name}-{i}"))
                print(f"  {name:8s} run {i + 1}: {times[name][-1]:.1f} s", flush=True)
    plain, plugins = statistics.median(times["plain"]), statistics.median(times["plugins"])
    print(f"tune, smoke sweep, stand-in engine (4 trials), median of {args.repeats}: without plugins {plain:.1f} s, "
          f"with a plugin and a task file {plugins:.1f} s: {plugins / plain:.2f}x ({plugins - plain:+.1f} s)")


if __name__ == "__main__":
    main()
