"""`run_analysis`: plan the cells, map the pure cell function over them, and write the tables, figures and report.

The map function is the only thing that changes between a plain run (`map`) and a Ray run
(`itsel_ray.sweep.parallel.ray_map`); the cells and the function are the same, so the numbers are identical.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Mapping

import dataclasses

import numpy as np
import pandas as pd

from itsel_ray.analysis.cells import ALL, Cell, CellContext, CellResult, CellRunner, Entry
from itsel_ray.analysis.analysis_file import AnalysisConfig
from itsel_ray.analysis.output_dir import check_replaceable, staged_folder
from itsel_ray.analysis.report import AnalysisResult, write_outputs
from itsel_ray.analysis.study import Study
from itsel_ray.analysis.text_embeddings import LoadTexts, task_embeddings
from itsel_ray.metrics.ranking import rank_from_scores
from itsel_ray.selection import MODEL_INPUTS, paper_draws
from itsel_ray.selection.semb import PAPER_ENCODERS

MapFn = Callable[[Callable, Iterable], Iterable]

# Selector requirements a study may lack: requirement -> (does the study provide it?, why not). A configured
# selector that needs a missing one is skipped with that reason instead of failing every cell.
STUDY_INPUTS: dict[str, tuple[Callable[[Study], bool], str]] = {
    "prompts": (lambda s: s.has_prompts, "the study has no prompts"),
}


def lacking_inputs(study: Study, needs: Iterable[str]) -> list[str]:
    """Why `study` cannot provide each of `needs` (empty: it provides them all)."""
    out = [why for req, (has, why) in STUDY_INPUTS.items() if req in needs and not has(study)]
    out += [f"the study has no {name} scores (no {name}.parquet|csv in the results folder; the sweep's analyze "
            "stage writes one through an engine with a model)"
            for name in MODEL_INPUTS.names() if name in needs and name not in study.model_scores]
    return out


def semb_encoders(cfg: AnalysisConfig) -> dict[str, str]:
    """selector name -> the encoder configured for it."""
    return {"semb-b": cfg.semb.b_encoder, "semb-r": cfg.semb.r_encoder}


def _text_tables(study: Study, cfg: AnalysisConfig, entries: list[Entry], given, load_texts,
                 messages: list[str]) -> dict[str, Mapping[str, np.ndarray]]:
    """selector name -> task -> [D] for every SEMB entry, from `given` or computed (skipped on failure)."""
    tasks = (*study.sources, *study.targets)
    encoders = semb_encoders(cfg)
    out = {}
    for name in sorted({part for e in entries for part in _text_parts(e)}):
        if given is not None and name in given:
            missing = [t for t in tasks if t not in given[name]]
            if missing:
                raise ValueError(f"text embeddings for {name} lack tasks {missing}")
            out[name] = given[name]
            continue
        try:
            out[name] = task_embeddings(tasks, encoders[name], max_examples=cfg.semb.max_examples,
                                        cache_dir=cfg.semb.cache_dir, load_texts=load_texts,
                                        batch_size=cfg.semb.batch_size)
        except Exception as err:  # no tasks package, no data, no encoder: skip SEMB, say why
            messages.append(f"skipped {name}: could not embed the task texts ({type(err).__name__}: {err})")
    return out


def merge_same_encoder(entries: list[Entry], cfg: AnalysisConfig, messages: list[str],
                       given: Mapping[str, Mapping[str, np.ndarray]] | None = None) -> tuple[list[Entry], dict]:
    """SEMB-B and SEMB-R resolved to one encoder are one selector: one entry labelled SEMB (and a note), not two
    identical rows under the paper's two encoder names (unless the embeddings handed in for the two differ).
    Returns (entries, {old label: new label})."""
    encoders = semb_encoders(cfg)
    semb = [e for e in entries if e.selector.name in encoders and e.label == e.selector.label]
    if len(semb) < 2 or len({encoders[e.selector.name] for e in semb}) > 1:
        return entries, {}
    names = [e.selector.name for e in semb]
    if given is not None and all(n in given for n in names) and any(
            not np.array_equal(given[names[0]][t], given[names[1]][t]) for t in given[names[0]]):
        return entries, {}
    keep = dataclasses.replace(semb[0], label="SEMB")
    messages.append(f"SEMB-B and SEMB-R both use the encoder {encoders[semb[0].selector.name]!r}, so they are one "
                    f"selector, SEMB (the paper's: {PAPER_ENCODERS['semb-b']} and {PAPER_ENCODERS['semb-r']}; set "
                    "semb.b_encoder and semb.r_encoder to compare two)")
    out = [keep if e is semb[0] else e for e in entries if e is not semb[1]]
    return out, {e.label: "SEMB" for e in semb}


def scale_warnings(study: Study, cfg: AnalysisConfig) -> list[str]:
    """A warning when every transfer score lies in [0, 1] under the exp2_raw gain, which assumes 0-100 scores."""
    finite = study.transfer[np.isfinite(study.transfer)]
    if cfg.ranking.gain != "exp2_raw" or not finite.size or finite.min() < 0 or finite.max() > 1:
        return []
    return [f"warning: every transfer score lies in [0, 1] ({study.origin}); the nDCG gain 2^score - 1 assumes "
            "scores on a 0-100 scale, and on a 0-1 scale it is nearly linear, so nDCG is close to 1 for any order. "
            "Multiply the scores by 100, or set ranking.gain (e.g. minmax)"]


def _plan_steps(study: Study, cfg: AnalysisConfig) -> tuple[tuple[int, ...], int | None]:
    available = study.steps
    steps = tuple(cfg.steps) if cfg.steps is not None else available
    unknown = [s for s in steps if s not in available]
    if unknown:
        raise ValueError(f"steps {unknown} have no target prompts; saved steps: {list(available)}")
    headline = cfg.headline_step if cfg.headline_step is not None else (max(steps) if steps else None)
    if steps and headline not in steps:
        raise ValueError(f"headline_step {headline} is not an evaluated step; evaluated: {list(steps)}")
    return steps, headline


def build_context(study: Study, cfg: AnalysisConfig, *, text_embeddings=None, load_texts: LoadTexts | None = None,
                  messages: list[str] | None = None) -> tuple[CellContext, list[Cell], int | None]:
    """The shared context, the cells to evaluate, and the headline step. Appends to `messages` what was skipped."""
    messages = messages if messages is not None else []
    entries = []
    for label, selector, opts in cfg.resolved_selectors():
        lacking = lacking_inputs(study, selector.requirements(opts))
        if lacking:
            messages.append(f"skipped {label}: {'; '.join(lacking)} ({study.origin})")
            continue
        entries.append(Entry(label, selector, opts))
    messages.extend(scale_warnings(study, cfg))
    entries, aliases = merge_same_encoder(entries, cfg, messages, text_embeddings)
    texts = _text_tables(study, cfg, entries, text_embeddings, load_texts, messages)
    entries = [e for e in entries if "texts" not in e.selector.requirements(e.options)
               or all(p in texts for p in _text_parts(e))]
    groups = {}
    for group in cfg.groups:
        idx = tuple(i for i, s in enumerate(study.sources) if study.category(s) == group)
        if not idx:
            messages.append(f"group {group}: no source of this category; left out of Table 3")
            continue
        groups[group] = idx
    groups[ALL] = tuple(range(len(study.sources)))

    steps, headline = _plan_steps(study, cfg) if study.has_prompts else ((), None)
    base_cells = [Cell(t, r, None) for t in study.targets for r in study.seeds]
    draws = paper_draws([(c.target, c.seed) for c in base_cells], len(study.sources), seed=cfg.random_seed)
    cells = list(base_cells) if any(not e.uses_prompts for e in entries) else []
    if any(e.uses_prompts for e in entries):
        seeds_needed = lambda r: study.seeds if cfg.seed_average else (r,)  # noqa: E731
        lacking = 0
        for step in steps:
            for t in study.targets:
                for r in study.seeds:
                    if all((t, s, step) in study.target_prompts for s in seeds_needed(r)):
                        cells.append(Cell(t, r, step))
                    else:
                        lacking += 1
        if lacking:
            messages.append(f"{lacking} (target, seed, step) cells have no target prompt; prompt selectors skip them")
    ctx = CellContext(
        study=study, entries=tuple(entries), metrics=tuple(cfg.metric_specs()), groups=groups,
        relevance=cfg.ranking.relevance, missing=cfg.ranking.missing, seed_average=cfg.seed_average,
        text_embeddings=texts, draws=draws, aliases=aliases,
    )
    return ctx, cells, headline


def _text_parts(entry: Entry) -> list[str]:
    parts = entry.selector.components(entry.options) or [entry.selector]
    return [p.name for p in parts if "texts" in p.requirements(entry.options)]


def collect(results: Iterable[CellResult], study: Study) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """(tidy metric rows, per-source scores, (label, target, seed, step) -> [S] scores).

    A source without a finite score (NaN) keeps a NaN score and no rank; the others are ranked among themselves."""
    rows, score_rows, lookup = [], [], {}
    for res in results:
        rows.extend(res.rows)
        for label, s in res.scores.items():
            lookup[(label, *res.cell)] = s
            rank = _ranks(s, study.sources)
            for i, source in enumerate(study.sources):
                score_rows.append({"selector": label, "target": res.cell.target, "seed": res.cell.seed,
                                   "step": res.cell.step, "source": source, "score": float(s[i]),
                                   "rank": rank[i]})
    tidy = pd.DataFrame(rows)
    if len(tidy):
        tidy["step"] = tidy["step"].astype("Int64")
    scores = pd.DataFrame(score_rows)
    if len(scores):
        scores["step"] = scores["step"].astype("Int64")
        scores["rank"] = scores["rank"].astype("Int64")
    return tidy, scores, lookup


def _ranks(scores: np.ndarray, names: tuple[str, ...]) -> list[int | None]:
    """1-based rank of each source under the tie rule, among the finite scores; None for the others."""
    finite = np.flatnonzero(np.isfinite(scores))
    out: list[int | None] = [None] * len(scores)
    order = rank_from_scores(scores[finite], tuple(names[i] for i in finite))
    for rank, j in enumerate(order, start=1):
        out[int(finite[j])] = rank
    return out


def run_analysis(study: Study, cfg: AnalysisConfig, out_dir: str | Path, map_fn: MapFn = map, *,
                 text_embeddings: Mapping[str, Mapping[str, np.ndarray]] | None = None,
                 load_texts: LoadTexts | None = None) -> AnalysisResult:
    """Evaluate every selector on every (target, seed[, step]) cell of `study` and write the report.

    This is the analysis stage's entry point (`python -m itsel_ray.sweep analyze` calls it with a Ray map;
    `python -m itsel_ray.analyze` with the builtin map).

    Args:
        study: the transfer study (`study_from_sweep` / `study_from_csv`).
        cfg: the analysis definition (`load_analysis_config("analysis/paper.yaml")`).
        out_dir: where tables (CSV + Markdown), figures (PNG) and report.md go; the folder is replaced whole once
            every output is written (`output_dir.py`), so a failed run leaves the previous outputs as they were.
        map_fn: `map_fn(fn, cells) -> results in order`; builtin `map` or `itsel_ray.sweep.parallel.ray_map`.
        text_embeddings: SEMB selector name -> task -> [D]; computed (and cached) from the tasks' texts if None.
        load_texts: (task, cap) -> texts, replacing the tasks package when SEMB embeddings are computed.
    Returns:
        AnalysisResult (report path, tidy metrics, summary, files, messages).
    """
    out_dir = check_replaceable(out_dir)  # refused before any work
    messages = list(study.notes)
    ctx, cells, headline = build_context(study, cfg, text_embeddings=text_embeddings, load_texts=load_texts,
                                         messages=messages)
    results = list(map_fn(CellRunner(ctx), cells))
    tidy, scores, lookup = collect(results, study)
    with staged_folder(out_dir) as stage:  # the old outputs stay whole until the new ones are
        result = write_outputs(study, cfg, ctx, tidy, scores, lookup, headline, stage, messages)
    return result.moved(stage, out_dir)
