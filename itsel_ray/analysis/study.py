"""The in-memory study every analysis step reads: who transferred to whom, how well, and the prompts.

Built from a sweep's results folder (`from_sweep.study_from_sweep`) or from an external ground-truth CSV
(`from_csv.study_from_csv`). Missing transfer scores are NaN and stay NaN: they are never read as 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from itsel_ray.analysis.meta import TaskMeta

# The seed label of a study that only knows means over seeds (a ground-truth CSV without per-seed columns).
MEAN_SEED = -1


def seed_label(seed: int) -> str:
    return "mean" if seed == MEAN_SEED else str(seed)


@dataclass(frozen=True)
class Study:
    """A transfer study.

    transfer: [S, T, R] transfer score of source s -> target t at transfer seed r (0-100, NaN = missing).
    baseline: [T, R] the no-transfer score of target t at seed r (its own prompt tuning).
    meta: TaskMeta for every source and target.
    source_prompts: [S, P, H] the best prompt of each source, or None.
    target_prompts: (target, seed, step) -> [P, H], the target's own prompt-tuning run at that step.
    transfer_std, baseline_std: [S, T] / [T] standard deviations over seeds given by the input (a CSV without
        per-seed columns); None when they can be computed from `transfer`.
    model_scores: model-backed input name (`selection.MODEL_INPUTS`: probe, logme, ...) -> [T, S] its score of
        source s's prompt on target t (NaN = no score for that pair); an input without a table is absent (a
        ground-truth CSV, a stand-in engine).
    origin: where the study came from (for the report). notes: what was missing or skipped while building it.
    environments: where the trials ran ({fingerprint, summary, trials} per environment, `itsel_ray.environment`;
        fingerprint "" for trials that recorded none); empty for a study without that record (a ground-truth CSV).
    """

    sources: tuple[str, ...]
    targets: tuple[str, ...]
    seeds: tuple[int, ...]
    transfer: np.ndarray
    baseline: np.ndarray
    meta: Mapping[str, TaskMeta]
    source_prompts: np.ndarray | None = None
    target_prompts: Mapping[tuple[str, int, int], np.ndarray] = field(default_factory=dict)
    transfer_std: np.ndarray | None = None
    baseline_std: np.ndarray | None = None
    model_scores: Mapping[str, np.ndarray] = field(default_factory=dict)
    origin: str = ""
    notes: tuple[str, ...] = ()
    environments: tuple[dict, ...] = ()

    def __post_init__(self):
        s, t, r = len(self.sources), len(self.targets), len(self.seeds)
        for name, names in (("sources", self.sources), ("targets", self.targets), ("seeds", self.seeds)):
            if len(set(names)) != len(names):
                raise ValueError(f"study {name} must be unique, got {list(names)}")
        if np.shape(self.transfer) != (s, t, r):
            raise ValueError(f"transfer must be [sources, targets, seeds] = {(s, t, r)}, got {np.shape(self.transfer)}")
        if np.shape(self.baseline) != (t, r):
            raise ValueError(f"baseline must be [targets, seeds] = {(t, r)}, got {np.shape(self.baseline)}")
        missing = [n for n in (*self.sources, *self.targets) if n not in self.meta]
        if missing:
            raise ValueError(f"no task metadata for {missing}")
        if self.source_prompts is not None and np.shape(self.source_prompts)[0] != s:
            raise ValueError(f"source_prompts must be [{s}, P, H], got {np.shape(self.source_prompts)}")
        for name, table in self.model_scores.items():
            if np.shape(table) != (t, s):
                raise ValueError(f"{name} scores must be [targets, sources] = {(t, s)}, got {np.shape(table)}")

    # ----------------------------------------------------------------------------------------- lookups

    @property
    def has_prompts(self) -> bool:
        return self.source_prompts is not None and bool(self.target_prompts)

    @property
    def steps(self) -> tuple[int, ...]:
        """Checkpoint steps with at least one target prompt, ascending."""
        return tuple(sorted({step for (_, _, step) in self.target_prompts}))

    def sizes(self, sources: tuple[str, ...] | None = None) -> np.ndarray:
        return np.array([self.meta[s].train_size for s in (sources or self.sources)], dtype=np.float64)

    def category(self, task: str) -> str:
        return self.meta[task].category

    def relevance(self, target: str, seed: int, *, mode: str = "per_seed") -> np.ndarray:
        """[S] ground truth of one cell: the transfer scores at `seed` (per_seed) or their mean over seeds
        (seed_mean; NaN where any seed is missing)."""
        t = self.targets.index(target)
        if mode == "per_seed":
            return self.transfer[:, t, self.seeds.index(seed)].astype(np.float64)
        if mode == "seed_mean":
            return self.transfer[:, t, :].mean(axis=1).astype(np.float64)
        raise ValueError(f"unknown relevance mode {mode!r}; valid: per_seed, seed_mean")

    def model_row(self, name: str, target: str) -> np.ndarray | None:
        """[S] model-backed input `name`'s scores of every source on `target` (NaN = none), or None without them."""
        table = self.model_scores.get(name)
        if table is None:
            return None
        return np.asarray(table[self.targets.index(target)], dtype=np.float64)

    def baseline_of(self, target: str, seed: int) -> float:
        return float(self.baseline[self.targets.index(target), self.seeds.index(seed)])

    def target_prompt_stack(self, target: str, seeds: tuple[int, ...], step: int) -> np.ndarray | None:
        """[R, P, H] prompts of `target` at `step` for each of `seeds`; None if any is missing."""
        arrays = [self.target_prompts.get((target, seed, step)) for seed in seeds]
        if any(a is None for a in arrays):
            return None
        return np.stack(arrays)

    def mean_std(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(transfer mean [S, T], transfer std [S, T], baseline mean [T], baseline std [T]) over seeds.

        Std is the population std (ddof 0) over the seeds present; a given std (CSV) is used as it is.
        """
        with np.errstate(all="ignore"):
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                tm = np.nanmean(self.transfer, axis=2)
                ts = np.nanstd(self.transfer, axis=2) if self.transfer_std is None else self.transfer_std
                bm = np.nanmean(self.baseline, axis=1)
                bs = np.nanstd(self.baseline, axis=1) if self.baseline_std is None else self.baseline_std
        return tm, ts, bm, bs
