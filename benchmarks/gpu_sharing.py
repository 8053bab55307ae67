"""One GPU: the memory model's prediction against torch.cuda.max_memory_allocated, and 1 vs 4 trials sharing it.

    python benchmarks/gpu_sharing.py                  # memory check: about 2-3 minutes on one GPU
    python benchmarks/gpu_sharing.py --sharing [--steps 30] [--warmup 5] [--trials 1 4]

The memory check builds a t5-base-shaped frozen T5 (random init from a T5Config, no download, dropout 0.1) and
runs one prompt-tuning step (100 prompt tokens, batch 32, sequence loss, 3 target tokens) at 128 and 512 input
tokens, fp32 and bf16, plus a micro-batch and a checkpointed row, and the same four rows on a flan-t5-base shape
(the gated tanh-GELU FFN of T5 v1.1 / Flan-T5 / mT5, whose CUDA profile runs `pow` in fp32 under autocast), then
rows for the causal engine on GPT-2-small and Qwen2.5-0.5B shapes (dropout as their configs). Per row it prints
the prediction of the engine's `predict_trial_memory` (`engine/t5/memory.py`, `engine/causal/memory.py`; cuda
profile) next to the measured
bytes: kept after the forward
pass (memory_allocated), peak over forward and backward (max_memory_allocated) and the device's own peak, with the
GPU share `gpu_fraction` would request. The rows also go to $OUT/gpu_memory.json when $OUT is set.

The sharing run measures whether packing pays: t5-base shape, 100 prompt tokens, batch 32, 128 input tokens,
sequence loss, Adafactor, bf16 autocast, trials as Ray tasks on a local instance with num_gpus=1 (the same
fractional-GPU scheduling the sweep uses); all trials of a round start together.

Needs a CUDA device; exits at once with a message otherwise.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

T5_BASE = dict(vocab_size=32128, d_model=768, d_ff=3072, d_kv=64, num_layers=12, num_decoder_layers=12,
               num_heads=12, dropout_rate=0.1, feed_forward_proj="relu", decoder_start_token_id=0, pad_token_id=0,
               eos_token_id=1)
FLAN_T5_BASE = {**T5_BASE, "d_ff": 2048, "feed_forward_proj": "gated-gelu", "tie_word_embeddings": False}
# decoder-only shapes for the causal engine (engine/causal/memory.py): GPT-2 small and the Qwen2.5-0.5B layout
GPT2 = dict(model_type="gpt2", vocab_size=50257, n_embd=768, n_layer=12, n_head=12, n_positions=1024)
QWEN2_05B = dict(model_type="qwen2", vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                 num_attention_heads=14, num_key_value_heads=2, tie_word_embeddings=True)
SHAPES = {"t5-base": T5_BASE, "flan-t5-base": FLAN_T5_BASE, "gpt2": GPT2, "qwen2.5-0.5b": QWEN2_05B}
ENGINE_OF = {"gpt2": "causal", "qwen2.5-0.5b": "causal"}  # the others: t5


def require_cuda() -> None:
    try:
        import torch
    except ImportError:
        sys.exit("gpu_sharing: torch is not installed")
    if not torch.cuda.is_available():
        sys.exit("gpu_sharing: no CUDA device visible (torch.cuda.is_available() is False); run this on a GPU "
                 "machine, e.g. a worker of the cluster in cluster.yaml")


def train_steps(*, steps: int, warmup: int, batch: int, seq_len: int, target_len: int, prompt_len: int,
                model_fields: dict, device: str, barrier=None, n_trials: int = 1, precision: str = "bf16") -> dict:
    """Build the frozen model and time `steps` prompt-tuning steps after `warmup`; returns rates and memory.
    precision: bf16 (autocast, as the engine trains on a GPU) or fp32."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    from itsel_ray.trial_config import OptimConfig
    from itsel_ray.engine.objectives import Batch, sequence_loss
    from itsel_ray.engine.optim import build_optimizer
    from itsel_ray.engine.t5.model import PromptedT5

    torch.manual_seed(0)
    dev = torch.device(device)
    backbone = T5ForConditionalGeneration(T5Config(**model_fields)).to(dev).requires_grad_(False)
    backbone.train()
    emb = backbone.get_input_embeddings().weight
    model = PromptedT5(backbone, emb[torch.randint(0, min(5000, emb.shape[0]), (prompt_len,))].detach().clone().float())
    opt, sched = build_optimizer([model.prompt], OptimConfig(name="adafactor", lr=0.5), max_steps=30000)
    vocab = model_fields["vocab_size"]
    data = Batch(input_ids=torch.randint(2, vocab, (batch, seq_len), device=dev),
                 attention_mask=torch.ones(batch, seq_len, dtype=torch.long, device=dev),
                 target_ids=torch.randint(2, vocab, (batch, target_len), device=dev), labels=None)
    bf16 = dev.type == "cuda" and precision == "bf16"  # bf16 autocast on CUDA, as the engine trains
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if bf16 else torch.autocast(dev.type, enabled=False)

    def step():
        with autocast:
            loss = sequence_loss(model, data, None, 0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()

    for _ in range(warmup):
        step()
    _sync(dev)
    if barrier is not None:  # every trial of the round starts timing together
        import ray

        ray.get(barrier.arrive.remote())
        while ray.get(barrier.count.remote()) < n_trials:
            time.sleep(0.05)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(dev)
    wall = time.perf_counter() - t0
    out = {"steps_per_s": steps / wall, "wall_s": wall}
    if dev.type == "cuda":
        free, total = torch.cuda.mem_get_info(dev)
        out.update(peak_allocated_gib=torch.cuda.max_memory_allocated(dev) / 2**30,
                   peak_reserved_gib=torch.cuda.max_memory_reserved(dev) / 2**30,
                   device_used_gib=(total - free) / 2**30, device_total_gib=total / 2**30)
    return out


def _sync(dev) -> None:
    import torch

    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def run_round(n: int, args) -> list[dict]:
    import ray

    @ray.remote
    class Barrier:
        def __init__(self):
            self.n = 0

        def arrive(self):
            self.n += 1

        def count(self):
            return self.n

    barrier = Barrier.remote()
    trial = ray.remote(num_gpus=1.0 / n, num_cpus=1)(_trial_task)
    refs = [trial.remote(vars(args), barrier, n) for _ in range(n)]
    out = []
    for ref in refs:
        try:
            out.append(ray.get(ref))
        except Exception as err:  # e.g. CUDA out of memory with 4 trials on a small card
            out.append({"error": f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"})
    return out


def _trial_task(opts: dict, barrier, n: int) -> dict:
    return train_steps(steps=opts["steps"], warmup=opts["warmup"], batch=opts["batch"], seq_len=opts["seq_len"],
                       target_len=opts["target_len"], prompt_len=opts["prompt_len"], model_fields=T5_BASE,
                       device="cuda", barrier=barrier, n_trials=n)


MEMORY_ROWS = [  # (model shape, text tokens, precision, micro-batch, activation checkpointing)
    ("t5-base", 128, "fp32", None, False), ("t5-base", 128, "bf16", None, False),
    ("t5-base", 512, "fp32", None, False), ("t5-base", 512, "bf16", None, False),
    ("t5-base", 512, "bf16", 8, False), ("t5-base", 512, "bf16", None, True),
    ("flan-t5-base", 128, "fp32", None, False), ("flan-t5-base", 128, "bf16", None, False),
    ("flan-t5-base", 512, "fp32", None, False), ("flan-t5-base", 512, "bf16", None, False),
    ("gpt2", 128, "fp32", None, False), ("gpt2", 512, "bf16", None, False), ("gpt2", 512, "bf16", None, True),
    ("qwen2.5-0.5b", 128, "bf16", None, False), ("qwen2.5-0.5b", 512, "bf16", 8, False),
]


def memory_check(batch: int = 32, prompt_len: int = 100, target_len: int = 3) -> list[dict]:
    """Predicted vs measured bytes of one training step for each row of MEMORY_ROWS."""
    import gc
    import json

    import torch

    import importlib

    from itsel_ray.engine.base import GIB
    from itsel_ray.runs.resources import gpu_fraction

    dev = torch.device("cuda")
    total_bytes = torch.cuda.get_device_properties(dev).total_memory
    rows = []
    for shape, text, precision, micro, ckpt in MEMORY_ROWS:
        kw = dict(input_tokens=text + prompt_len, target_tokens=target_len, precision=precision,
                  activation_checkpointing=ckpt)
        engine = ENGINE_OF.get(shape, "t5")
        predict_trial_memory = importlib.import_module(f"itsel_ray.engine.{engine}.memory").predict_trial_memory
        measure_step = importlib.import_module(f"itsel_ray.engine.{engine}.memory_probe").measure_step
        est = predict_trial_memory(SHAPES[shape], batch=batch, micro_batch=micro, prompt_tokens=prompt_len, **kw)
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)
        t = time.perf_counter()
        try:
            got = measure_step(SHAPES[shape], batch=micro or batch, prompt_tokens=prompt_len, device="cuda", **kw)
        except torch.OutOfMemoryError as err:
            rows.append({"model": shape, "text_tokens": text, "precision": precision,
                         "error": str(err).splitlines()[0][:160]})
            continue
        device_peak = torch.cuda.max_memory_allocated(dev)
        kept_pred, peak_pred = est.activations, est.activations + est.workspace
        rows.append({
            "model": shape, "text_tokens": text, "prompt_tokens": prompt_len, "batch": batch, "micro_batch": micro or batch,
            "precision": precision, "checkpointing": ckpt,
            "pred_kept_gib": round(kept_pred / GIB, 3), "kept_gib": round(got.retained / GIB, 3),
            "saved_gib": round(got.saved / GIB, 3), "kept/pred": round(got.retained / kept_pred, 3),
            "pred_step_peak_gib": round(peak_pred / GIB, 3), "step_peak_gib": round(got.peak / GIB, 3),
            "peak/pred": round(got.peak / peak_pred, 3),
            "pred_total_gib": round(est.total / GIB, 3), "device_peak_gib": round(device_peak / GIB, 3),
            "share": round(gpu_fraction(est.total, total_bytes), 4), "s": round(time.perf_counter() - t, 1),
        })
        print(json.dumps(rows[-1]), flush=True)
    out = os.environ.get("OUT")
    if out:
        Path(out, "gpu_memory.json").write_text(json.dumps({"device": torch.cuda.get_device_name(dev),
                                                            "torch": torch.__version__, "rows": rows}, indent=1))
    return rows


def sharing(args) -> None:
    import ray
    import torch

    print(f"device: {torch.cuda.get_device_name(0)}; t5-base shape, prompt {args.prompt_len}, batch {args.batch}, "
          f"{args.seq_len} input tokens, {args.steps} timed steps", flush=True)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(address="local", num_gpus=1, num_cpus=max(4, os.cpu_count() or 4), include_dashboard=False,
             object_store_memory=256 * 1024**2, log_to_driver=False)
    try:
        rows = {n: run_round(n, args) for n in args.trials}
    finally:
        ray.shutdown()
    base = None
    print(f"\n{'trials/GPU':>10} {'steps/s per trial':>18} {'total steps/s':>14} {'vs 1 trial':>10} "
          f"{'peak alloc GiB/trial':>21} {'device used GiB':>16}")
    for n, results in rows.items():
        errors = [r["error"] for r in results if "error" in r]
        if errors:
            print(f"{n:>10} failed: {errors[0]}")
            continue
        per = statistics.mean(r["steps_per_s"] for r in results)
        total = sum(r["steps_per_s"] for r in results)
        base = base or (total if n == min(rows) else None)
        speed = f"{total / base:.2f}x" if base else "-"
        print(f"{n:>10} {per:>18.2f} {total:>14.2f} {speed:>10} "
              f"{max(r['peak_allocated_gib'] for r in results):>21.2f} "
              f"{max(r['device_used_gib'] for r in results):>16.2f} / {results[0]['device_total_gib']:.0f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sharing", action="store_true", help="time 1 vs 4 trials per GPU instead of the memory check")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--target-len", type=int, default=8)
    p.add_argument("--prompt-len", type=int, default=100)
    p.add_argument("--trials", type=int, nargs="+", default=[1, 4])
    args = p.parse_args()
    require_cuda()
    if args.sharing:
        sharing(args)
    else:
        import torch

        print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}", flush=True)
        memory_check(batch=args.batch, prompt_len=args.prompt_len)


if __name__ == "__main__":
    main()
