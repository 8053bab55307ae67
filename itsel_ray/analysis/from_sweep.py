"""Build a `Study` from a sweep's results folder (the contract is in `inputs.py`)."""

from __future__ import annotations

import json

from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from itsel_ray.analysis.inputs import (
    InputError,
    load_pair_table,
    load_prompts,
    load_results,
    resolve_path,
)
from itsel_ray.analysis.meta import PAPER_SOURCES, PAPER_TARGETS, TaskMeta, resolve_metadata
from itsel_ray.analysis.study import Study
from itsel_ray.artifacts import load_prompt
from itsel_ray.selection import MODEL_INPUTS


def order_tasks(names: Iterable[str], paper_order: tuple[str, ...]) -> tuple[str, ...]:
    """The paper's order for the paper's tasks, then any others alphabetically."""
    names = set(names)
    known = [n for n in paper_order if n in names]
    return tuple(known + sorted(names - set(known)))


def _score_table(rows: pd.DataFrame, keys: list[str], what: str, path: str) -> dict[tuple, float]:
    """keys -> score of the done run; NaN for runs that exist but are not done. Two done runs of one key raise."""
    out: dict[tuple, float] = {}
    for key, group in rows.groupby(keys, sort=False):
        done = group[group["status"] == "done"]
        if len(done) > 1:
            raise InputError(f"{path}: {len(done)} finished {what} runs for {dict(zip(keys, key))}")
        out[tuple(key)] = float(done["score"].iloc[0]) if len(done) else float("nan")
    return out


def _best_source_runs(results: pd.DataFrame, sources: tuple[str, ...], notes: list[str]) -> dict[str, pd.Series]:
    """Each source's best done tune run: highest score, ties -> the smallest seed."""
    tune = results[(results["stage"] == "tune") & (results["role"] == "source") & (results["status"] == "done")]
    best = {}
    for source in sources:
        runs = tune[(tune["task"] == source) & tune["score"].notna()].sort_values("seed", kind="stable")
        if runs.empty:
            notes.append(f"source {source}: no finished tune run, so no source prompt")
            continue
        best[source] = runs.loc[runs["score"].idxmax()]
    return best


def _source_prompt_path(folder: Path, run: pd.Series, prompts: pd.DataFrame) -> Path | None:
    if run["best_prompt"]:
        return resolve_path(folder, run["best_prompt"])
    rows = prompts[(prompts["stage"] == "tune") & (prompts["role"] == "source") & (prompts["task"] == run["task"])
                   & (prompts["seed"] == run["seed"]) & prompts["is_best"]]
    return resolve_path(folder, rows["path"].iloc[-1]) if len(rows) else None


def _load_source_prompts(folder: Path, results: pd.DataFrame, prompts: pd.DataFrame, sources: tuple[str, ...],
                         notes: list[str]) -> np.ndarray | None:
    best = _best_source_runs(results, sources, notes)
    arrays = []
    for source in sources:
        if source not in best:
            return None
        path = _source_prompt_path(folder, best[source], prompts)
        if path is None:
            notes.append(f"source {source}: its best run (seed {best[source]['seed']}) lists no prompt file")
            return None
        arrays.append(load_prompt(path, allow_zero=False))
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise InputError(f"{folder}: source prompts differ in shape: "
                         + ", ".join(f"{s} {a.shape}" for s, a in zip(sources, arrays)))
    return np.stack(arrays)


def source_library_from_sweep(folder: str | Path) -> tuple[tuple[str, ...], np.ndarray]:
    """(source names, [S, P, H] best prompts) of every source with a finished tune run in a local results folder."""
    folder = Path(folder)
    results = load_results(folder)
    tune = results[(results["stage"] == "tune") & (results["role"] == "source") & (results["status"] == "done")]
    sources = order_tasks(tune["task"], PAPER_SOURCES)
    if not sources:
        raise InputError(f"{results.attrs['path']}: no finished source tune runs, so no source prompts")
    notes: list[str] = []
    prompts = _load_source_prompts(folder, results, load_prompts(folder), sources, notes)
    if prompts is None:
        raise InputError(f"{folder}: " + "; ".join(notes))
    return sources, prompts


def _load_target_prompts(folder: Path, prompts: pd.DataFrame, targets: tuple[str, ...], seeds: tuple[int, ...],
                         steps: Iterable[int] | None) -> dict[tuple[str, int, int], np.ndarray]:
    rows = prompts[(prompts["stage"] == "tune") & (prompts["role"] == "target") & prompts["task"].isin(targets)
                   & prompts["seed"].isin(seeds)]
    rows = rows[rows["step"] > 0] if steps is None else rows[rows["step"].isin(list(steps))]
    # Prefer the regular snapshot over a best-prompt row that shares its step.
    rows = rows.sort_values("is_best", kind="stable").drop_duplicates(["task", "seed", "step"], keep="first")
    return {(r.task, int(r.seed), int(r.step)): load_prompt(resolve_path(folder, r.path), allow_zero=False)
            for r in rows.itertuples(index=False)}


