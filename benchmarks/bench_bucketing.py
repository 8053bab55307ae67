"""Random vs length-bucketed batches (train.batching) on real text under the real T5 vocabulary: the share of padding
and the time of a training step at t5-small shape, measured in one run (interleaved steps, medians, the ratio), and
how far each batch's label mix strays from the task's (where length predicts the label, length-sorted batches lean
to one label: the demo's synthetic tasks, where a row holding a keyword is longer, lost 5-7 points of tuned accuracy).

Real lengths come from the two datasets that ship with the authors' code (the anchors: CR's 3,012 training reviews
and CxC's 1,000 caption pairs), formatted as the tasks declare and tokenised with the T5 tokenizer. The model is a
randomly initialised T5 of t5-small's shape (the step's cost does not depend on the weights' values), frozen, with a
100-token prompt, batch 32, the sequence loss, Adafactor on the prompt: the trial's own step.

    python benchmarks/bench_bucketing.py [--anchors ../shared/anchors] [--steps 10] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

T5_SMALL = {"vocab_size": 32128, "d_model": 512, "d_ff": 2048, "d_kv": 64, "num_heads": 8, "num_layers": 6,
            "num_decoder_layers": 6, "dropout_rate": 0.1, "decoder_start_token_id": 0, "pad_token_id": 0,
            "eos_token_id": 1}
TASKS = {"cr": ("cr/train.jsonl", "uds-lsv_intermediate-task-selection/seq2seq/train.jsonl"),
         "cxc": ("cxc/cxc.train", "uds-lsv_intermediate-task-selection/seq2seq/cxc.val_1k")}
PROMPT, BATCH, PAD_STEPS = 100, 32, 512


def encoded_tasks(anchors: Path, tokenizer):
    from itsel_ray.data.encoded import encode_examples
    from itsel_ray.tasks import get_task

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for task, (dest, src) in TASKS.items():
            (Path(tmp) / dest).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(anchors / src, Path(tmp) / dest)
            spec = get_task(task)
            examples = spec.load("train", data_dir=tmp)
            out[task] = encode_examples(tokenizer, examples, max_source=spec.max_source_length,
                                        max_target=spec.max_target_length)
    return out


def batches(kind: str, data, steps: int, seed: int = 0) -> list[list[int]]:
    from itsel_ray.engine.batching import bucket_keys, training_batch

    keys = bucket_keys(data.inputs.lengths(), data.targets.lengths())
    return [training_batch(kind, keys, len(data), BATCH, seed=seed, step=s) for s in range(steps)]


def padding(data, idx_list) -> tuple[float, float]:
    """(share of padded encoder text positions, share of padded encoder + decoder positions, prompt included)."""
    inp, tgt = data.inputs.lengths(), data.targets.lengths()
    text_pad = text_all = pad_all = all_pos = 0
    for idx in idx_list:
        i, t = inp[idx], tgt[idx]
        text_all += len(idx) * i.max()
        text_pad += len(idx) * i.max() - i.sum()
        all_pos += len(idx) * (PROMPT + i.max() + t.max())
        pad_all += len(idx) * (i.max() + t.max()) - i.sum() - t.sum()
    return text_pad / text_all, pad_all / all_pos


def label_mix(data, idx_list) -> tuple[float, float] | None:
    """(mean share of the batch's most common label, the same for the whole split): how label-skewed batches are.
    None for a task without label indices (free-text or numeric targets, such as CxC's scores)."""
    labels = np.asarray(data.labels)
    if not (labels >= 0).any():
        return None
    whole = np.bincount(labels[labels >= 0]).max() / max(1, int((labels >= 0).sum()))
    shares = [np.bincount(labels[idx][labels[idx] >= 0]).max() / max(1, int((labels[idx] >= 0).sum()))
              for idx in idx_list]
    return float(np.mean(shares)), float(whole)


def length_auc(data) -> float | None:
    """How well input length separates the two most common labels (0.5: not at all; ties count half)."""
    labels, lens = np.asarray(data.labels), np.asarray(data.inputs.lengths())
    if not (labels >= 0).any():
        return None
    top = np.argsort(np.bincount(labels[labels >= 0]))[-2:]
    a, b = lens[labels == top[1]], lens[labels == top[0]]
    greater = (a[:, None] > b[None, :]).mean() + 0.5 * (a[:, None] == b[None, :]).mean()
    return float(max(greater, 1 - greater))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--anchors", default=str(Path(__file__).resolve().parents[2] / "shared" / "anchors"))
    p.add_argument("--steps", type=int, default=10, help="timed steps per batching and task")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)

    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    from itsel_ray.data.tokenizers import build_tokenizer
    from itsel_ray.engine.cost import SplitLengths, TaskLengths
    from itsel_ray.engine.data import make_batch
    from itsel_ray.engine.objectives import LOSSES
    from itsel_ray.engine.optim import build_optimizer
    from itsel_ray.engine.t5 import cost as t5cost
    from itsel_ray.engine.t5.model import PromptedT5
    from itsel_ray.engine.t5.shapes import shape_from_config
    from itsel_ray.trial_config import OptimConfig, TrialConfig

    torch.set_num_threads(args.threads)
    anchors = Path(args.anchors)
    tokenizer = build_tokenizer(str(anchors / "t5_tokenizer"))
    data = encoded_tasks(anchors, tokenizer)
    shape = shape_from_config(T5_SMALL)
    torch.manual_seed(0)
    backbone = T5ForConditionalGeneration(T5Config(**T5_SMALL)).requires_grad_(False).train()
    loss_fn, pad_id = LOSSES.get("sequence"), tokenizer.pad_token_id
    print(f"torch {torch.__version__}, {args.threads} threads, t5-small shape (random weights), prompt {PROMPT}, "
          f"batch {BATCH}; load average {os.getloadavg()[0]:.2f}")
    print(f"{'task':<5} {'rows':>5} {'mean in':>7} {'max in':>6} {'batching':<9} {'text pad':>8} {'pos pad':>7} "
          f"{'FLOP pad':>8} {'step s (median)':>15} {'label mix':>9}")
    for task, enc in data.items():
        lens = enc.inputs.lengths()
        cfg = TrialConfig.from_dict({"task": task, "seed": 0, "model": {"config": T5_SMALL},
                                     "prompt": {"length": PROMPT}, "train": {"batch_size": BATCH}})
        lengths = TaskLengths(SplitLengths(lens, enc.targets.lengths()), None, None, "measured")
        plans = {kind: batches(kind, enc, PAD_STEPS) for kind in ("random", "bucketed")}
        prompt = torch.nn.Parameter(torch.randn(PROMPT, T5_SMALL["d_model"]) * 0.5)
        model = PromptedT5(backbone, prompt)
        opt, _ = build_optimizer([model.prompt], OptimConfig(name="adafactor", lr=0.3), max_steps=1000)
        times = {"random": [], "bucketed": []}
        for s in range(args.steps + 1):  # interleaved, so both see the same machine; step 0 of each is warm-up
            for kind in ("random", "bucketed"):
                batch = make_batch(enc, plans[kind][s], pad_id, "cpu")
                t0 = time.perf_counter()
                opt.zero_grad(set_to_none=True)
                loss_fn(model, batch, None, pad_id).backward()
                opt.step()
                if s:
                    times[kind].append(time.perf_counter() - t0)
        medians = {}
        for kind, idx in plans.items():
            text_pad, pos_pad = padding(enc, idx)
            cost = t5cost.trial_cost(TrialConfig.from_dict({**cfg.to_dict(),
                                                            "train": {**cfg.to_dict()["train"], "batching": kind}}),
                                     lengths, shape=shape)
            medians[kind] = statistics.median(times[kind])
            mix = label_mix(enc, idx)
            shown = "-" if mix is None else f"{100 * mix[0]:.1f}%"
            print(f"{task:<5} {len(enc):>5} {lens.mean():>7.1f} {lens.max():>6} {kind:<9} {100 * text_pad:>7.1f}% "
                  f"{100 * pos_pad:>6.1f}% {100 * cost.padding_share:>7.1f}% {medians[kind]:>15.3f} {shown:>9}")
        line = (f"{task:<5} step time bucketed / random: {medians['bucketed'] / medians['random']:.3f} "
                f"(medians of {args.steps} interleaved steps each)")
        if mix is not None:
            line += (f"; the split's most common label {100 * mix[1]:.1f} %, length separates its two most common "
                     f"labels with AUC {length_auc(enc):.2f}")
        print(line)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
