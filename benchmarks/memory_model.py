"""Predicted vs measured memory of one prompt-tuning step on CPU: the check behind `itsel_ray/engine/t5/memory.py`.

    python benchmarks/memory_model.py calibrate   # small shapes: fit measured/predicted saved bytes (CALIBRATION)
    python benchmarks/memory_model.py t5-base     # the t5-base shape at 128 and 512 input tokens + 100 prompt tokens
    python benchmarks/memory_model.py all

Measured in one fresh process per row (randomly initialised frozen T5, dropout 0.1, sequence loss, one padded row):
`saved` = bytes autograd keeps (saved_tensors_hooks, each storage once, weights left out), `retained` = bytes alive
after the forward pass, `peak` = most bytes alive during forward + backward (a storage-tracking dispatch mode).
The predictions use the cpu profile; `benchmarks/gpu_sharing.py` checks the cuda profile on a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

SMALL = [
    (dict(vocab_size=1000, d_model=64, d_ff=256, d_kv=16, num_layers=2, num_decoder_layers=2, num_heads=4), 2, 40, 5),
    (dict(vocab_size=1000, d_model=64, d_ff=256, d_kv=16, num_layers=2, num_decoder_layers=2, num_heads=4), 3, 25, 7),
    (dict(vocab_size=500, d_model=48, d_ff=96, d_kv=8, num_layers=3, num_decoder_layers=2, num_heads=3), 2, 40, 5),
    (dict(vocab_size=2000, d_model=96, d_ff=384, d_kv=24, num_layers=4, num_decoder_layers=3, num_heads=4), 4, 60, 9),
    (dict(vocab_size=800, d_model=32, d_ff=128, d_kv=8, num_layers=1, num_decoder_layers=4, num_heads=8), 2, 90, 3),
]
T5_BASE = dict(vocab_size=32128, d_model=768, d_ff=3072, d_kv=64, num_layers=12, num_decoder_layers=12, num_heads=12,
               dropout_rate=0.1)


def _child(spec: dict) -> None:
    import torch

    from itsel_ray.engine.t5.memory_probe import measure_step

    torch.set_num_threads(spec.pop("threads"))
    t = time.perf_counter()
    m = measure_step(**spec)
    print(json.dumps({"saved": m.saved, "retained": m.retained, "peak": m.peak, "s": time.perf_counter() - t}))


def measure(shape: dict, *, batch: int, input_tokens: int, target_tokens: int, precision: str, prompt_tokens: int,
            threads: int, checkpointing: bool = False) -> dict:
    spec = dict(model_config=shape, batch=batch, input_tokens=input_tokens, target_tokens=target_tokens,
                precision=precision, prompt_tokens=prompt_tokens, threads=threads,
                activation_checkpointing=checkpointing)
    out = subprocess.run([sys.executable, __file__, "_child", json.dumps(spec)], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def predicted(shape: dict, *, batch: int, input_tokens: int, target_tokens: int, precision: str,
              checkpointing: bool = False, calibrated: bool = True):
    from itsel_ray.engine.t5 import memory

    if not calibrated:
        saved, memory.CALIBRATION = memory.CALIBRATION, {**memory.CALIBRATION, "cpu": 1.0}
    try:
        return memory.predict_trial_memory(shape, batch=batch, input_tokens=input_tokens, target_tokens=target_tokens,
                                           precision=precision, device="cpu", activation_checkpointing=checkpointing)
    finally:
        if not calibrated:
            memory.CALIBRATION = saved


def _row(label: str, est, got: dict) -> dict:
    return {"case": label, "pred_activations_mib": round(est.activations / 2**20, 2),
            "saved_mib": round(got["saved"] / 2**20, 2), "saved/pred": round(got["saved"] / est.activations, 4),
            "retained/pred": round(got["retained"] / est.activations, 4),
            "pred_peak_mib": round((est.activations + est.workspace) / 2**20, 2),
            "peak_mib": round(got["peak"] / 2**20, 2),
            "peak/pred_peak": round(got["peak"] / (est.activations + est.workspace), 4), "s": round(got["s"], 1)}


def calibrate(threads: int) -> None:
    """Least-squares factor c with measured saved ~ c * predicted over the small shapes (both precisions)."""
    rows, pairs = [], []
    for shape, batch, length, targets in SMALL:
        for precision in ("fp32", "bf16"):
            est = predicted(shape, batch=batch, input_tokens=length, target_tokens=targets, precision=precision,
                            calibrated=False)
            got = measure(shape, batch=batch, input_tokens=length, target_tokens=targets, precision=precision,
                          prompt_tokens=10, threads=threads)
            pairs.append((est.activations, got["saved"]))
            rows.append(_row(f"d{shape['d_model']} L{length} B{batch} {precision}", est, got))
    for r in rows:
        print(json.dumps(r))
    c = sum(p * m for p, m in pairs) / sum(p * p for p, _ in pairs)
    ratios = [m / p for p, m in pairs]
    print(json.dumps({"fitted_cpu_calibration": round(c, 5), "ratio_min": round(min(ratios), 5),
                      "ratio_median": round(statistics.median(ratios), 5), "ratio_max": round(max(ratios), 5),
                      "cases": len(pairs)}))


def t5_base(threads: int, batch: int) -> None:
    for text_tokens in (128, 512):
        for precision in ("fp32", "bf16"):
            kw = dict(batch=batch, input_tokens=text_tokens + 100, target_tokens=3, precision=precision)
            est = predicted(T5_BASE, **kw)
            got = measure(T5_BASE, **kw, prompt_tokens=100, threads=threads)
            print(json.dumps(_row(f"t5-base {text_tokens}+100 tokens B{batch} {precision}", est, got)), flush=True)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["calibrate", "t5-base", "all", "_child"])
    ap.add_argument("spec", nargs="?")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=2, help="t5-base rows per step (default 2: one of them padded)")
    args = ap.parse_args(argv)
    if args.what == "_child":
        return _child(json.loads(args.spec))
    if args.what in ("calibrate", "all"):
        calibrate(args.threads)
    if args.what in ("t5-base", "all"):
        t5_base(args.threads, args.batch)


if __name__ == "__main__":
    main()
