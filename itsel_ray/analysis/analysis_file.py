"""The analysis definition (analysis/*.yaml) as a frozen dataclass, parsed strictly.

An unknown key, a bad type, an unknown selector, metric, gain or option fails at load time with the key and file.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from itsel_ray.analysis.meta import CATEGORIES
from itsel_ray.analysis.uncertainty import CORRECTIONS, FAMILIES, INTERVALS, PAIRED_TESTS
from itsel_ray.definitions import definitions_dir
from itsel_ray.schema import ConfigError, from_dict, read_yaml
from itsel_ray.metrics.ranking import GAINS, MetricSpec, parse_metric
from itsel_ray.registry import UnknownNameError
from itsel_ray.selection import SELECTORS, Selector, SelectorOptions
from itsel_ray.selection.semb import OFFLINE_ENCODER

RELEVANCE_MODES = ("per_seed", "seed_mean")
MISSING_POLICIES = ("skip", "present")


@dataclass(frozen=True)
class SelectorEntry:
    """A selector run under its own label with option overrides, e.g. MAX in the authors' direction:
    {selector: max, label: MAX-SRC, options: {max_direction: source_centric}}."""

    selector: str
    label: str | None = None
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class RankingConfig:
    """gain: nDCG gain (exp2_raw = the authors' 2^score - 1 on raw scores; linear; minmax; exp2_minmax).
    relevance: per_seed (each cell against its own seed's transfer scores, the authors' code) or seed_mean.
    missing: a cell with missing transfer scores is `skip`ped (counted, not scored) or ranked over the `present`
    sources and flagged partial."""

    gain: str = "exp2_raw"
    relevance: str = "per_seed"
    missing: str = "skip"


@dataclass(frozen=True)
class SembConfig:
    """Sentence encoders of SEMB-B / SEMB-R (a Hub id, or OFFLINE_ENCODER for the packaged all-MiniLM-L6-v2),
    the training examples embedded per task (null = all), and the embedding cache folder (null = the default)."""

    b_encoder: str = OFFLINE_ENCODER
    r_encoder: str = OFFLINE_ENCODER
    max_examples: int | None = 1000
    cache_dir: str | None = None
    batch_size: int = 64


@dataclass(frozen=True)
class UncertaintyConfig:
    """How sure the Table 3 means are (`itsel_ray/analysis/uncertainty.py`); targets are the sampled unit.

    interval: bootstrap-t (studentized, over targets; the default) or bootstrap (the older two-stage percentile
    interval, too narrow with few targets), at `level`, from `resamples` resamples. test: the paired test of every
    selector against `reference` (a selector name or label): cluster-sign-flip (per target; the default),
    cluster-bootstrap-t, or sign-flip (per cell: too many false positives when a target's seeds move together);
    the sign flips are exact when 2^units <= permutations, else `permutations` random sign patterns. random_test:
    the test against RANDOM's exact expectation, from the same list (default cluster-bootstrap-t: the difference
    from an expectation is skewed, and a sign flip then rejects a true null too often).
    correction: none (per comparison, the default) or holm, over a `family` of comparisons: `column` (every test in
    one Table 3 column, i.e. one group and metric) or `table` (every test in Table 3). With the exact per-target
    test the smallest p is 2 / 2^T, so Holm over m comparisons needs m * 2 / 2^T <= alpha: at the paper's 10
    targets and a column of 24 comparisons (12 selectors, two references) it cannot reach 0.05. alpha: the level at which the report checks whether any
    test can reach significance at all (with 4 targets the per-target test's smallest p is 0.125, and the report
    then says so instead of printing p-values). seed: every resample and random sign pattern comes from it, so a
    rerun gives the same numbers.
    """

    interval: str = "bootstrap-t"
    level: float = 0.95
    resamples: int = 2000
    test: str = "cluster-sign-flip"
    random_test: str = "cluster-bootstrap-t"
    permutations: int = 10000
    correction: str = "none"
    family: str = "column"
    alpha: float = 0.05
    reference: str = "feature"
    seed: int = 0


@dataclass(frozen=True)
class AnalysisConfig:
    """One analysis: which selectors, metrics, options and groups, and what the tables and figures show.

    steps: target checkpoint steps to evaluate (null = every saved step above 0). headline_step: the step of the
    prompt selectors in Tables 3 and 4 (null = the last evaluated step). seed_average: score each (target, seed)
    cell with the target's prompts of all seeds at that step, averaging the similarity. step_selectors: the lines
    of Figures 5 and 7. table4_selectors / table4_ks: the rows of Table 4. top_n: the sources per cell in Table 8.
    tsne_targets: the targets of Figure 4; tsne_min_tokens: the prompt length below which Figure 4 is left out (4
    prompts of 10 tokens are 40 points: t-SNE then shows its own layout more than any structure).
    step_selectors and table4_selectors may name registered selectors that are not in `selectors`; those are
    left out.
    """

    name: str = "analysis"
    description: str = ""
    selectors: tuple[str | SelectorEntry, ...] = (
        "random", "size", "semb-b", "semb-r", "feature", "unigram", "max", "max-topk", "mmd", "fusion")
    metrics: tuple[str, ...] = ("ndcg", "regret@1", "regret@3", "spearman", "kendall")
    ranking: RankingConfig = field(default_factory=RankingConfig)
    options: SelectorOptions = field(default_factory=SelectorOptions)
    semb: SembConfig = field(default_factory=SembConfig)
    uncertainty: UncertaintyConfig = field(default_factory=UncertaintyConfig)
    groups: tuple[str, ...] = CATEGORIES
    seed_average: bool = False
    random_seed: int = 5
    steps: tuple[int, ...] | None = None
    headline_step: int | None = None
    step_selectors: tuple[str, ...] = ("feature", "unigram", "max", "max-topk", "mmd")
    table4_selectors: tuple[str, ...] = ("random", "size", "semb-r", "feature", "max")
    table4_ks: tuple[int, ...] = (1, 3)
    top_n: int = 3
    tsne_targets: tuple[str, ...] = ("copa", "cb")
    tsne_seed: int = 0
    tsne_min_tokens: int = 25

    def __post_init__(self):
        GAINS.get(self.ranking.gain)
        _one_of("ranking.relevance", self.ranking.relevance, RELEVANCE_MODES)
        _one_of("ranking.missing", self.ranking.missing, MISSING_POLICIES)
        for group in self.groups:
            _one_of("groups", group, CATEGORIES)
        self.metric_specs()
        resolved = self.resolved_selectors()
        for opts in {self.options, *(o for _, _, o in resolved)}:  # FUSION's parts, even where FUSION is not run
            for name in opts.fusion:
                SELECTORS.get(name)
        for label, selector, opts in resolved:
            for part in selector.components(opts):  # raises UnknownNameError for an unknown part
                if part.uniform or part.parts is not None:
                    raise ConfigError(f"{label}: cannot fuse {part.name!r} (no single ranking, or itself a fusion)")
        labels = [label for label, _, _ in resolved]
        for key in ("step_selectors", "table4_selectors"):
            unknown = [s for s in getattr(self, key) if s.lower() not in {x.lower() for x in labels}
                       and s not in SELECTORS]
            if unknown:
                raise ConfigError(f"{key}: {unknown} are not among the selectors {labels}")
        if any(k < 1 for k in self.table4_ks) or self.top_n < 1:
            raise ConfigError("table4_ks and top_n must be >= 1")
        self._check_uncertainty(labels)

    def _check_uncertainty(self, labels: list[str]) -> None:
        u = self.uncertainty
        INTERVALS.get(u.interval)
        PAIRED_TESTS.get(u.test)
        PAIRED_TESTS.get(u.random_test)
        if not 0 < u.level < 1:
            raise ConfigError(f"uncertainty.level: {u.level} is not between 0 and 1 (e.g. 0.95)")
        if not 0 < u.alpha < 1:
            raise ConfigError(f"uncertainty.alpha: {u.alpha} is not between 0 and 1 (e.g. 0.05)")
        _one_of("uncertainty.correction", u.correction, CORRECTIONS)
        _one_of("uncertainty.family", u.family, FAMILIES)
        if u.resamples < 100 or u.permutations < 100:
            raise ConfigError(f"uncertainty.resamples and uncertainty.permutations must be >= 100, got "
                              f"{u.resamples} and {u.permutations}")
        if u.reference.lower() not in {x.lower() for x in labels} and u.reference not in SELECTORS:
            raise ConfigError(f"uncertainty.reference: {u.reference!r} is neither a registered selector nor one of "
                              f"the selectors {labels}")

    def metric_specs(self) -> list[MetricSpec]:
        return [parse_metric(m, gain=self.ranking.gain) for m in self.metrics]

    def resolved_selectors(self) -> list[tuple[str, Selector, SelectorOptions]]:
        """(label, selector, options) per entry, in config order; labels are unique."""
        out, seen = [], set()
        base = dataclasses.asdict(self.options)
        for entry in self.selectors:
            entry = SelectorEntry(entry) if isinstance(entry, str) else entry
            selector = SELECTORS.get(entry.selector)
            opts = self.options
            if entry.options:
                opts = from_dict(SelectorOptions, {**base, **entry.options},
                                 path=f"selectors[{entry.selector}].options")
            label = entry.label or selector.label
            if label.lower() in seen:
                raise ConfigError(f"selector label {label!r} appears twice; give one entry a `label`")
            seen.add(label.lower())
            out.append((label, selector, opts))
        return out

    def labels_for(self, names: tuple[str, ...]) -> list[str]:
        """Display labels of the configured selectors among `names` (registry names or labels), in `names`
        order; names of selectors that are not configured are left out."""
        out = []
        for name in names:
            for label, selector, _ in self.resolved_selectors():
                if name.lower() in (label.lower(), selector.name) and label not in out:
                    out.append(label)
                    break
        return out


def _one_of(key: str, value: str, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise ConfigError(f"{key}: {value!r} is not one of {', '.join(valid)}")


def analysis_config_from_dict(data: Mapping[str, Any], *, where: str = "") -> AnalysisConfig:
    """Strict parse; errors name the key and `where`."""
    try:
        return from_dict(AnalysisConfig, data, where=where)
    except (UnknownNameError, ValueError) as err:
        if isinstance(err, ConfigError):
            raise
        raise ConfigError(f"{err}{f' in {where}' if where else ''}") from None


def load_analysis_config(path: str | Path) -> AnalysisConfig:
    """Read analysis/<name>.yaml."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"analysis config not found: {path}")
    data = read_yaml(path, what="analysis definition")
    return analysis_config_from_dict(data, where=str(path))


def builtin_config(name: str) -> Path:
    """analysis/<name>.yaml of the shipped definitions (the checkout's folder, or the installed package's copy)."""
    return definitions_dir("analysis") / f"{name}.yaml"
