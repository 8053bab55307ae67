"""Host memory and start-up time of a trial's data: loaded in the trial (before) vs read from the prepared cache.

    python benchmarks/bench_data.py                  # MNLI-sized: 392,702 training + 9,832 validation rows
    python benchmarks/bench_data.py --rows 50000     # quicker

An MNLI-shaped split is generated (premise ~30 words, hypothesis ~15, words drawn with Zipf frequencies from
the 8,000 most frequent whole-word pieces of the real T5 vocabulary, a few glued into longer words) and written
as a local mirror in the Hub's parquet layout. Each measurement runs in a fresh subprocess, so its RSS holds
nothing but that trial:

  old       the data path before the prepared cache: `datasets.load_dataset` on the split, every row as a Python
            dict, every example as an object, token ids as lists of lists (the previous `prepare_data`)
  load      today's fallback without a cache: the same loading, token ids as flat int32 arrays
  prepared  `prepare_data` with `data.cache_dir`: the splits memory-mapped from the cache `prepare_task` wrote

"first" is the first trial of the task on the machine (for old/load, `datasets` converts the parquet files into
its Arrow cache first, as after a download; for prepared, the first trial after `prepare_task`); "later" is the
median of the next trials. Start = config -> first training batch on the device, after the backbone (a tiny T5
from a config, the real T5 tokenizer) is loaded. Data RSS = RSS after the first batch minus RSS before
`prepare_data`, and again after reading every training example once (an epoch touches every page of a
memory-mapped file; the page cache shares those pages between the workers of a node).
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

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
TOKENIZER = REPO.parent / "shared" / "anchors" / "t5_tokenizer"
TINY = {"d_model": 64, "d_ff": 128, "num_layers": 1, "num_decoder_layers": 1, "num_heads": 2, "d_kv": 32}
TASK = "bench_mnli"
GIB = 2**30


# ------------------------------------------------------------------------------------------------- data


def generate(work: Path, rows: int, eval_rows: int) -> Path:
    """Write the MNLI-shaped mirror folder (train + validation parquet) and return it."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    from transformers import AutoTokenizer

    folder = work / "mirror" / "bench" / "mnli"
    if (folder / "_rows").is_file() and (folder / "_rows").read_text() == f"{rows} {eval_rows}":
        return folder
    vocab = AutoTokenizer.from_pretrained(TOKENIZER).get_vocab()
    # SentencePiece ids run roughly by frequency: the first whole-word pieces are the common (English) words
    words = [p[1:] for p, _ in sorted(vocab.items(), key=lambda kv: kv[1])
             if p.startswith("\u2581") and p[1:].isascii() and p[1:].isalpha() and p[1:].islower()][:8000]
    rng = np.random.default_rng(0)
    weights = 1.0 / np.arange(1, len(words) + 1)  # Zipf: a few common words, a long tail
    weights /= weights.sum()
    words = np.array(words, dtype=object)

    def sentences(n: int, mean: float, sd: float) -> list[str]:
        lengths = np.clip(rng.normal(mean, sd, n).round().astype(int), 3, 4 * int(mean))
        picks = words[rng.choice(len(words), size=int(lengths.sum()), p=weights)]
        glue = rng.random(len(picks)) < 0.05  # rarer, longer words that split into several pieces
        picks[glue] = picks[glue] + words[rng.integers(0, len(words), int(glue.sum()))]
        out, pos = [], 0
        for n_words in lengths:
            text = " ".join(picks[pos : pos + n_words])
            out.append(text[0].upper() + text[1:] + ".")
            pos += n_words
        return out

    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", rows), ("validation", eval_rows)):
        table = pa.table({"premise": sentences(n, 30, 8), "hypothesis": sentences(n, 15, 5),
                          "label": rng.integers(0, 3, n).astype(np.int64), "idx": np.arange(n, dtype=np.int32)})
        pq.write_table(table, folder / f"{split}-00000-of-00001.parquet")
    (folder / "_rows").write_text(f"{rows} {eval_rows}")
    return folder


