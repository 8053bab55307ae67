"""A small synthetic transfer study with planted structure, for tests, the benchmark and the offline demo.

Each task has a latent centre; a prompt is its centre plus token noise (target prompts get cleaner with the
checkpoint step), and transfer helps in proportion to the cosine of source and target centres, plus seed noise.
So prompt selectors have something real to find; with `probe=True` the zero-shot probe scores follow the same
cosine, less noisily, and with `logme=True` so do LogME scores. Optionally writes it as a sweep results folder (the contract of `inputs.py`), prompt files
and probe table included.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from itsel_ray.analysis.meta import CATEGORIES, PAPER_SOURCES, PAPER_TARGETS, PAPER_TASKS, TaskMeta
from itsel_ray.analysis.study import Study
from itsel_ray.artifacts import atomic_write_text, save_prompt

SOURCE_SEEDS = (42, 150, 386)


def _names(n: int, paper: tuple[str, ...], prefix: str) -> tuple[str, ...]:
    return paper[:n] if n <= len(paper) else tuple(f"{prefix}{i:02d}" for i in range(n))


def _meta(names, rng) -> dict[str, TaskMeta]:
    return {n: PAPER_TASKS.get(n) or TaskMeta(int(rng.integers(200, 400_000)), CATEGORIES[i % 3], "synthetic")
            for i, n in enumerate(names)}


def synthetic_study(*, n_sources: int = 13, n_targets: int = 10, seeds: tuple[int, ...] = (28, 52, 112),
                    steps: tuple[int, ...] = (5000, 10000, 15000, 20000, 25000, 30000), tokens: int = 8,
                    dim: int = 16, seed: int = 0, missing: int = 0, signal: float = 6.0,
                    probe: bool = False, logme: bool = False) -> Study:
    """A Study with prompts: source prompts [S, tokens, dim], target prompts at each (target, seed, step).

    missing: how many transfer scores to blank (NaN), chosen at random.
    probe: add [T, S] probe scores (-1 + affinity / 2 plus noise, from a separate generator so every other
        number is the same with or without them).
    logme: add [T, S] LogME scores (-0.7 + affinity / 5 plus noise, likewise from a generator of their own).
    """
    rng = np.random.default_rng(seed)
    sources = _names(n_sources, PAPER_SOURCES, "src")
    targets = _names(n_targets, PAPER_TARGETS, "tgt")
    centres_s = rng.normal(size=(n_sources, dim))
    mix = rng.dirichlet(np.full(n_sources, 0.3), size=n_targets)
    centres_t = mix @ centres_s + 0.5 * rng.normal(size=(n_targets, dim))
    unit = lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True)  # noqa: E731
    affinity = unit(centres_s) @ unit(centres_t).T  # [S, T]
    baseline = rng.uniform(55, 90, size=(n_targets, 1)) + rng.normal(0, 0.5, size=(n_targets, len(seeds)))
    transfer = (baseline[None] + signal * affinity[..., None] - 0.5 * signal * 0.5
                + rng.normal(0, 0.6, size=(n_sources, n_targets, len(seeds))))
    if missing:
        flat = rng.choice(transfer.size, size=missing, replace=False)
        transfer.reshape(-1)[flat] = np.nan
    source_prompts = (centres_s[:, None, :] + 0.8 * rng.normal(size=(n_sources, tokens, dim))).astype(np.float32)
    target_prompts = {}
    for ti, t in enumerate(targets):
        for r in seeds:
            noise = rng.normal(size=(tokens, dim))
            for k, step in enumerate(sorted(steps)):
                scale = 2.0 / (1 + k)
                target_prompts[(t, r, step)] = (centres_t[ti] + scale * noise).astype(np.float32)
    meta = _meta((*sources, *targets), rng)
    model_scores = {}
    if probe:
        noise = np.random.default_rng([seed, 1]).normal(0, 0.05, size=(n_targets, n_sources))
        model_scores["probe"] = np.round(-1.0 + 0.5 * affinity.T + noise, 6)
    if logme:  # like probe, noisier, from its own generator
        noise = np.random.default_rng([seed, 2]).normal(0, 0.1, size=(n_targets, n_sources))
        model_scores["logme"] = np.round(-0.7 + 0.2 * affinity.T + noise, 6)
    return Study(
        sources=sources, targets=targets, seeds=tuple(seeds), transfer=np.round(transfer, 4),
        baseline=np.round(baseline, 4), meta=meta, source_prompts=source_prompts,
        target_prompts=target_prompts, model_scores=model_scores, origin=f"synthetic study (seed {seed})",
    )


def write_sweep_folder(study: Study, folder: str | Path, *, fmt: str = "csv") -> Path:
    """Write `study` as a sweep results folder: results.<fmt>, prompts.<fmt>, prompt files and one <name>.<fmt> per
    model-backed input the study has scores of (probe, logme, ...; a NaN score as an empty cell).

    Each source gets three tune runs (its prompt saved by the best one), each target a tune run per seed with a
    snapshot per step; transfer runs with a NaN score are written as "failed".
    """
    folder = Path(folder)
    results, prompts = [], []

    def trial(**kw):
        row = {"stage": "", "role": "", "task": "", "source": None, "target": None, "seed": 0, "status": "done",
               "score": np.nan, "best_step": 0, "steps": 0, "wall_s": 0.0, "metric_accuracy": np.nan,
               "trial_dir": "", "best_prompt": ""}
        row.update(kw)
        results.append(row)

    last = max(study.steps) if study.steps else 0
    for si, s in enumerate(study.sources):
        for k, r in enumerate(SOURCE_SEEDS):
            best = k == 0  # the first seed is the best run
            path = f"tune/{s}/seed={r}/best.safetensors"
            if best and study.source_prompts is not None:
                save_prompt(folder / path, study.source_prompts[si])
                prompts.append({"stage": "tune", "role": "source", "task": s, "source": None, "seed": r,
                                "step": last, "path": path, "is_best": True})
            trial(stage="tune", role="source", task=s, seed=r, score=80.0 - k, best_step=last,
                  best_prompt=path if best and study.source_prompts is not None else "")
    for ti, t in enumerate(study.targets):
        for ri, r in enumerate(study.seeds):
            trial(stage="tune", role="target", task=t, target=t, seed=r, score=study.baseline[ti, ri])
            for step in study.steps:
                path = f"tune/{t}/seed={r}/prompts/step_{step:06d}.safetensors"
                save_prompt(folder / path, study.target_prompts[(t, r, step)])
                prompts.append({"stage": "tune", "role": "target", "task": t, "source": None, "seed": r,
                                "step": step, "path": path, "is_best": False})
            for si, s in enumerate(study.sources):
                score = study.transfer[si, ti, ri]
                trial(stage="transfer", role="transfer", task=t, source=s, target=t, seed=r, score=score,
                      status="failed" if np.isnan(score) else "done")
    tables = {"results": pd.DataFrame(results), "prompts": pd.DataFrame(prompts)}
    for name, scores in study.model_scores.items():
        tables[name] = pd.DataFrame([
            {"target": t, "source": s, "score": scores[ti, si], "examples": 64, "loss": "label"}
            for ti, t in enumerate(study.targets) for si, s in enumerate(study.sources)])
    folder.mkdir(parents=True, exist_ok=True)
    for stem, table in tables.items():
        if fmt == "parquet":
            table.to_parquet(folder / f"{stem}.parquet", index=False)
        else:
            atomic_write_text(folder / f"{stem}.csv", table.to_csv(index=False))
    return folder
