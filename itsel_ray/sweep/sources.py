"""Each source's best prompt, the starting point of every transfer from it.

Best = highest validation score over the source's seeds and evaluations (each run's best.safetensors already is
the best over its evaluations); ties go to the first seed in the sweep's order. The choice is persisted under
<sweep>/source_prompts/ (one .safetensors per source plus index.json with seed, step, score and sha256), so a new
driver re-reads and re-puts the same prompts. No Ray here.
"""

from __future__ import annotations

import hashlib

import numpy as np

from itsel_ray.artifacts import TrialFiles, prompt_from_bytes, prompt_to_bytes
from itsel_ray.sweep.plan import plan_stage
from itsel_ray.sweep.records import SOURCE_PROMPTS, read_stage, source_index
from itsel_ray.sweep.storage import Storage


class MissingSourcesError(RuntimeError):
    """Some source has no finished run, so transfers from it cannot start."""


def prompt_sha256(prompt: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(prompt, dtype=np.float32).tobytes()).hexdigest()


def choose_source_prompts(sweep, storage: Storage) -> dict[str, dict]:
    """{source: {seed, step, score, trial_dir}} from the finished source runs; raises when a source has none."""
    records = [r for r in read_stage(sweep, storage, plan_stage(sweep, "tune")) if r.trial.role == "source"]
    chosen: dict[str, dict] = {}
    for r in records:  # plan order = sweep order of seeds, and a strict '>' keeps the first seed on ties
        if r.status != "done":
            continue
        best = chosen.get(r.trial.task)
        if best is None or r.score > best["score"]:
            chosen[r.trial.task] = {"seed": r.trial.seed, "step": r.result.get("best_step"), "score": r.score,
                                    "trial_dir": r.folder, "key": r.trial.key}
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


def persist_source_prompts(sweep, storage: Storage) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
    """Choose, copy and index the source prompts; returns ({source: prompt}, index)."""
    chosen = choose_source_prompts(sweep, storage)
    old = source_index(storage)
    prompts, index = {}, {}
    for source, info in chosen.items():
        key = f"{info.pop('key')}/{TrialFiles.BEST_PROMPT}"
        data = storage.read_bytes(key)
        if data is None:
            raise MissingSourcesError(f"{storage.path(key)} is missing although the run finished")
        prompt = prompt_from_bytes(data, name=storage.path(key))
        sha = prompt_sha256(prompt)
        path_key = f"{SOURCE_PROMPTS}/{source}.safetensors"
        if old.get(source, {}).get("sha256") != sha or not storage.exists(path_key):
            storage.write_bytes(path_key, prompt_to_bytes(prompt, metadata={"source": source, **info}))
        prompts[source] = prompt
        index[source] = {**info, "sha256": sha, "path": storage.path(path_key), "shape": list(prompt.shape)}
    if index != old:
        storage.write_json(f"{SOURCE_PROMPTS}/index.json", index)
    return prompts, index
