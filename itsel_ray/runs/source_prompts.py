"""Each source's best prompt, the starting point of every transfer from it, and the index that records the choice.

Best = highest validation score over the source's seeds and evaluations (each run's best.safetensors already is
the best over its evaluations); ties go to the first seed in the sweep's order. The choice is persisted under
<sweep>/source_prompts/ (one .safetensors per source plus index.json with seed, step, score and sha256), so a new
driver re-reads and re-puts the same prompts. A damaged index.json is rebuilt from the source runs (their prompts
are what it records), and a damaged copy or trial best prompt is restored from the other. No Ray here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from itsel_ray.artifacts import PromptFileError, TrialFiles, prompt_from_bytes, prompt_to_bytes
from itsel_ray.runs.plan import plan_stage
from itsel_ray.runs.storage import Storage
from itsel_ray.runs.trial_state import prompt_sha256, read_stage

SOURCE_PROMPTS = "source_prompts"
INDEX = f"{SOURCE_PROMPTS}/index.json"
MAX_PROMPT_BYTES = 64 * 1024**2  # a [100, 4096] float32 prompt is 1.6 MB


class MissingSourcesError(RuntimeError):
    """Some source has no finished run (or no readable best prompt), so transfers from it cannot start."""


@dataclass(frozen=True)
class SourceIndex:
    """{source: {seed, step, score, key, sha256, path, shape}} plus what was wrong with the stored index, if anything."""

    entries: dict = field(default_factory=dict)
    note: str = ""


def choose_source_prompts(sweep, storage: Storage) -> dict[str, dict]:
    """{source: {seed, step, score, key}} from the finished source runs; raises when a source has none."""
    records = [r for r in read_stage(sweep, storage, plan_stage(sweep, "tune")) if r.trial.role == "source"]
    chosen: dict[str, dict] = {}
    for r in records:  # plan order = sweep order of seeds, and a strict '>' keeps the first seed on ties
        if r.status != "done":
            continue
        best = chosen.get(r.trial.task)
        if best is None or r.score > best["score"]:
            chosen[r.trial.task] = {"seed": r.trial.seed, "step": r.result.get("best_step"), "score": r.score,
                                    "key": r.trial.key}
    missing = [s for s in sweep.grid.sources if s not in chosen]
    if missing:
        states = {r.trial.key: r.status for r in records if r.trial.task in missing}
        raise MissingSourcesError(
            f"no finished run for source(s) {', '.join(missing)} "
            f"({', '.join(f'{k}: {v}' for k, v in states.items())}); "
            "transfer starts from each source's best prompt. Rerun `tune` (failed runs are retried) and see each "
            "trial folder's result.json and train.log"
        )
    return chosen


def _read_prompt(storage: Storage, key: str) -> np.ndarray | None:
    size = storage.size(key)
    if size is None or size > MAX_PROMPT_BYTES:
        return None
    try:
        return prompt_from_bytes(storage.read_bytes(key) or b"", name=storage.path(key))
    except PromptFileError:
        return None


def _copy_metadata(storage: Storage, key: str) -> dict:
    """The metadata a stored copy was written with (its run's key, seed, step, score); {} when unreadable."""
    data = storage.read_bytes(key) or b""
    try:
        size = int.from_bytes(data[:8], "little")
        return dict(json.loads(data[8:8 + size]).get("__metadata__") or {})
    except (ValueError, TypeError, AttributeError):
        return {}


def source_index(sweep, storage: Storage) -> SourceIndex:
    """The persisted choice; a damaged index.json is rebuilt in memory from the source runs (nothing written)."""
    data, damaged = storage.read_json_checked(INDEX)
    if not damaged and (data is None or isinstance(data, dict)):
        return SourceIndex(data or {})
    try:
        entries = {s: {**info, "sha256": prompt_sha256(p)} for s, (info, p) in _chosen_prompts(sweep, storage).items()}
    except MissingSourcesError as err:
        return SourceIndex({}, f"{storage.path(INDEX)} is damaged and cannot be rebuilt: {err}")
    return SourceIndex(entries, f"{storage.path(INDEX)} is damaged; rebuilt from the source runs (rerun to rewrite)")


def _chosen_prompts(sweep, storage: Storage) -> dict[str, tuple[dict, np.ndarray]]:
    """{source: (info, prompt)}: each chosen run's best prompt, or the stored copy when the run's file is damaged
    and the copy is the one the old index recorded for that run."""
    old, _ = storage.read_json_checked(INDEX)
    old = old if isinstance(old, dict) else {}
    out = {}
    for source, info in choose_source_prompts(sweep, storage).items():
        key = f"{info['key']}/{TrialFiles.BEST_PROMPT}"
        prompt = _read_prompt(storage, key)
        copy_key = f"{SOURCE_PROMPTS}/{source}.safetensors"
        if prompt is None:
            copy = _read_prompt(storage, copy_key)
            recorded = old.get(source) or {}
            proven = copy is not None and (
                (recorded.get("key") == info["key"] and recorded.get("sha256") == prompt_sha256(copy))
                or _copy_metadata(storage, copy_key).get("key") == info["key"])  # the copy names its run
            if not proven:
                raise MissingSourcesError(f"{storage.path(key)} is missing or damaged although the run finished, and "
                                          f"no intact copy of it is stored under {SOURCE_PROMPTS}/")
            storage.write_bytes(key, prompt_to_bytes(copy, metadata={"step": info.get("step")}))  # restore it
            prompt = copy
        out[source] = (info, prompt)
    return out


def persist_source_prompts(sweep, storage: Storage) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
    """Choose, copy and index the source prompts; returns ({source: prompt}, index)."""
    old, _ = storage.read_json_checked(INDEX)
    old = old if isinstance(old, dict) else {}
    prompts, index = {}, {}
    for source, (info, prompt) in _chosen_prompts(sweep, storage).items():
        sha = prompt_sha256(prompt)
        path_key = f"{SOURCE_PROMPTS}/{source}.safetensors"
        copy = _read_prompt(storage, path_key)
        if copy is None or prompt_sha256(copy) != sha:
            storage.write_bytes(path_key, prompt_to_bytes(prompt, metadata={"source": source, **info}))
        prompts[source] = prompt
        index[source] = {**info, "sha256": sha, "path": path_key, "shape": list(prompt.shape)}
    if index != old:
        storage.write_json(INDEX, index)
    return prompts, index
