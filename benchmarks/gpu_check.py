"""Everything a GPU must tell us, in one run of under 10 minutes: the memory model against the device, how trials
share it, and the throughput calibration that `--dry-run`'s cost table reads.

    python benchmarks/gpu_check.py [--calibration PATH] [--skip memory,sharing,mps,calibration]

Three parts, each printed as it finishes (one JSON object per line) and gathered into $OUT/gpu_check.json when $OUT
is set (else ./gpu_check.json):

1. `memory`: one t5-base-shaped prompt-tuning step (batch 32, 100 prompt tokens, 3 target tokens) at 3 input
   lengths (64, 256, 512 text tokens) in bf16 and fp32: the memory model's prediction
   (`itsel_ray.engine.t5.memory.predict_trial_memory`, cuda profile) beside `torch.cuda.max_memory_allocated`.
   Row keys as `benchmarks/gpu_sharing.py` writes them: pred_kept_gib / kept_gib, pred_step_peak_gib /
   step_peak_gib, peak/pred, pred_total_gib, device_peak_gib, share (the GPU fraction the planner would request).
2. `sharing`: steps per second of 1, 2, 4 and 8 t5-base-shaped trials on one GPU (Ray tasks with num_gpus=1/n,
   as the sweep schedules them; bf16, batch 32, 128 input tokens, 8 target tokens, Adafactor), then the same
   under CUDA MPS when `nvidia-cuda-mps-control` is on the PATH (started in a private pipe folder and stopped
   after). Row: {"mps": bool, "trials": n, "steps_per_s_per_trial", "total_steps_per_s", "vs_1_trial",
   "peak_alloc_gib_per_trial", "device_used_gib", "error" (when a round failed, e.g. out of memory)}.
3. `calibration`: one trial alone on the GPU at the same shape, bf16 and fp32: median step time, the step's FLOPs
   from the cost model (`itsel_ray.engine.t5.cost.train_step`) and so the achieved TFLOP/s; written as
   {"device", "torch", "measured", "tflops": {"bf16", "fp32"}, "shape", "packed_bf16_tflops"} to
   $OUT/calibration.json and to --calibration (e.g. `<storage>/<sweep>/calibration.json`, where `--dry-run` looks;
   or point $ITSEL_RAY_CALIBRATION at it). packed_bf16_tflops: the best total of the sharing rounds, for a reader
   who packs trials (`--dry-run` uses the single-trial figure: GPU-hours are then an upper bound when packing pays).

Needs a CUDA device; exits at once with a message otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import gpu_sharing  # noqa: E402

MEMORY_ROWS = [("t5-base", text, precision, None, False) for text in (64, 256, 512) for precision in ("bf16", "fp32")]
SHARING = [1, 2, 4, 8]
SHAPE = {"batch": 32, "seq_len": 128, "target_len": 8, "prompt_len": 100}


def emit(results: dict, part: str, row: dict) -> None:
    results.setdefault(part, []).append(row)
    print(json.dumps({"part": part, **row}), flush=True)


def sharing_rounds(results: dict, *, mps: bool, steps: int, warmup: int) -> None:
    import ray

    args = argparse.Namespace(steps=steps, warmup=warmup, **SHAPE)
    ray.init(address="local", num_gpus=1, num_cpus=max(9, os.cpu_count() or 9), include_dashboard=False,
             object_store_memory=256 * 1024**2, log_to_driver=False)
    try:
        base = None
        for n in SHARING:
            rows = gpu_sharing.run_round(n, args)
            errors = [r["error"] for r in rows if "error" in r]
            if errors:
                emit(results, "sharing", {"mps": mps, "trials": n, "error": errors[0]})
                continue
            total = sum(r["steps_per_s"] for r in rows)
            base = base or (total if n == 1 else None)
            emit(results, "sharing", {
                "mps": mps, "trials": n,
                "steps_per_s_per_trial": round(statistics.mean(r["steps_per_s"] for r in rows), 3),
                "total_steps_per_s": round(total, 3), "vs_1_trial": round(total / base, 3) if base else None,
                "peak_alloc_gib_per_trial": round(max(r["peak_allocated_gib"] for r in rows), 3),
                "device_used_gib": round(max(r["device_used_gib"] for r in rows), 3)})
    finally:
        ray.shutdown()


def with_mps(fn) -> str | None:
    """Run fn() with a private CUDA MPS daemon; returns why not when MPS is unavailable."""
    control = shutil.which("nvidia-cuda-mps-control")
    if control is None:
        return "nvidia-cuda-mps-control not found"
    folder = tempfile.mkdtemp(prefix="mps.")
    env = {"CUDA_MPS_PIPE_DIRECTORY": f"{folder}/pipe", "CUDA_MPS_LOG_DIRECTORY": f"{folder}/log"}
    for path in env.values():
        os.makedirs(path, exist_ok=True)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    started = subprocess.run([control, "-d"], capture_output=True, text=True)
    if started.returncode != 0:
        _restore(saved)
        return f"MPS did not start: {(started.stderr or started.stdout).strip()[:200]}"
    try:
        fn()
    finally:
        subprocess.run([control], input="quit\n", capture_output=True, text=True)
        _restore(saved)
    return None


def _restore(saved: dict) -> None:
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def calibration(results: dict, *, steps: int, warmup: int) -> dict:
    import torch

    from itsel_ray.engine.cost import Batch
    from itsel_ray.engine.t5 import cost as t5cost
    from itsel_ray.engine.t5.shapes import shape_from_config

    shape = shape_from_config(gpu_sharing.T5_BASE)
    flops = t5cost.train_step(shape, [Batch(SHAPE["batch"], SHAPE["seq_len"], SHAPE["target_len"])],
                              prompt=SHAPE["prompt_len"])
    tflops = {}
    for precision in ("bf16", "fp32"):
        times = []
        for _ in range(3):  # three timed runs of `steps` steps: the median run
            out = gpu_sharing.train_steps(steps=steps, warmup=warmup, model_fields=gpu_sharing.T5_BASE,
                                          device="cuda", precision=precision, **SHAPE)
            times.append(out["wall_s"] / steps)
        step_s = statistics.median(times)
        tflops[precision] = flops / step_s / 1e12
        emit(results, "calibration", {"precision": precision, "step_s": round(step_s, 5), "step_flops": flops,
                                      "tflops": round(tflops[precision], 3)})
    packed = [r["total_steps_per_s"] * flops / 1e12 for r in results.get("sharing", []) if "total_steps_per_s" in r]
    return {"device": torch.cuda.get_device_name(0), "torch": torch.__version__,
            "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "tflops": {k: round(v, 3) for k, v in tflops.items()},
            "packed_bf16_tflops": round(max(packed), 3) if packed else None,
            "shape": {"model": "t5-base", **SHAPE, "optimizer": "adafactor"}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calibration", default=None, help="also write the calibration here")
    p.add_argument("--skip", default="", help="comma-separated parts to skip: memory, sharing, mps, calibration")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    args = p.parse_args(argv)
    gpu_sharing.require_cuda()
    import torch

    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    out_dir = Path(os.environ.get("OUT") or ".")
    results: dict = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__}
    print(f"device: {results['device']}, torch {results['torch']}", flush=True)
    t0 = time.perf_counter()
    if "memory" not in skip:
        gpu_sharing.MEMORY_ROWS = MEMORY_ROWS
        for row in gpu_sharing.memory_check(batch=32, prompt_len=100):
            results.setdefault("memory", []).append(row)
    if "sharing" not in skip:
        sharing_rounds(results, mps=False, steps=args.steps, warmup=args.warmup)
        if "mps" not in skip:
            why = with_mps(lambda: sharing_rounds(results, mps=True, steps=args.steps, warmup=args.warmup))
            if why:
                emit(results, "sharing", {"mps": True, "skipped": why})
    if "calibration" not in skip:
        cal = calibration(results, steps=args.steps, warmup=args.warmup)
        results["calibration_file"] = cal
        text = json.dumps(cal, indent=1)
        (out_dir / "calibration.json").write_text(text)
        if args.calibration:
            Path(args.calibration).write_text(text)
        print(f"calibration: bf16 {cal['tflops']['bf16']} / fp32 {cal['tflops']['fp32']} TFLOP/s", flush=True)
    results["seconds"] = round(time.perf_counter() - t0, 1)
    (out_dir / "gpu_check.json").write_text(json.dumps(results, indent=1))
    print(f"done in {results['seconds']} s: {out_dir / 'gpu_check.json'}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