def _load_pair_scores(folder: Path, stem: str, targets: tuple[str, ...], sources: tuple[str, ...],
                      notes: list[str]) -> np.ndarray | None:
    """[T, S] scores of the `stem` table (a model-backed input: probe, logme, ...) aligned with the study (NaN
    where the table has no score), or None without a table."""
    table = load_pair_table(folder, stem)
    if table is None:
        return None
    path = table.attrs["path"]
    t_index = {t: i for i, t in enumerate(targets)}
    s_index = {s: i for i, s in enumerate(sources)}
    known = table["target"].isin(list(t_index)) & table["source"].isin(list(s_index))
    scores = np.full((len(targets), len(sources)), np.nan)
    for row in table[known].itertuples(index=False):
        scores[t_index[row.target], s_index[row.source]] = row.score
    if not known.all():
        notes.append(f"{path}: {int((~known).sum())} {stem} rows name a target or source outside the study; ignored")
    n_missing = int(np.isnan(scores).sum())
    if n_missing:
        notes.append(f"{n_missing} of {scores.size} {stem} scores are missing ({path}); {stem.upper()} treats a "
                     "missing score like a missing transfer score (ranking.missing)")
    if "error" in table.columns:  # the reason a target could not be scored, as the sweep recorded it
        errors = table[known & table["error"].fillna("").astype(str).ne("")]
        for target, part in errors.groupby("target", sort=False):
            notes.append(f"{stem.upper()} has no score for target {target} ({len(part)} sources): "
                         f"{part['error'].iloc[0]}")
    return scores


def study_from_sweep(folder: str | Path, *, metadata: Mapping[str, TaskMeta] | None = None,
                     with_prompts: bool = True, steps: Iterable[int] | None = None) -> Study:
    """Read a sweep's results folder into a Study.

    Args:
        folder: holds results.parquet|csv and prompts.parquet|csv, and optionally a <name>.parquet|csv per
            model-backed selector input (probe, logme, ...); a local folder (a stored one, s3://BUCKET/.../results,
            is read through the node-local copy `itsel_ray.runs.stored_results.local_results` makes).
        metadata: task -> TaskMeta; default: the tasks registry, else the paper's table.
        with_prompts: read the prompt files (False: a study for the prompt-free selectors only).
        steps: target checkpoint steps to load (default: every saved step above 0; step 0 is the initial prompt).
    """
    folder = Path(folder)
    results = load_results(folder)
    path = results.attrs["path"]
    transfer_rows = results[results["stage"] == "transfer"]
    if transfer_rows.empty:
        raise InputError(f"{path}: no transfer rows (stage 'transfer'), so there is no ground truth")
    for column in ("source", "target"):
        empty = transfer_rows[transfer_rows[column] == ""]
        if len(empty):
            raise InputError(f"{path}: transfer row {int(empty.index[0])} has no {column!r}")
    sources = order_tasks(transfer_rows["source"], PAPER_SOURCES)
    targets = order_tasks(transfer_rows["target"], PAPER_TARGETS)
    seeds = tuple(sorted(int(s) for s in transfer_rows["seed"].unique()))
    notes: list[str] = []

    scores = _score_table(transfer_rows, ["source", "target", "seed"], "transfer", path)
    transfer = np.full((len(sources), len(targets), len(seeds)), np.nan)
    for (s, t, r), value in scores.items():
        transfer[sources.index(s), targets.index(t), seeds.index(int(r))] = value
    baseline_rows = results[(results["stage"] == "tune") & (results["role"] == "target")]
    base = _score_table(baseline_rows, ["task", "seed"], "target tune", path)
    baseline = np.array([[base.get((t, r), np.nan) for r in seeds] for t in targets], dtype=np.float64)

    n_missing = int(np.isnan(transfer).sum())
    if n_missing:
        notes.append(f"{n_missing} of {transfer.size} transfer scores are missing (not done)")
    for t, r in zip(*np.nonzero(np.isnan(baseline))):
        notes.append(f"no finished baseline (target tune run) for {targets[t]} seed {seeds[r]}")

    source_prompts, target_prompts = None, {}
    if with_prompts:
        prompts = load_prompts(folder)
        source_prompts = _load_source_prompts(folder, results, prompts, sources, notes)
        target_prompts = _load_target_prompts(folder, prompts, targets, seeds, steps)
        if not target_prompts:
            notes.append("no target prompt snapshots in the prompts table")
    model_scores = {}
    for name in MODEL_INPUTS:
        table = _load_pair_scores(folder, name, targets, sources, notes)
        if table is not None:
            model_scores[name] = table
    meta = resolve_metadata((*sources, *targets), metadata, notes=notes)
    return Study(
        sources=sources, targets=targets, seeds=seeds, transfer=transfer, baseline=baseline, meta=meta,
        source_prompts=source_prompts, target_prompts=target_prompts, model_scores=model_scores,
        origin=f"sweep results {folder}", notes=tuple(notes), environments=_environments(folder, results),
    )


def _environments(folder: Path, results) -> tuple[dict, ...]:
    """The environments the finished trials ran in (environments.json beside the results, written by the sweep):
    ({fingerprint, summary, trials}, ...), most trials first, plus one entry with fingerprint "" for finished
    trials that recorded none (a sweep from before the record existed)."""
    try:
        described = json.loads((folder / "environments.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        described = {}
    out = [{"fingerprint": fp, "summary": str(e.get("summary", "")), "trials": int(e.get("trials", 0))}
           for fp, e in (described.items() if isinstance(described, dict) else []) if isinstance(e, dict)]
    out.sort(key=lambda e: -e["trials"])  # a JSON object's key order does not survive every writer (sorted keys)
    done = results[results["status"] == "done"]
    column = done["environment"] if "environment" in done.columns else None
    unrecorded = len(done) if column is None else int((column.isna() | column.astype(str).eq("")).sum())
    if unrecorded:
        out.append({"fingerprint": "", "summary": "not recorded", "trials": unrecorded})
    return tuple(out)
