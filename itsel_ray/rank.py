"""python -m itsel_ray.rank: which source prompt should my target transfer from?

Ranks a library of source prompts for one target and prints the ranking with the selector's scores.

    python -m itsel_ray.rank --library prompts/ --target-prompt copa_step20000.safetensors
    python -m itsel_ray.rank --library runs/paper/results --target-prompt a.npy b.npy --selector max-topk
    python -m itsel_ray.rank --library prompts/ --target copa --selector semb-r
    python -m itsel_ray.rank --library prompts/ --target syn_and01 --sweep smoke --selector probe

The library is a folder of <source>.safetensors / <source>.npy files, or a sweep's results folder (each source's
best prompt). Several --target-prompt files (e.g. seeds) average the similarity. PROBE runs every source prompt
zero-shot through the frozen model of --sweep (its transfer-stage settings) on the target's training rows.
Exit status 2 on bad input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from itsel_ray.analysis.analysis_file import SembConfig
from itsel_ray.analysis.inputs import RESULTS_STEM, InputError
from itsel_ray.artifacts import PromptFileError, load_prompt
from itsel_ray.schema import ConfigError
from itsel_ray.metrics.ranking import rank_from_scores
from itsel_ray.registry import UnknownNameError
from itsel_ray.selection import (
    MAX_DIRECTIONS,
    SELECTORS,
    PromptPair,
    SelectionInput,
    Selector,
    SelectorOptions,
    paper_draws,
)

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
    p.add_argument("--target", metavar="TASK",
                   help="the target task's name (SEMB reads its training texts, PROBE its training rows)")
    p.add_argument("--selector", default="max", help=f"valid: {', '.join(SELECTORS)} (default: max)")
    p.add_argument("--max-direction", default="target_centric", help=f"valid: {', '.join(MAX_DIRECTIONS)}")
    p.add_argument("--normalize", choices=("on", "off"), default="on", help="L2-normalise prompt tokens first")
    p.add_argument("--topk", type=int, default=5, help="max-topk: tokens averaged")
    p.add_argument("--fusion", nargs="+", default=["max", "size"], help="fusion: the selectors combined")
    p.add_argument("--encoder", default=SembConfig().b_encoder, help="semb-*: the sentence encoder")
    p.add_argument("--max-examples", type=int, default=SembConfig().max_examples, help="semb-*: texts per task")
    p.add_argument("--random-seed", type=int, default=5, help="random-draw: the seed")
    p.add_argument("--sweep", metavar="NAME|PATH", help="probe: the sweep whose frozen model and settings to use")
    p.add_argument("--probe-examples", type=int, default=256, help="probe: target training rows scored")
    p.add_argument("--top", type=int, help="print only the first N sources")
    return p


def target_name(args) -> str:
    return args.target or (Path(args.target_prompt[0]).stem if args.target_prompt else "target")


def _target_prompts(args, selector: Selector, opts, sources, prompts, notes) -> PromptPair:
    if not args.target_prompt:
        raise ValueError(f"selector {selector.name!r} compares prompts: give --target-prompt FILE")
    targets = [load_prompt(f) for f in args.target_prompt]
    shapes = {t.shape for t in targets}
    if len(shapes) > 1:
        raise PromptFileError(f"target prompts differ in shape: {sorted(shapes)}")
    return PromptPair(prompts, np.stack(targets))


def _sizes(args, selector, opts, sources, prompts, notes) -> np.ndarray:
    from itsel_ray.analysis.meta import resolve_metadata

    meta = resolve_metadata(sources)
    return np.array([meta[s].train_size for s in sources], dtype=np.float64)


def _texts(args, selector: Selector, opts, sources, prompts, notes) -> dict:
    from itsel_ray.analysis.text_embeddings import task_embeddings

    texts = {}
    for part in selector.components(opts) or [selector]:
        if "texts" in part.requirements(opts):
            if not args.target:
                raise ValueError(f"selector {part.name!r} embeds the tasks' texts: give --target TASK")
            emb = task_embeddings((args.target, *sources), args.encoder, max_examples=args.max_examples)
            texts[part.name] = (emb[args.target], np.stack([emb[s] for s in sources]))
    return texts


def _draw(args, selector, opts, sources, prompts, notes) -> np.ndarray:
    target = target_name(args)
    return paper_draws([target], len(sources), seed=args.random_seed)[target]


def _probe(args, selector, opts, sources, prompts, notes) -> np.ndarray:
    if not (args.target and args.sweep):
        raise ValueError("probe scores the source prompts through a sweep's frozen model on the target's training "
                         "rows: give --target TASK and --sweep NAME|PATH")
    from itsel_ray.engine.zero_shot import probe_prompts
    from itsel_ray.engine.trial import TrialError
    from itsel_ray.runs.sweep_file import load_sweep

    sweep = load_sweep(args.sweep)
    cfg = sweep.trial_config("transfer", task=args.target, seed=sweep.grid.target_seeds[0])
    try:
        scores, n = probe_prompts(cfg, dict(zip(sources, prompts)), max_examples=args.probe_examples)
    except TrialError as err:  # e.g. a task the configured loss cannot train: bad input, not a crash
        raise ValueError(f"probe on {args.target}: {err}") from None
    notes.append(f"probe: {n} training rows of {args.target}, loss {cfg.train.loss!r}, model of sweep {args.sweep}")
    return np.array([scores[s] for s in sources], dtype=np.float64)


# requirement -> (the SelectionInput field it fills, its builder from the command line); only the requirements of
# the chosen selector are built, so e.g. MAX never loads a model and PROBE never reads --target-prompt.
INPUT_BUILDERS: dict[str, tuple[str, Callable]] = {
    "prompts": ("prompts", _target_prompts),
    "sizes": ("sizes", _sizes),
    "texts": ("text_embeddings", _texts),
    "draw": ("draw", _draw),
    "probe": ("probe", _probe),
}


def selection_input(args, selector: Selector, opts: SelectorOptions, sources, prompts,
                    notes: list[str] | None = None) -> SelectionInput:
    """The SelectionInput `selector` needs, built from the command line; appends what it did to `notes`."""
    notes = notes if notes is not None else []
    fields = {}
    for requirement in sorted(selector.requirements(opts)):
        name, build = INPUT_BUILDERS[requirement]
        fields[name] = build(args, selector, opts, sources, prompts, notes)
    return SelectionInput(target=target_name(args), sources=sources, **fields)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        selector = SELECTORS.get(args.selector)
        if selector.uniform:
            raise ValueError(f"{args.selector!r} ranks every ordering equally; use 'random-draw' for one seeded draw")
        opts = SelectorOptions(normalize=args.normalize == "on", max_direction=args.max_direction,
                               topk=args.topk, fusion=tuple(args.fusion))
        sources, prompts = load_library(args.library)
        notes: list[str] = []
        inp = selection_input(args, selector, opts, sources, prompts, notes)
        scores = selector.scores(inp, opts)
        order = rank_from_scores(scores, sources)
    except (ConfigError, UnknownNameError, InputError, PromptFileError, ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.top:
        order = order[: args.top]
    for note in notes:
        print(f"note: {note}")
    print(f"ranking of {len(sources)} sources for {inp.target} by {selector.label} (higher score = better)")
    print(f"{'rank':>4}  {'source':<20}{'score':>12}")
    for rank, i in enumerate(order, start=1):
        print(f"{rank:>4}  {sources[i]:<20}{scores[i]:>12.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
