"""python -m itsel_ray.rank: which source prompt should my target transfer from?

Ranks a library of source prompts for one target and prints the ranking with the selector's scores.

    python -m itsel_ray.rank --library prompts/ --target-prompt copa_step20000.safetensors
    python -m itsel_ray.rank --library runs/paper/results --target-prompt a.npy b.npy --selector max-topk
    python -m itsel_ray.rank --library prompts/ --target copa --selector semb-r
    python -m itsel_ray.rank --library prompts/ --target syn_and01 --sweep smoke --selector probe
    python -m itsel_ray.rank --library prompts/ --selector size --size mytask=12000 other=800 --format json

The library is a folder of <source>.safetensors / <source>.npy files, or a sweep's results folder (each source's
best prompt). Several --target-prompt files (e.g. seeds) average the similarity. The model-backed selectors (PROBE,
LOGME and any other registered model-backed input) read every source prompt zero-shot through the frozen model of
--sweep (its engine and transfer-stage settings) on the target's training rows: PROBE scores the loss, LOGME the
features by LogME. SIZE reads the declared tasks' training-set sizes, or --size / --sizes for any others. Exit
status 2 on bad input.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
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
from itsel_ray.runs.storage import StorageError
from itsel_ray.selection import (
    MAX_DIRECTIONS,
    MODEL_INPUTS,
    SELECTORS,
    PromptPair,
    SelectionInput,
    Selector,
    SelectorOptions,
    paper_draws,
)

PROMPT_SUFFIXES = (".safetensors", ".npy")


def load_library(path: str | Path) -> tuple[tuple[str, ...], np.ndarray]:
    """(source names, [S, P, H] prompts) from a folder of prompt files or a sweep's results folder (either may be
    a store URI, read through a node-local copy)."""
    if "://" in str(path):
        path = _stored_library(str(path))
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
    prompts = [load_prompt(p, allow_zero=False) for p in files]
    shape = prompts[0].shape
    for p, arr in zip(files, prompts):
        if arr.shape != shape:
            raise PromptFileError(f"{p}: prompt shape {arr.shape} differs from {files[0].name}'s {shape}")
    return tuple(names), np.stack(prompts)


def _stored_library(uri: str) -> Path:
    """A node-local copy of a stored library: a results folder (with the prompts it names), or the prompt files."""
    from itsel_ray.runs.stored_results import local_files, local_results, stored_names

    names = stored_names(uri)
    if any(f"{RESULTS_STEM}{s}" in names for s in (".parquet", ".csv")):
        return local_results(uri)
    prompts = [n for n in names if Path(n).suffix in PROMPT_SUFFIXES]
    if not prompts:
        raise InputError(f"{uri}: no <source>.safetensors or <source>.npy files and no results table")
    return local_files(uri, prompts)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m itsel_ray.rank", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1] if "\n\n" in __doc__ else None)
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
    p.add_argument("--sweep", metavar="NAME|PATH",
                   help="probe, logme, ...: the sweep whose engine, frozen model and settings to use")
    p.add_argument("--model-examples", "--probe-examples", "--logme-examples", dest="model_examples",
                   type=_positive, metavar="N",
                   help="probe, logme, ...: target training rows read (default: the input's own, 256)")
    p.add_argument("--size", nargs="+", default=[], metavar="TASK=N",
                   help="size: training-set sizes of sources the project does not declare (or to override)")
    p.add_argument("--sizes", metavar="CSV", help="size: a CSV with columns task,size")
    p.add_argument("--include", action="append", default=[], metavar="PATH",
                   help="load a plugin (.py file, package folder, module name: your selectors) or a task file "
                        "(.yaml: your target task) first (repeatable)")
    p.add_argument("--top", type=_positive, metavar="N", help="print only the first N sources (N >= 1)")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table",
                   help="table (default; notes first), csv or json (notes on stderr)")
    return p


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def task_from_prompt_path(path: str | Path) -> str | None:
    """The task of a prompt inside a trial folder (`.../<task>/seed=<s>/...`), else None."""
    parts = Path(path).parts
    for i, part in enumerate(parts[1:], start=1):
        if part.startswith("seed="):
            return parts[i - 1].split("__from_")[0]
    return None


def target_name(args) -> str | None:
    """The target task: --target, else the task of the trial folder the target prompt(s) come from."""
    if args.target:
        return args.target
    found = {task_from_prompt_path(p) for p in args.target_prompt or ()}
    return found.pop() if len(found) == 1 else None


def _target_prompts(args, selector: Selector, opts, sources, prompts, notes) -> PromptPair:
    if not args.target_prompt:
        raise ValueError(f"selector {selector.name!r} compares prompts: give --target-prompt FILE")
    targets = [load_prompt(_local(f), allow_zero=False) for f in args.target_prompt]
    shapes = {t.shape for t in targets}
    if len(shapes) > 1:
        raise PromptFileError(f"target prompts differ in shape: {sorted(shapes)}")
    return PromptPair(prompts, np.stack(targets))


def _local(path: str) -> str | Path:
    """A prompt file to read: a local path as it is, a store URI as a node-local copy."""
    if "://" not in str(path):
        return path
    from itsel_ray.runs.stored_results import local_file

    return local_file(str(path))


def _size_value(text: str, where: str) -> int:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0 and value == int(value)):
        raise InputError(f"{where}: size {text!r} is not a whole number >= 0")
    return int(value)


def given_sizes(args) -> dict[str, int]:
    """task -> training-set size from --sizes CSV (columns task,size) and --size TASK=N (which wins)."""
    out: dict[str, int] = {}
    if args.sizes:
        path = Path(args.sizes)
        try:
            rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
        except OSError as err:
            raise InputError(f"--sizes {path}: cannot read ({err})") from None
        if not rows or not {"task", "size"} <= set(rows[0]):
            raise InputError(f"--sizes {path}: expected a header with columns task,size")
        for i, row in enumerate(rows, start=2):
            out[str(row["task"]).strip()] = _size_value(str(row["size"]).strip(), f"{path}, line {i}")
    for item in args.size:
        task, sep, value = item.partition("=")
        if not sep or not task.strip():
            raise InputError(f"--size {item!r}: expected TASK=N, e.g. mnli=392702")
        out[task.strip()] = _size_value(value.strip(), f"--size {item}")
    return out


def _sizes(args, selector, opts, sources, prompts, notes) -> np.ndarray:
    from itsel_ray.analysis.meta import resolve_metadata

    sizes = given_sizes(args)
    unknown = []
    for source in (s for s in sources if s not in sizes):
        try:
            sizes[source] = resolve_metadata([source])[source].train_size
        except ValueError:
            unknown.append(source)
    if unknown:
        raise InputError(f"no training-set size for source(s) {unknown}: the project does not declare them; give "
                         "--size TASK=N for each, or --sizes FILE.csv (columns task,size)")
    return np.array([sizes[s] for s in sources], dtype=np.float64)


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
    target = target_name(args) or "target"
    return paper_draws([target], len(sources), seed=args.random_seed)[target]


def _model_scores(args, selector, opts, sources, prompts, notes) -> dict[str, np.ndarray]:
    """Model-backed input -> [S] scores of every source prompt on the target's training rows, for each input the
    selector needs, through the engine, frozen model and transfer-stage settings of --sweep at its first target
    seed."""
    from itsel_ray.engine import TrialError, get_engine
    from itsel_ray.runs.sweep_file import load_sweep

    out = {}
    for name in sorted(selector.requirements(opts) & set(MODEL_INPUTS.names())):
        spec = MODEL_INPUTS.get(name)
        if not (args.target and args.sweep):
            raise ValueError(f"{name} reads the source prompts through a sweep's frozen model ({spec.description}):"
                             " give --target TASK and --sweep NAME|PATH")
        sweep = load_sweep(args.sweep)
        cfg = sweep.trial_config("transfer", task=args.target, seed=sweep.grid.target_seeds[0])
        try:
            readout = get_engine(sweep.spec.engine).readout(cfg, dict(zip(sources, prompts)),
                                                            max_examples=args.model_examples or spec.examples)
            scores = spec.scores(readout)
        except TrialError as err:  # e.g. a task the configured loss cannot train: bad input, not a crash
            raise ValueError(f"{name} on {args.target}: {err}") from None
        notes.append(f"{name}: {readout.rows} training rows of {args.target}, loss {cfg.train.loss!r}, model of "
                     f"sweep {args.sweep}")
        out[name] = np.array([scores.get(s, np.nan) for s in sources], dtype=np.float64)
    return out


# requirement -> (the SelectionInput field it fills, its builder from the command line); only the requirements of
# the chosen selector are built, so e.g. MAX never loads a model and PROBE never reads --target-prompt. The
# model-backed inputs (MODEL_INPUTS) all go through `_model_scores` into SelectionInput.model_scores.
INPUT_BUILDERS: dict[str, tuple[str, Callable]] = {
    "prompts": ("prompts", _target_prompts),
    "sizes": ("sizes", _sizes),
    "texts": ("text_embeddings", _texts),
    "draw": ("draw", _draw),
}


def selection_input(args, selector: Selector, opts: SelectorOptions, sources, prompts,
                    notes: list[str] | None = None) -> SelectionInput:
    """The SelectionInput `selector` needs, built from the command line; appends what it did to `notes`."""
    notes = notes if notes is not None else []
    fields = {}
    for requirement in sorted(selector.requirements(opts)):
        if requirement in INPUT_BUILDERS:
            name, build = INPUT_BUILDERS[requirement]
            fields[name] = build(args, selector, opts, sources, prompts, notes)
    model_scores = _model_scores(args, selector, opts, sources, prompts, notes)
    return SelectionInput(target=target_name(args) or "target", sources=sources, model_scores=model_scores, **fields)


def score_decimals(scores: np.ndarray) -> int:
    """Decimals that show every score sensibly: none for whole numbers (SIZE), else enough to tell neighbouring
    distinct scores apart (at least 3, at most 6)."""
    finite = scores[np.isfinite(scores)]
    if finite.size == 0 or np.all(finite == np.round(finite)):
        return 0
    gaps = np.diff(np.unique(finite))
    gap = float(gaps.min()) if gaps.size else abs(float(finite[0])) or 1.0
    return int(min(6, max(3, math.ceil(-math.log10(gap)) + 1)))


def render(rows: list[tuple[int, str, float]], *, target: str | None, label: str, n_sources: int, fmt: str,
           notes: list[str]) -> tuple[str, str]:
    """(stdout, stderr) text of the ranking in `fmt` (table: notes and a header naming the target task)."""
    named = target or "an unnamed target (give --target TASK to name it)"
    if fmt == "json":
        doc = {"target": target, "selector": label, "sources": n_sources, "notes": notes,
               "ranking": [{"rank": r, "source": s, "score": v} for r, s, v in rows]}
        return json.dumps(doc, indent=2) + "\n", "".join(f"note: {n}\n" for n in notes)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["rank", "source", "score"])
        writer.writerows([r, s, repr(v)] for r, s, v in rows)
        return buf.getvalue(), "".join(f"note: {n}\n" for n in notes)
    digits = score_decimals(np.array([v for _, _, v in rows]))
    width = max([20, *(len(s) + 2 for _, s, _ in rows)])
    lines = [f"note: {n}" for n in notes]
    lines += [f"ranking of {n_sources} sources for {named} by {label} (higher score = better)",
              f"{'rank':>4}  {'source':<{width}}{'score':>14}"]
    lines += [f"{r:>4}  {s:<{width}}{v:>14.{digits}f}" for r, s, v in rows]
    return "\n".join(lines) + "\n", ""


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        from itsel_ray.plugins import load_plugins, resolve, split_includes

        load_plugins(*split_includes(resolve(args.include, Path.cwd())))
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
    except (ConfigError, UnknownNameError, InputError, PromptFileError, ValueError, FileNotFoundError,
            StorageError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    rows = [(rank, sources[i], float(scores[i])) for rank, i in enumerate(order[: args.top], start=1)]
    out, err = render(rows, target=target_name(args), label=selector.label, n_sources=len(sources),
                      fmt=args.format, notes=notes)
    sys.stdout.write(out)
    sys.stderr.write(err)
    return 0


if __name__ == "__main__":
    sys.exit(main())
