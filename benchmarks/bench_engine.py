"""Engine benchmarks: training-step throughput against peft, rank vs generation evaluation, trial peak memory.

    python benchmarks/bench_engine.py train      # the trial's step vs peft's (Adafactor both), wall and thread CPU time
    python benchmarks/bench_engine.py train-causal  # the causal engine vs peft's CAUSAL_LM prompt tuning
    python benchmarks/bench_engine.py eval       # rank classification vs greedy generation, same predictions
    python benchmarks/bench_engine.py rank       # rank evaluation: labels packed per example vs one row per label
    python benchmarks/bench_engine.py memory     # peak RSS of one t5-small-shaped trial on CPU
    python benchmarks/bench_engine.py all

Models are randomly initialised from configs (no download). Steps are interleaved (ours, peer, ours, ...) so that
machine noise hits both sides alike; medians and ratios are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

SHAPES = {
    "tiny": dict(vocab_size=300, d_model=128, d_ff=512, num_layers=2, num_decoder_layers=2, num_heads=4, d_kv=32),
    "t5-small": dict(vocab_size=32128, d_model=512, d_ff=2048, num_layers=6, num_decoder_layers=6, num_heads=8, d_kv=64),
}


def _t5(shape: str, seed: int = 0):
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(seed)
    cfg = T5Config(**SHAPES[shape], dropout_rate=0.0, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    return T5ForConditionalGeneration(cfg).requires_grad_(False).eval()


def bench_train(shape: str, batch: int, seq: int, prompt_len: int, repeats: int) -> dict:
    """Median seconds per optimiser step, wall and this thread's CPU time: the trial's own step (PromptedT5, the
    sequence loss, the sweep's optimiser and schedule: Adafactor at an absolute LR, linear decay, gradient clipping
    at 1.0, as engine/trial.py runs them) vs peft's prompt tuning (encoder only) with the same optimiser, schedule
    and clipping. Per-thread CPU time (time.thread_time) is what the step costs this thread whatever else the
    machine runs; with --threads 1 it is the whole step's CPU time."""
    from peft import PromptTuningConfig, TaskType, get_peft_model

    from itsel_ray.engine.objectives import Batch, sequence_loss
    from itsel_ray.engine.optim import build_optimizer
    from itsel_ray.engine.t5.model import PromptedT5
    from itsel_ray.trial_config import OptimConfig

    optim = OptimConfig()  # the sweep's default: adafactor, lr 0.5, weight decay 1e-5, linear, clip 1.0

    gen = torch.Generator().manual_seed(0)
    vocab = SHAPES[shape]["vocab_size"]
    ids = torch.randint(3, vocab, (batch, seq), generator=gen)
    mask = torch.ones_like(ids)
    target = torch.randint(3, vocab, (batch, 4), generator=gen)
    init = torch.randn(prompt_len, SHAPES[shape]["d_model"], generator=gen)

    ours = PromptedT5(_t5(shape), init.clone())
    ours_opt, ours_sched = build_optimizer([ours.prompt], optim, max_steps=30000)
    b = Batch(ids, mask, target, None)

    peer_cfg = PromptTuningConfig(task_type=TaskType.SEQ_2_SEQ_LM, num_virtual_tokens=prompt_len,
                                  num_transformer_submodules=1)  # encoder-only prompt, as the paper
    peer = get_peft_model(_t5(shape), peer_cfg)
    peer_params = [p for p in peer.parameters() if p.requires_grad]
    assert sum(p.numel() for p in peer_params) == init.numel(), "peft must train exactly one [P, H] prompt"
    peer_opt, peer_sched = build_optimizer(peer_params, optim, max_steps=30000)
    labels = target.masked_fill(target == 0, -100)

    def step_ours():
        ours_opt.zero_grad(set_to_none=True)
        sequence_loss(ours, b, None, 0).backward()
        torch.nn.utils.clip_grad_norm_([ours.prompt], optim.max_grad_norm)
        ours_opt.step()
        ours_sched.step()

    def step_peer():
        peer_opt.zero_grad(set_to_none=True)
        peer(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
        torch.nn.utils.clip_grad_norm_(peer_params, optim.max_grad_norm)
        peer_opt.step()
        peer_sched.step()

    ours.backbone.train()
    peer.train()
    times = {"ours": [], "peft": []}
    cpu = {"ours": [], "peft": []}
    step_ours(), step_peer()  # warm-up
    for _ in range(repeats):
        for name, fn in (("ours", step_ours), ("peft", step_peer)):
            t, c = time.perf_counter(), time.thread_time()
            fn()
            times[name].append(time.perf_counter() - t)
            cpu[name].append(time.thread_time() - c)
    med = {k: statistics.median(v) for k, v in times.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    return {"shape": shape, "batch": batch, "tokens": f"{prompt_len}+{seq}", "optimizer": optim.name,
            "ours_s": med["ours"], "peft_s": med["peft"], "speedup_vs_peft": med["peft"] / med["ours"],
            "ours_thread_cpu_s": med_cpu["ours"], "peft_thread_cpu_s": med_cpu["peft"],
            "cpu_speedup_vs_peft": med_cpu["peft"] / med_cpu["ours"], "repeats": repeats}


CAUSAL_SHAPES = {
    "tiny-gpt2": dict(model_type="gpt2", vocab_size=300, n_embd=128, n_layer=2, n_head=4, n_positions=512),
    "gpt2": dict(model_type="gpt2", vocab_size=50257, n_embd=768, n_layer=12, n_head=12, n_positions=1024),
}


def _causal(shape: str, seed: int = 0):
    import transformers

    from itsel_ray.engine.causal.shapes import FAMILIES

    fields = dict(CAUSAL_SHAPES[shape])
    family = fields.pop("model_type")
    torch.manual_seed(seed)
    config = getattr(transformers, FAMILIES[family][1])(**fields, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                                                        bos_token_id=1, eos_token_id=1, pad_token_id=0)
    return getattr(transformers, FAMILIES[family][2])(config).requires_grad_(False).eval()


def bench_train_causal(shape: str, batch: int, seq: int, prompt_len: int, repeats: int, precision: str) -> dict:
    """Median seconds per optimiser step: our PromptedCausalLM + sequence loss vs peft's prompt tuning for causal LMs,
    on the same sequences: prompt + `seq` - 1 input tokens + a 1-token separator + 4 target tokens, loss on the
    target tokens only, Adam, `precision` autocast on both sides."""
    from peft import PromptTuningConfig, TaskType, get_peft_model

    from itsel_ray.engine.causal.model import PromptedCausalLM, SequenceFormat
    from itsel_ray.engine.objectives import Batch, sequence_loss
    from itsel_ray.engine.precision import autocast

    gen = torch.Generator().manual_seed(0)
    vocab, sep = CAUSAL_SHAPES[shape]["vocab_size"], 2
    ids = torch.randint(3, vocab, (batch, seq), generator=gen)
    ids[:, -1] = 1  # the input's closing EOS, which the causal engine replaces by the separator
    mask = torch.ones_like(ids)
    target = torch.randint(3, vocab, (batch, 4), generator=gen)
    init = torch.randn(prompt_len, CAUSAL_SHAPES[shape]["n_embd"], generator=gen) * 0.02

    ours = PromptedCausalLM(_causal(shape), init.clone(), SequenceFormat(eos_id=1, pad_id=0, separator=(sep,)))
    ours_opt = torch.optim.Adam([ours.prompt], lr=0.1)
    b = Batch(ids, mask, target, None, torch.ones_like(target))

    peer = get_peft_model(_causal(shape), PromptTuningConfig(task_type=TaskType.CAUSAL_LM,
                                                             num_virtual_tokens=prompt_len))
    peer_params = [p for p in peer.parameters() if p.requires_grad]
    assert sum(p.numel() for p in peer_params) == init.numel(), "peft must train exactly one [P, H] prompt"
    with torch.no_grad():
        peer_params[0].copy_(init)  # the same starting prompt: both sides compute the same loss
    peer_opt = torch.optim.Adam(peer_params, lr=0.1)
    full = torch.cat([ids[:, :-1], torch.full((batch, 1), sep), target], dim=1)
    labels = torch.cat([torch.full((batch, seq), -100), target], dim=1)  # input and separator: context only

    def step_ours():
        with autocast(precision, torch.device("cpu")):
            loss = sequence_loss(ours, b, None, 0)
        ours_opt.zero_grad(set_to_none=True)
        loss.backward()
        ours_opt.step()

    def step_peer():
        with autocast(precision, torch.device("cpu")):
            loss = peer(input_ids=full, attention_mask=torch.ones_like(full), labels=labels).loss
        peer_opt.zero_grad(set_to_none=True)
        loss.backward()
        peer_opt.step()

    with torch.no_grad():
        same = (float(sequence_loss(ours, b, None, 0)), float(peer(input_ids=full, labels=labels).loss))
    assert abs(same[0] - same[1]) < 1e-4 * abs(same[1]), f"not the same computation: loss {same[0]} vs peft {same[1]}"
    ours.backbone.train()
    peer.train()
    times = {"ours": [], "peft": []}
    step_ours(), step_peer()  # warm-up
    for _ in range(repeats):
        for name, fn in (("ours", step_ours), ("peft", step_peer)):
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"shape": shape, "precision": precision, "batch": batch, "tokens": f"{prompt_len}+{seq}+4",
            "ours_s": med["ours"], "peft_s": med["peft"], "speedup_vs_peft": med["peft"] / med["ours"],
            "repeats": repeats}


def bench_eval(shape: str, n_eval: int, repeats: int, train_steps: int) -> list[dict]:
    """Rank classification vs greedy generation on a synthetic classification task, in two regimes.

    "trained": after a short run with the sequence loss the model emits "<label></s>", so generation stops after two
    decoder steps and the shared encoder pass dominates both modes. "step0": the initial prompt, as at the first
    evaluations of a real run, where generation has not learnt to stop and decodes up to the 128-token cap.
    """
    from itsel_ray.artifacts import TrialFiles, load_prompt
    from itsel_ray.trial_config import TrialConfig
    from itsel_ray.engine.prompt import initial_prompt
    from itsel_ray.engine.t5 import T5
    from itsel_ray.engine.t5.model import PromptedT5
    from itsel_ray.engine.trial import predict, prepare_data
    from itsel_ray.tasks import get_task

    model_cfg = {"config": {**SHAPES[shape], "dropout_rate": 0.0}, "tokenizer": "vocab:synthetic"}
    cfg = TrialConfig.from_dict({
        "task": "syn_has0", "seed": 0, "model": model_cfg, "prompt": {"length": 20, "population": 300},
        "optim": {"name": "adam", "lr": 0.3, "weight_decay": 0.0, "schedule": "constant", "max_grad_norm": None},
        "train": {"max_steps": train_steps, "eval_every": train_steps, "batch_size": 32, "loss": "sequence",
                  "eval_mode": "rank", "max_eval_examples": n_eval, "eval_batch_size": 64,
                  "max_new_tokens": 128},  # the paper's generation cap
    })
    work = tempfile.mkdtemp()
    T5.run_trial(cfg, work)
    bb, task = T5.backbone(cfg.model), get_task(cfg.task)
    data = prepare_data(cfg, task, bb)
    prompts = {
        "trained": torch.from_numpy(load_prompt(TrialFiles(work).best_prompt)),
        "step0": initial_prompt(cfg.prompt, bb.model.get_input_embeddings().weight, seed=cfg.seed),
    }
    rows = []
    for regime, prompt in prompts.items():
        model = PromptedT5(bb.model, prompt)
        times, preds = {"rank": [], "generate": []}, {}
        for _ in range(repeats):
            for mode in ("rank", "generate"):
                t = time.perf_counter()
                preds[mode] = predict(model, cfg, task, data, bb, mode=mode)
                times[mode].append(time.perf_counter() - t)
        valid = [i for i, g in enumerate(preds["generate"]) if g in data.labels.words]
        agree = sum(preds["rank"][i] == preds["generate"][i] for i in valid)
        med = {k: statistics.median(v) for k, v in times.items()}
        rows.append({"shape": shape, "regime": regime, "examples": len(preds["rank"]), "rank_s": med["rank"],
                     "generate_s": med["generate"], "rank_speedup": med["generate"] / med["rank"],
                     "generation_valid": f"{len(valid)}/{len(preds['rank'])}",
                     "same_prediction_where_valid": f"{agree}/{len(valid)}"})
    return rows


def bench_rank(shape: str, n_eval: int, repeats: int) -> list[dict]:
    """Rank evaluation: every label packed into one decoder sequence per example (the engine's path) vs one decoder
    row per (example, label) with the encoder states repeated per label (the previous path), for a 2-label set of
    single tokens and for multi-token label sets; same scores checked, medians of interleaved runs, wall and
    thread CPU time."""
    from itsel_ray.engine.batching import pad
    from itsel_ray.engine.objectives import LabelSet
    from itsel_ray.engine.t5.model import PromptedT5, _label_scores_by_row, label_scores

    vocab = SHAPES[shape]["vocab_size"]
    gen = torch.Generator().manual_seed(0)
    rows = [torch.randint(3, vocab, (int(n),), generator=gen).tolist() + [1]
            for n in torch.randint(20, 120, (n_eval,), generator=gen)]
    model = PromptedT5(_t5(shape), torch.randn(100, SHAPES[shape]["d_model"], generator=gen))
    sets = {  # name: label token ids (EOS included)
        "2 labels x 1 token": [[5, 1], [6, 1]],
        "2 labels x 3 tokens": [[5, 7, 9, 1], [6, 8, 10, 1]],
        "3 labels x 2-4 tokens": [[5, 7, 1], [6, 8, 10, 1], [11, 12, 13, 14, 1]],
        "8 labels x 2 tokens": [[20 + 2 * i, 21 + 2 * i, 1] for i in range(8)],
    }
    out = []
    for name, ids in sets.items():
        labels = LabelSet.build([str(i) for i in range(len(ids))], ids, 0, "cpu")
        times = {"packed": [], "by_row": []}
        cpu = {"packed": [], "by_row": []}
        scores = {}
        with torch.no_grad():
            for r in range(repeats + 1):  # the first round warms up
                for path in ("packed", "by_row"):
                    t, c = time.perf_counter(), time.thread_time()
                    got = []
                    for start in range(0, len(rows), 64):
                        ids_b, mask_b = pad(rows[start : start + 64], 0)
                        enc, emask = model.encode(ids_b, mask_b)
                        fn = label_scores if path == "packed" else _label_scores_by_row
                        got.append(fn(model, enc, emask, labels))
                    if r:
                        times[path].append(time.perf_counter() - t)
                        cpu[path].append(time.thread_time() - c)
                    scores[path] = torch.cat(got)
        same = bool((scores["packed"].argmax(1) == scores["by_row"].argmax(1)).all())
        med = {k: statistics.median(v) for k, v in times.items()}
        med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
        out.append({"what": "rank", "shape": shape, "labels": name, "examples": n_eval, "same_predictions": same,
                    "max_abs_diff": float((scores["packed"] - scores["by_row"]).abs().max()),
                    "packed_s": med["packed"], "by_row_s": med["by_row"], "speedup": med["by_row"] / med["packed"],
                    "cpu_speedup": med_cpu["by_row"] / med_cpu["packed"], "repeats": repeats})
    return out


def _memory_child(steps: int) -> None:
    from itsel_ray.engine.t5 import T5
    from itsel_ray.trial_config import TrialConfig

    cfg = TrialConfig.from_dict({
        "task": "syn_has0", "seed": 0,
        "model": {"config": {**SHAPES["t5-small"], "dropout_rate": 0.1}, "tokenizer": "vocab:synthetic"},
        "prompt": {"length": 100, "population": 300},
        "optim": {"name": "adafactor", "lr": 0.5},
        "train": {"max_steps": steps, "eval_every": steps, "batch_size": 32, "loss": "sequence",
                  "eval_mode": "generate", "max_eval_examples": 64, "threads": 2},
    })
    t = time.perf_counter()
    T5.run_trial(cfg, tempfile.mkdtemp())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"peak_rss_mib": round(peak, 1), "steps": steps, "wall_s": round(time.perf_counter() - t, 1)}))


