"""What object storage costs: a sweep's wall time and bytes moved on S3 vs a local folder, and S3 requests per trial.

Runs `itsel-ray all` (prepare, tune, transfer, analyze) on each sweep twice, once with `--storage` a local folder
and once with `--storage s3://BUCKET/runs` on a real S3 server on loopback (moto's, the `test` extra; clients reach
it through AWS_ENDPOINT_URL as they would reach AWS). The requests are counted at the server (method, bytes in and
out), not guessed by the client. Bytes moved: on S3, what the clients uploaded (PUT bodies) and downloaded (GET
bodies); on the folder, the bytes the sweep left in it (a lower bound of what it wrote: overwritten files count
once). Loopback has no network latency, so the S3 column is the cost of the requests themselves; on AWS add the
round trips (the request count shows how many).

    python benchmarks/bench_storage_s3.py [--sweeps smoke demo] [--cpus 2]
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.s3_server import S3Server  # noqa: E402


def run(sweep: str, storage: str, env: dict, cpus: int, log: Path) -> float:
    started = time.perf_counter()
    with log.open("w") as out:
        code = subprocess.call([sys.executable, "-m", "itsel_ray.sweep", "all", "--sweep", sweep, "--storage", storage,
                                "--no-dashboard", "--num-cpus", str(cpus)], cwd=ROOT, env=env, stdout=out,
                               stderr=subprocess.STDOUT)
    wall = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"{sweep} on {storage} exited {code}; see {log}")
    return wall


def trials_of(sweep: str) -> int:
    from itsel_ray.runs.plan import plan_stage
    from itsel_ray.runs.sweep_file import load_sweep

    s = load_sweep(sweep, check_engine=False)
    return sum(len(plan_stage(s, stage)) for stage in ("tune", "transfer"))


def kind(r) -> str:
    if r.method == "GET" and ("list-type" in r.query or not r.key or r.key.endswith("/")):
        return "LIST"
    return r.method


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sweeps", nargs="+", default=["smoke", "demo"])
    p.add_argument("--cpus", type=int, default=2)
    args = p.parse_args()
    server = S3Server().start()
    work = Path(tempfile.mkdtemp(prefix="bench_s3_"))
    ray_tmp = Path(tempfile.mkdtemp(prefix="r", dir="/tmp"))
    env = {**os.environ, **server.env(), "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0",
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "RAY_TMPDIR": str(ray_tmp),
           "ITSEL_RAY_NODE_CACHE": str(work / "node")}
    print(f"`itsel-ray all` per sweep, local folder vs s3:// on a loopback S3 server (moto); {args.cpus} CPUs")
    print("| sweep | trials | wall local | wall S3 | S3 / local | bytes in folder | S3 bytes up | S3 bytes down "
          "| S3 requests | per trial | per trial by kind |")
    print("|---|---|---|---|---|---|---|---|---|---|---|", flush=True)
    try:
        for sweep in args.sweeps:
            n = trials_of(sweep)
            local = work / f"local-{sweep}"
            wall_local = run(sweep, str(local), env, args.cpus, work / f"{sweep}-local.log")
            bucket = server.make_bucket(f"bench-{sweep}")
            server.reset_log()
            wall_s3 = run(sweep, f"s3://{bucket}/runs", env, args.cpus, work / f"{sweep}-s3.log")
            reqs = [r for r in server.requests if r.bucket == bucket]
            kinds = collections.Counter(kind(r) for r in reqs)
            up, down = sum(r.bytes_in for r in reqs), sum(r.bytes_out for r in reqs if r.method == "GET")
            fb = folder_bytes(local)
            shutil.rmtree(local, ignore_errors=True)
            by = ", ".join(f"{k} {v / n:.0f}" for k, v in kinds.most_common())
            print(f"| {sweep} | {n} | {wall_local:.1f} s | {wall_s3:.1f} s | {wall_s3 / wall_local:.2f} | "
                  f"{fb / 1e6:.2f} MB | {up / 1e6:.2f} MB ({up / max(fb, 1):.2f}x) | {down / 1e6:.2f} MB | {len(reqs)} | "
                  f"{len(reqs) / n:.0f} | {by} |", flush=True)
    finally:
        server.stop()
        shutil.rmtree(ray_tmp, ignore_errors=True)
    print(f"logs: {work}")


if __name__ == "__main__":
    main()
