"""python -m itsel_ray.rank: which source prompt should my target transfer from?

Ranks a library of source prompts for one target and prints the ranking with the selector's scores.

    python -m itsel_ray.rank --library prompts/ --target-prompt copa_step20000.safetensors
    python -m itsel_ray.rank --library runs/paper/results --target-prompt a.npy b.npy --selector max-topk
    python -m itsel_ray.rank --library prompts/ --target copa --selector semb-r

The library is a folder of <source>.safetensors / <source>.npy files, or a sweep's results folder (each source's
best prompt). Several --target-prompt files (e.g. seeds) average the similarity. Exit status 2 on bad input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from itsel_ray.analysis.config import SembConfig
from itsel_ray.analysis.inputs import RESULTS_STEM, InputError
from itsel_ray.artifacts import PromptFileError, load_prompt
from itsel_ray.config import ConfigError
from itsel_ray.metrics.ranking import rank_from_scores
from itsel_ray.registry import UnknownNameError
from itsel_ray.selection import MAX_DIRECTIONS, SELECTORS, PromptPair, SelectionInput, SelectorOptions, paper_draws

PROMPT_SUFFIXES = (".safetensors", ".npy")


def load_library(path: str | Path) -> tuple[tuple[str, ...], np.ndarray]:
    """(source names, [S, P, H] prompts) from a folder of prompt files or a sweep's results folder."""
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"library not found or not a folder: {path}")
    if any((path / f"{RESULTS_STEM}{s}").is_file() for s in (".parquet", ".csv")):
        from itsel_ray.analysis.from_sweep import source_library_from_sweep

        return source_library_from_sweep(path)
    files = sorted(p for p in path.iterdir() if p.suffix in PROMPT_SUFFIXES and p.is_file())
    if not files:
        raise InputError(f"{path}: no <source>.safetensors or <source>.npy files and no results table")
    names = [p.stem for p in files]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InputError(f"{path}: sources with both .safetensors and .npy files: {dupes}")
    prompts = [load_prompt(p) for p in files]
    shape = prompts[0].shape
    for p, arr in zip(files, prompts):
        if arr.shape != shape:
            raise PromptFileError(f"{p}: prompt shape {arr.shape} differs from {files[0].name}'s {shape}")
    return tuple(names), np.stack(prompts)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m itsel_ray.rank", description=__doc__.split("\n\n")[0])
    p.add_argument("--library", required=True, metavar="DIR", help="source prompts: a folder or a results folder")
    p.add_argument("--target-prompt", nargs="+", metavar="FILE", help="the target's prompt checkpoint(s)")
    p.add_argument("--target", metavar="TASK", help="the target task's name (SEMB reads its training texts)")
    p.add_argument("--selector", default="max", help=f"valid: {', '.join(SELECTORS)} (default: max)")
    p.add_argument("--max-direction", default="target_centric", help=f"valid: {', '.join(MAX_DIRECTIONS)}")
    p.add_argument("--normalize", choices=("on", "off"), default="on", help="L2-normalise prompt tokens first")
    p.add_argument("--topk", type=int, default=5, help="max-topk: tokens averaged")
    p.add_argument("--fusion", nargs="+", default=["max", "size"], help="fusion: the selectors combined")
    p.add_argument("--encoder", default=SembConfig().b_encoder, help="semb-*: the sentence encoder")
    p.add_argument("--max-examples", type=int, default=SembConfig().max_examples, help="semb-*: texts per task")
    p.add_argument("--random-seed", type=int, default=5, help="random-draw: the seed")
    p.add_argument("--top", type=int, help="print only the first N sources")
    return p


def selection_input(args, selector, opts, sources, prompts) -> SelectionInput:
    need = selector.requirements(opts)
    target = args.target or (Path(args.target_prompt[0]).stem if args.target_prompt else "target")
    pair = None
    if "prompts" in need:
        if not args.target_prompt:
            raise ValueError(f"selector {selector.name!r} compares prompts: give --target-prompt FILE")
        targets = [load_prompt(f) for f in args.target_prompt]
        shapes = {t.shape for t in targets}
        if len(shapes) > 1:
            raise PromptFileError(f"target prompts differ in shape: {sorted(shapes)}")
        pair = PromptPair(prompts, np.stack(targets))
    sizes = None
    if "sizes" in need:
        from itsel_ray.analysis.meta import resolve_metadata

        meta = resolve_metadata(sources)
        sizes = np.array([meta[s].train_size for s in sources], dtype=np.float64)
    texts = {}
    parts = selector.components(opts) or [selector]
    for part in parts:
        if "texts" in part.requirements(opts):
            if not args.target:
                raise ValueError(f"selector {part.name!r} embeds the tasks' texts: give --target TASK")
            from itsel_ray.analysis.text_embeddings import task_embeddings

            emb = task_embeddings((args.target, *sources), args.encoder, max_examples=args.max_examples)
            texts[part.name] = (emb[args.target], np.stack([emb[s] for s in sources]))
    draw = paper_draws([target], len(sources), seed=args.random_seed)[target] if "draw" in need else None
    return SelectionInput(target=target, sources=sources, prompts=pair, sizes=sizes, text_embeddings=texts,
                          draw=draw)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        selector = SELECTORS.get(args.selector)
        if selector.uniform:
            raise ValueError(f"{args.selector!r} ranks every ordering equally; use 'random-draw' for one seeded draw")
        opts = SelectorOptions(normalize=args.normalize == "on", max_direction=args.max_direction,
                               topk=args.topk, fusion=tuple(args.fusion))
        sources, prompts = load_library(args.library)
        inp = selection_input(args, selector, opts, sources, prompts)
        scores = selector.scores(inp, opts)
    except (ConfigError, UnknownNameError, InputError, PromptFileError, ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    order = rank_from_scores(scores, sources)
    if args.top:
        order = order[: args.top]
    print(f"ranking of {len(sources)} sources for {inp.target} by {selector.label} (higher score = better)")
    print(f"{'rank':>4}  {'source':<20}{'score':>12}")
    for rank, i in enumerate(order, start=1):
        print(f"{rank:>4}  {sources[i]:<20}{scores[i]:>12.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
