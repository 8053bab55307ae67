"""The unit of analysis work: one (target, seed, step) cell, scored by every selector that applies to it.

`evaluate_cell` is pure: it reads a `CellContext` (the study, the resolved selectors and metrics, precomputed text
embeddings and RANDOM draws) and returns rows. Run through the builtin `map` or through Ray
(`itsel_ray.sweep.parallel.ray_map`), the same function runs on the same cells, so both give identical numbers.

Cells with `step=None` hold the selectors that do not read prompts (RANDOM, SIZE, SEMB, PROBE, LOGME, ...); cells
with a step hold the prompt selectors, whose target prompt is the target's own tune run at that seed and step.

A NaN selector score (a source PROBE has no score for) is missing exactly like a NaN transfer score: the
`missing` policy decides, and it is never read as 0. A selector that raises on a cell leaves that cell `failed`
(unscored, its reason in the row's `error`); the other selectors and cells go on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, NamedTuple

import numpy as np

from itsel_ray.analysis.study import Study
from itsel_ray.metrics.ranking import MetricSpec, rank_from_scores
from itsel_ray.selection import PromptPair, SelectionInput, Selector, SelectorOptions

ALL = "all"


class Cell(NamedTuple):
    target: str
    seed: int
    step: int | None


@dataclass(frozen=True)
class Entry:
    """A selector as the analysis runs it: display label, registry entry, options."""

    label: str
    selector: Selector
    options: SelectorOptions

    @property
    def uses_prompts(self) -> bool:
        return "prompts" in self.selector.requirements(self.options)


@dataclass
class CellContext:
    """Everything a cell needs, built once on the driver (and shipped once to Ray workers).

    groups: group name -> source indices ranked in that group (ALL = every source).
    text_embeddings: selector name -> task -> [D]. draws: (target, seed) -> [S] seeded RANDOM draw.
    aliases: configured label -> the label it is evaluated under (SEMB-B and SEMB-R on one encoder -> SEMB).
    """

    study: Study
    entries: tuple[Entry, ...]
    metrics: tuple[MetricSpec, ...]
    groups: Mapping[str, tuple[int, ...]]
    relevance: str = "per_seed"
    missing: str = "skip"
    seed_average: bool = False
    text_embeddings: Mapping[str, Mapping[str, np.ndarray]] = field(default_factory=dict)
    draws: Mapping[tuple[str, int], np.ndarray] = field(default_factory=dict)
    source_cache: dict = field(default_factory=dict)
    aliases: Mapping[str, str] = field(default_factory=dict)

    def labels(self, configured: list[str]) -> list[str]:
        """The evaluated labels of `configured` labels (aliases resolved), in order, without repeats."""
        out = []
        for label in configured:
            label = self.aliases.get(label, label)
            if label not in out:
                out.append(label)
        return out


@dataclass
class CellResult:
    """rows: one dict per (selector, group) with the metric columns. scores: label -> [S] selector scores."""

    cell: Cell
    rows: list[dict]
    scores: dict[str, np.ndarray]


def selection_input(cell: Cell, ctx: CellContext) -> SelectionInput:
    study = ctx.study
    prompts = None
    if cell.step is not None:
        seeds = study.seeds if ctx.seed_average else (cell.seed,)
        stack = study.target_prompt_stack(cell.target, seeds, cell.step)
        if stack is None:
            raise ValueError(f"no target prompt for {cell.target} seeds {list(seeds)} at step {cell.step}")
        prompts = PromptPair(study.source_prompts, stack, source_cache=ctx.source_cache)
    texts = {}
    for name, table in ctx.text_embeddings.items():
        texts[name] = (table[cell.target], np.stack([table[s] for s in study.sources]))
    return SelectionInput(
        target=cell.target, sources=study.sources, prompts=prompts, sizes=study.sizes(),
        text_embeddings=texts, draw=ctx.draws.get((cell.target, cell.seed)),
        model_scores={name: study.model_row(name, cell.target) for name in study.model_scores},
    )


def score_group(entry: Entry, scores: np.ndarray, relevance: np.ndarray, names: tuple[str, ...],
                metrics: tuple[MetricSpec, ...], missing: str) -> dict:
    """Metric values of one selector on one group of sources (scores, relevance: [n] for that group).

    A source is present when it has both a transfer score and a finite selector score. status: "ok" (scored),
    "missing" (a missing score, under `missing: skip`) or "undefined" (some metric has no value for this ground
    truth, e.g. a best score <= 0; `undefined` names the metrics): only "ok" cells enter any mean or count as
    scored."""
    present = ~np.isnan(relevance) & np.isfinite(scores)
    row = {"n_sources": int(present.sum()), "partial": False, "status": "ok", "undefined": ""}
    if not present.all():
        if missing == "skip" or present.sum() < 1:
            row.update(status="missing", n_sources=int(present.sum()))
            row.update({m.label: math.nan for m in metrics})
            return row
        row["partial"] = True
        scores, relevance = scores[present], relevance[present]
        names = tuple(n for n, p in zip(names, present) if p)
    if entry.selector.uniform:
        row.update({m.label: m.expected(relevance) for m in metrics})
    else:
        order = rank_from_scores(scores, names)
        row.update({m.label: m.value(relevance, order) for m in metrics})
    undefined = [m.label for m in metrics if not math.isfinite(row[m.label])]
    if undefined:  # e.g. a best score of 0, or every source tied (rank correlations): not a scored cell
        row.update(status="undefined", undefined=" ".join(undefined))
    return row


def evaluate_cell(cell: Cell, ctx: CellContext) -> CellResult:
    """Score `cell` with every selector of its kind (prompt selectors iff cell.step is set), for every group."""
    study = ctx.study
    inp = selection_input(cell, ctx)
    relevance = study.relevance(cell.target, cell.seed, mode=ctx.relevance)
    rows, scores = [], {}
    for entry in ctx.entries:
        if entry.uses_prompts != (cell.step is not None):
            continue
        try:
            s, error = np.asarray(entry.selector.scores(inp, entry.options), dtype=np.float64), ""
        except Exception as err:  # one selector failing on one cell leaves that cell unscored, with the reason
            s, error = np.full(len(study.sources), np.nan), f"{type(err).__name__}: {err}"
        scores[entry.label] = s
        for group, idx in ctx.groups.items():
            idx = list(idx)
            names = tuple(study.sources[i] for i in idx)
            row = {"selector": entry.label, "target": cell.target, "seed": cell.seed, "step": cell.step,
                   "group": group}
            if error:
                row.update({"n_sources": 0, "partial": False, "status": "failed", "undefined": "",
                            **{m.label: math.nan for m in ctx.metrics}, "error": error})
            else:
                row.update(score_group(entry, s[idx], relevance[idx], names, ctx.metrics, ctx.missing))
            rows.append(row)
    return CellResult(cell=cell, rows=rows, scores=scores)


class CellRunner:
    """`runner(cell) -> CellResult` with the context bound: the one callable handed to a map function (builtin
    `map`, or a Ray map that ships the runner, context included, to the object store once).

    Each cell runs with `blas_threads` BLAS/OpenMP threads (default 1, what a Ray worker with one CPU gets). The
    products are small, so more threads gain little, and on a shared machine they spin and cost 2-3x; one
    thread everywhere also makes the floating-point reduction order, and so the numbers, the same in both paths.
    """

    def __init__(self, ctx: CellContext, *, blas_threads: int | None = 1):
        self.ctx = ctx
        self.blas_threads = blas_threads

    def __call__(self, cell: Cell) -> CellResult:
        if self.blas_threads is None:
            return evaluate_cell(cell, self.ctx)
        from threadpoolctl import threadpool_limits

        with threadpool_limits(self.blas_threads):
            return evaluate_cell(cell, self.ctx)