def register(folder: Path):
    """Declare the benchmark task: MNLI's format and labels, its rows in `folder` (loaded as a Hub dataset)."""
    from itsel_ray.tasks import get_task, register_task
    from itsel_ray.tasks.spec import TASKS, DataSource, Labels, TaskSpec

    if TASK not in TASKS:
        register_task(TaskSpec(
            name=TASK, category="classification", task_type="NLI", prefix="mnli",
            data=DataSource(kind="hub", path=str(folder)), columns=("premise", "hypothesis", "label"),
            formatter="fields", format_options={"fields": ("premise", "hypothesis"), "label": "label"},
            labels=Labels(("entailment", "neutral", "contradiction")), metrics=("accuracy",),
            select_metric="accuracy", train_size=392_702))
    return get_task(TASK)


def trial_config(cache: Path | None):
    from itsel_ray.trial_config import TrialConfig

    return TrialConfig.from_dict({"task": TASK, "seed": 0, "model": {"config": TINY, "tokenizer": str(TOKENIZER)},
                                  "data": {"cache_dir": str(cache) if cache else None}})


# ------------------------------------------------------------------------------------------------- children


def rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def old_prepare_data(cfg, task, bb):
    """The data path as it was before the prepared cache (lists of token-id lists, full Example objects)."""
    from itsel_ray.engine.labels import label_set

    d = cfg.data
    load = lambda split: task.load(split, label_style=d.label_style, data_dir=d.data_dir,  # noqa: E731
                                   eval_split=d.eval_split, heldout_size=d.heldout_size, seed=0)
    train_ex, eval_ex = load("train"), load("validation")
    enc = lambda ex: (  # noqa: E731
        list(bb.tokenizer([e.input for e in ex], truncation=True, max_length=task.max_source_length)["input_ids"]),
        list(bb.tokenizer([e.target for e in ex], truncation=True, max_length=task.max_target_length)["input_ids"]),
        [e.label for e in ex])
    return enc(train_ex), enc(eval_ex), eval_ex, label_set(task, bb.tokenizer, d.label_style, bb.device)


def child_trial(mode: str, folder: Path, cache: Path | None) -> dict:
    """One trial's data start-up in this (fresh) process."""
    import resource

    from itsel_ray.engine.batching import batch_indices, pad
    from itsel_ray.engine.data import make_batch, prepare_data
    from itsel_ray.engine.t5 import T5

    task, cfg = register(folder), trial_config(cache)
    bb = T5.backbone(cfg.model, "cpu")
    before = rss()
    t0 = time.perf_counter()
    if mode == "old":
        (inputs, targets, labels), _, _, _ = old_prepare_data(cfg, task, bb)
        idx = batch_indices(len(inputs), 32, seed=0, step=0)
        ids, _ = pad([inputs[i] for i in idx], 0)
        n = len(inputs)
        touch = lambda: sum(len(s) for s in inputs)  # noqa: E731
        source = "loaded in the trial (lists)"
    else:
        data = prepare_data(cfg, task, bb)
        idx = batch_indices(len(data.train), 32, seed=0, step=0)
        ids = make_batch(data.train, idx, bb.tokenizer.pad_token_id, bb.device).input_ids
        n = len(data.train)
        touch = lambda: sum(int(s.sum() > 0) for s in data.train.inputs)  # noqa: E731
        source = data.source
    start = time.perf_counter() - t0
    at_start = rss() - before
    touch()
    return {"mode": mode, "start_s": start, "data_rss": at_start, "data_rss_epoch": rss() - before,
            "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "examples": n,
            "batch": list(ids.shape), "source": source}


