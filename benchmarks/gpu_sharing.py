"""Prompt-tuning throughput and memory on one GPU with 1 trial alone and with 4 trials sharing it (0.25 GPU each).

The paper sweep packs 4 trials per GPU (sweeps/paper.yaml: gpu_per_trial 0.25). This measures whether that pays:
t5-base shape (a random-init T5Config, no download), 100 prompt tokens, batch 32, 128 input tokens, sequence loss,
Adafactor, bf16 autocast: the engine's own model, loss and optimiser. Trials run as Ray tasks on a local instance
with num_gpus=1 (the same fractional-GPU scheduling the sweep uses); all trials of a round start together.

    python benchmarks/gpu_sharing.py [--steps 30] [--warmup 5] [--trials 1 4]

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


def require_cuda() -> None:
    try:
        import torch
    except ImportError:
        sys.exit("gpu_sharing: torch is not installed")
    if not torch.cuda.is_available():
        sys.exit("gpu_sharing: no CUDA device visible (torch.cuda.is_available() is False); run this on a GPU "
                 "machine, e.g. a worker of the cluster in cluster.yaml")


def train_steps(*, steps: int, warmup: int, batch: int, seq_len: int, target_len: int, prompt_len: int,
                model_fields: dict, device: str, barrier=None, n_trials: int = 1) -> dict:
    """Build the frozen model and time `steps` prompt-tuning steps after `warmup`; returns rates and memory."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    from itsel_ray.trial_config import OptimConfig
    from itsel_ray.engine.objectives import Batch, sequence_loss
    from itsel_ray.engine.optim import build_optimizer
    from itsel_ray.engine.prompt import PromptedT5

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
    cuda = dev.type == "cuda"  # bf16 autocast on CUDA, as the engine trains
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else torch.autocast("cpu", enabled=False)

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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--target-len", type=int, default=8)
    p.add_argument("--prompt-len", type=int, default=100)
    p.add_argument("--trials", type=int, nargs="+", default=[1, 4])
    args = p.parse_args()
    require_cuda()
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


if __name__ == "__main__":
    main()
