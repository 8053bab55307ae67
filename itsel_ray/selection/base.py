"""What a selector is, what it may read, and the registry every selector is declared in.

A selector maps (a target task, the candidate source tasks) to one score per source, higher = predicted more
beneficial. It reads only the `SelectionInput` it is handed and its `SelectorOptions`, so it is a pure function
that runs the same in a Ray worker as in the driver.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable, Mapping

import numpy as np

from itsel_ray.registry import Registry, UnknownNameError
from itsel_ray.selection.model_inputs import MODEL_INPUTS

MAX_DIRECTIONS = ("target_centric", "source_centric", "symmetric")
# What every study can provide; a selector may also need any registered model-backed input (MODEL_INPUTS).
STUDY_REQUIREMENTS = ("prompts", "sizes", "texts", "draw")


def requirement_names() -> list[str]:
    return [*STUDY_REQUIREMENTS, *MODEL_INPUTS.names()]


@dataclass(frozen=True)
class SelectorOptions:
    """Knobs of the selectors; defaults follow DESIGN.md.

    normalize: L2-normalise each prompt token before FEATURE / UNIGRAM (the authors' code). Token-pair
        selectors (MAX, MAX-TOPK, MMD) compare tokens by cosine, which does not depend on it.
    max_direction: `target_centric` (eq. 4: mean over target tokens of the max over source tokens),
        `source_centric` (the authors' code) or `symmetric` (the mean of both).
    topk: how many best-matching tokens MAX-TOPK averages.
    mmd_gamma: RBF bandwidth of MMD on unit tokens, k(a, b) = exp(-gamma * |a - b|^2).
    fusion: the selectors FUSION combines; fusion_k: the reciprocal-rank-fusion constant.
    """

    normalize: bool = True
    max_direction: str = "target_centric"
    topk: int = 5
    mmd_gamma: float = 1.0
    fusion: tuple[str, ...] = ("max", "size")
    fusion_k: int = 60

    def __post_init__(self):
        if self.max_direction not in MAX_DIRECTIONS:
            raise UnknownNameError("max_direction", self.max_direction, list(MAX_DIRECTIONS))
        if self.topk < 1:
            raise ValueError(f"topk must be >= 1, got {self.topk}")
        if not self.mmd_gamma > 0:
            raise ValueError(f"mmd_gamma must be > 0, got {self.mmd_gamma}")
        if len(self.fusion) < 2:
            raise ValueError(f"fusion needs at least two selectors, got {list(self.fusion)}")


def unit_tokens(prompts: np.ndarray) -> np.ndarray:
    """[..., P, H] -> each token scaled to unit L2 norm (an all-zero token stays zero)."""
    prompts = np.asarray(prompts, dtype=np.float64)
    norm = np.linalg.norm(prompts, axis=-1, keepdims=True)
    return prompts / np.where(norm > 0, norm, 1.0)


class PromptPair:
    """The source prompts [S, P, H] and the target's prompt(s) [R, P, H] of one cell, with the derived arrays the
    prompt selectors share (computed once per cell). R > 1 holds the target prompts of several seeds; selectors
    then average their similarity over them."""

    def __init__(self, sources: np.ndarray, targets: np.ndarray, *, source_cache: dict | None = None):
        sources = np.asarray(sources, dtype=np.float32)
        targets = np.asarray(targets, dtype=np.float32)
        if targets.ndim == 2:
            targets = targets[None]
        if sources.ndim != 3 or targets.ndim != 3:
            raise ValueError(f"prompts must be [S, P, H] and [R, P, H], got {sources.shape} and {targets.shape}")
        if sources.shape[-1] != targets.shape[-1]:
            raise ValueError(
                f"source prompts have d_model {sources.shape[-1]} but the target prompt has {targets.shape[-1]}"
            )
        self.sources, self.targets = sources, targets
        # Source-only arrays are the same in every cell of a study; a caller that keeps one dict per source set
        # (the analysis does) computes them once instead of once per cell.
        self.source_cache = {} if source_cache is None else source_cache

    def tokens(self, normalize: bool) -> tuple[np.ndarray, np.ndarray]:
        """(sources [S, P, H], targets [R, Q, H]) in float64, unit tokens when `normalize`."""
        return (self.unit_sources, self.unit_targets) if normalize else (
            self.sources.astype(np.float64), self.targets.astype(np.float64))

    def cached(self, key: str, make: Callable[[], np.ndarray]) -> np.ndarray:
        """A source-only array from the shared cache, made once."""
        if key not in self.source_cache:
            self.source_cache[key] = make()
        return self.source_cache[key]

    @property
    def unit_sources(self) -> np.ndarray:
        return self.cached("unit", lambda: unit_tokens(self.sources))

    @cached_property
    def unit_targets(self) -> np.ndarray:
        return unit_tokens(self.targets)

    @cached_property
    def token_cos(self) -> np.ndarray:
        """[R, S, P, Q]: cosine of every (source token i, target token j) pair."""
        s, t = self.unit_sources, self.unit_targets
        (n_s, p, h), (n_r, q, _) = s.shape, t.shape
        # One [S*P, H] x [H, R*Q] matrix product (BLAS), several times faster than a batched einsum.
        cos = s.reshape(n_s * p, h) @ t.reshape(n_r * q, h).T
        return np.ascontiguousarray(cos.reshape(n_s, p, n_r, q).transpose(2, 0, 1, 3))


@dataclass(frozen=True)
class SelectionInput:
    """Everything a selector may read for one (target, seed, step) cell; unused parts may be None.

    sources: [S] names. prompts: the cell's PromptPair. sizes: [S] training-set sizes. text_embeddings:
    selector name -> (target [D], sources [S, D]) averaged sentence embeddings. draw: [S] the cell's seeded RANDOM
    draw (a permutation of 1..S). model_scores: model-backed input name (MODEL_INPUTS: probe, logme, ...) -> [S]
    each source prompt's score on the target (NaN where the study has none for that source).
    """

    target: str
    sources: tuple[str, ...]
    prompts: PromptPair | None = None
    sizes: np.ndarray | None = None
    text_embeddings: Mapping[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    draw: np.ndarray | None = None
    model_scores: Mapping[str, np.ndarray] = field(default_factory=dict)


ScoreFn = Callable[[SelectionInput, SelectorOptions], np.ndarray]


@dataclass(frozen=True)
class Selector:
    """A registered selector.

    label: the display name (tables, figures). needs: what it reads from SelectionInput (STUDY_REQUIREMENTS or
    the name of a model-backed input). uniform: its ranking is uniform over all orderings, so metrics report their
    exact expectation instead of scoring one ranking. parts: for selectors built from others (FUSION), the names of
    those selectors given the options; their requirements become this selector's. A "texts" requirement is met by
    an entry under the selector's own name in `SelectionInput.text_embeddings`.
    """

    name: str
    label: str
    fn: ScoreFn
    needs: frozenset[str] = frozenset()
    uniform: bool = False
    parts: Callable[[SelectorOptions], tuple[str, ...]] | None = None

    def components(self, opts: SelectorOptions) -> list["Selector"]:
        return [SELECTORS.get(p) for p in self.parts(opts)] if self.parts else []

    def requirements(self, opts: SelectorOptions) -> frozenset[str]:
        out = set(self.needs)
        for part in self.components(opts):
            out |= part.requirements(opts)
        return frozenset(out)

    def missing(self, inp: SelectionInput, opts: SelectorOptions) -> list[str]:
        """The requirements `inp` does not provide (empty = the selector can run)."""
        have = {
            "prompts": inp.prompts is not None,
            "sizes": inp.sizes is not None,
            "texts": self.name in inp.text_embeddings,
            "draw": inp.draw is not None,
        }
        out = {r for r in self.needs if not have.get(r, r in inp.model_scores)}
        for part in self.components(opts):
            out |= {f"{r} (for {part.name})" for r in part.missing(inp, opts)}
        return sorted(out)

    def scores(self, inp: SelectionInput, opts: SelectorOptions) -> np.ndarray:
        """[S] scores; raises ValueError naming the selector and what is missing."""
        missing = self.missing(inp, opts)
        if missing:
            raise ValueError(f"selector {self.name!r} needs {', '.join(missing)}, which this study does not provide")
        out = np.asarray(self.fn(inp, opts), dtype=np.float64)
        if out.shape != (len(inp.sources),):
            raise ValueError(f"selector {self.name!r} returned shape {out.shape}, expected ({len(inp.sources)},)")
        return out


SELECTORS: Registry[Selector] = Registry("selector")


def register_selector(name: str, *, label: str, needs: tuple[str, ...] = (), uniform: bool = False,
                      parts: Callable[[SelectorOptions], tuple[str, ...]] | None = None):
    """Decorator: register `fn(inp, opts) -> [S] scores` as selector `name` (a model-backed input it needs must be
    registered first)."""
    bad = set(needs) - set(requirement_names())
    if bad:
        raise ValueError(f"selector {name!r}: unknown requirements {sorted(bad)}; valid: "
                         f"{', '.join(requirement_names())}")

    def deco(fn: ScoreFn) -> ScoreFn:
        SELECTORS.add(name, Selector(name=name, label=label, fn=fn, needs=frozenset(needs), uniform=uniform,
                                     parts=parts))
        return fn

    return deco


def given_scores(name: str, inp: SelectionInput) -> np.ndarray:
    """[S] the cell's precomputed scores of model-backed input `name` (PROBE, LOGME) as float64, checked against the
    sources."""
    scores = np.asarray(inp.model_scores[name], dtype=np.float64)
    if scores.shape != (len(inp.sources),):
        raise ValueError(f"{name}: {scores.shape} scores for {len(inp.sources)} sources")
    return scores


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine of vector a [D] (or rows [R, D]) with each row of b [S, D] -> [S] (or [R, S]); 0 for a zero vector."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    na = np.linalg.norm(a, axis=-1, keepdims=True)
    nb = np.linalg.norm(b, axis=-1)
    num = a @ b.T
    den = na * nb
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)