def child_prepare(folder: Path, cache: Path) -> dict:
    import resource

    from itsel_ray.tasks.mirror import Mirror
    from itsel_ray.data.prepare import PrepareSettings, format_report, prepare_task

    register(folder)
    cfg = trial_config(cache)
    t0 = time.perf_counter()
    report = prepare_task(TASK, PrepareSettings(cfg.model, cfg.data), cache_root=cache,
                          mirror=Mirror(tasks={TASK: str(folder)}))
    return {"seconds": time.perf_counter() - t0, "ok": report.ok, "report": format_report([report]),
            "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def run_child(*args: str, env: dict) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, env=env,
                         cwd=REPO)
    if out.returncode != 0:
        raise SystemExit(f"child {args} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=392_702)
    ap.add_argument("--eval-rows", type=int, default=9_832)
    ap.add_argument("--later", type=int, default=2, help="later trials per mode (median reported)")
    ap.add_argument("--modes", default="old,load,prepared")
    ap.add_argument("--work", type=Path, default=None, help="keep data and caches here (default: a temp folder)")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        kind, folder, cache = args.child[0], Path(args.child[1]), args.child[2]
        cache_path = None if cache == "-" else Path(cache)
        result = child_prepare(folder, cache_path) if kind == "prepare" else child_trial(kind, folder, cache_path)
        print(json.dumps(result))
        return
    if not TOKENIZER.is_dir():
        raise SystemExit(f"the T5 tokenizer is not at {TOKENIZER}")
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_data."))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    folder = generate(work, args.rows, args.eval_rows)
    print(f"split: {args.rows:,} train + {args.eval_rows:,} validation rows in {folder} "
          f"({sum(f.stat().st_size for f in folder.glob('*.parquet')) / 2**20:.0f} MiB parquet, "
          f"generated in {time.perf_counter() - t0:.0f} s)")
    hf_cache, cache = work / "hf_datasets", work / "prepared"
    env = {**os.environ, "HF_DATASETS_CACHE": str(hf_cache), "PYTHONPATH": str(REPO)}
    results: dict[str, dict[str, list[dict]]] = {}
    for mode in args.modes.split(","):
        if mode == "prepared":
            shutil.rmtree(cache, ignore_errors=True)
            prep = run_child("prepare", str(folder), str(cache), env=env)
            if not prep["ok"]:
                raise SystemExit(prep["report"])
            print(f"prepare_task: {prep['seconds']:.1f} s, peak RSS {prep['peak_rss'] / GIB:.2f} GiB (one process)")
            print(prep["report"])
        else:
            shutil.rmtree(hf_cache, ignore_errors=True)  # the first trial converts the parquet, as after a download
        target = str(cache) if mode == "prepared" else "-"
        runs = [run_child(mode, str(folder), target, env=env) for _ in range(1 + args.later)]
        results[mode] = {"first": runs[:1], "later": runs[1:]}
        for label, rs in results[mode].items():
            for r in rs:
                print(f"  {mode:8s} {label:5s} start {r['start_s']:6.2f} s  data RSS {r['data_rss'] / GIB:5.2f} GiB "
                      f"(after an epoch {r['data_rss_epoch'] / GIB:5.2f})  peak {r['peak_rss'] / GIB:5.2f} GiB  "
                      f"[{r['source'].split(' /')[0]}]", flush=True)
    report(results)
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


def report(results: dict) -> None:
    med = lambda rs, key: statistics.median(r[key] for r in rs)  # noqa: E731
    print("\nmedians (start = config -> first batch; data RSS after the first batch / after an epoch):")
    print(f"{'mode':10s} {'first start':>12s} {'later start':>12s} {'data RSS':>10s} {'epoch RSS':>10s} {'peak':>8s}")
    for mode, runs in results.items():
        later = runs["later"] or runs["first"]
        print(f"{mode:10s} {med(runs['first'], 'start_s'):10.2f} s {med(later, 'start_s'):10.2f} s "
              f"{med(later, 'data_rss') / GIB:6.2f} GiB {med(later, 'data_rss_epoch') / GIB:6.2f} GiB "
              f"{med(later, 'peak_rss') / GIB:4.2f} GiB")
    if "prepared" in results:
        p = results["prepared"]["later"] or results["prepared"]["first"]
        for base in ("old", "load"):
            if base in results:
                b = results[base]["later"] or results[base]["first"]
                first = med(results[base]["first"], "start_s") / med(results["prepared"]["first"], "start_s")
                print(f"{base} / prepared: later start {med(b, 'start_s') / med(p, 'start_s'):.0f}x, "
                      f"first start {first:.0f}x, "
                      f"data RSS {med(b, 'data_rss_epoch') / max(med(p, 'data_rss_epoch'), 1):.1f}x (after an epoch)")
        ok = med(p, "start_s") <= 5 and med(p, "data_rss_epoch") <= GIB
        print(f"target (after prepare: start <= 5 s, <= 1 GiB of data per worker): {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