def bench_memory(steps: int) -> dict:
    """Peak RSS of a whole t5-small-shaped trial (100 prompt tokens, batch 32) in a fresh process."""
    out = subprocess.run([sys.executable, __file__, "_memory_child", "--steps", str(steps)], capture_output=True,
                         text=True, check=True)
    return {"shape": "t5-small", **json.loads(out.stdout.strip().splitlines()[-1])}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["train", "train-causal", "eval", "rank", "memory", "all", "_memory_child"])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"],
                    help="train-causal: the autocast precisions of the GPT-2-small rows (bf16 is slow on CPUs "
                         "without native bf16)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads for train/eval (default 1, as a trial)")
    args = ap.parse_args(argv)
    if args.what == "_memory_child":
        return _memory_child(args.steps)
    torch.set_num_threads(args.threads)
    rows = []
    if args.what in ("train", "all"):
        rows.append(bench_train("tiny", batch=32, seq=32, prompt_len=20, repeats=max(args.repeats, 10)))
        rows.append(bench_train("t5-small", batch=32, seq=128, prompt_len=100, repeats=args.repeats))
    if args.what in ("train-causal", "all"):
        rows.append(bench_train_causal("tiny-gpt2", batch=32, seq=32, prompt_len=20, repeats=max(args.repeats, 10),
                                       precision="fp32"))
        for precision in args.precisions:
            rows.append(bench_train_causal("gpt2", batch=8, seq=128, prompt_len=100, repeats=args.repeats,
                                           precision=precision))
    if args.what in ("eval", "all"):
        rows.extend(bench_eval("tiny", n_eval=512, repeats=args.repeats, train_steps=80))
    if args.what in ("rank", "all"):
        rows.extend(bench_rank("t5-small", n_eval=128, repeats=args.repeats))
    if args.what in ("memory", "all"):
        rows.append(bench_memory(args.steps))
    for row in rows:
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}), flush=True)


if __name__ == "__main__":
    main()
