"""The sweep's prepared data: every task of the plan loaded, checked and tokenised once before any trial, in a cache
the trials memory-map (itsel_ray.data.prepare does the work per task; this module decides what and where).

The cache location is the sweep's data.cache_dir, else $ITSEL_RAY_DATA_CACHE, else <sweep>/prepared/ on the sweep's
own (shared) storage; a folder or an object store URI. On an object store each task is prepared in a node-local
staging folder (seeded with the stored manifests and part descriptions, so an unchanged task is not rebuilt) and
its new parts are uploaded, part.json after the arrays it describes and the manifest last, so a stored part that
has its part.json is complete. Trials read a node-local copy of their task's folder, fetched once per node
(`local_cache`, runs/node_cache.py). An engine without a model (the stand-in) reads no data, so its sweeps have
nothing to prepare. Each run writes <sweep>/prepared/report.json (the per-task report). No Ray here: the map over
tasks is injected.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from itsel_ray.data.cache import CACHE_ENV, MANIFEST
from itsel_ray.engine import get_engine
from itsel_ray.runs import node_cache
from itsel_ray.runs.plan import STAGES, plan_stage
from itsel_ray.runs.storage import Storage, is_uri
from itsel_ray.runs.trial_state import trial_config

PREPARED = "prepared"
REPORT = f"{PREPARED}/report.json"
PART_FILE = "part.json"


def cache_location(sweep, storage: Storage) -> Path | Storage:
    """Where the prepared data lives: a local (or NFS) folder, or a Storage on an object store."""
    configured = sweep.settings["source"].data.cache_dir or os.environ.get(CACHE_ENV)
    if configured:
        return Storage(configured) if is_uri(configured) else Path(configured).expanduser()
    return Storage(storage.path(PREPARED)) if storage.remote else storage.local(PREPARED)


@dataclass(frozen=True)
class PrepareOne:
    """Prepare one (task, settings) under `root` (picklable: the map may run it as a Ray task)."""

    root: str

    def __call__(self, item):
        from itsel_ray.data.prepare import prepare_task

        task, settings = item
        if is_uri(self.root):
            return _prepare_stored(Storage(self.root), task, settings)
        return prepare_task(task, settings, cache_root=self.root)


def _prepare_stored(store: Storage, task: str, settings):
    """Prepare `task` for a cache on an object store: stage locally, upload what was built."""
    from itsel_ray.data.prepare import prepare_task

    staging = node_cache.location(store.root, "staging") / f"{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        seeded = _seed_staging(store, task, staging)
        report = prepare_task(task, settings, cache_root=staging)
        if not report.ok or report.cache is None:
            return report
        folder = Path(report.cache)
        key = f"{task}/{folder.name}"
        if not report.reused:
            if any(not (folder / part / PART_FILE).is_file() for part in seeded.get(folder.name, ())):
                store.remove(key)  # the sources changed and prepare rebuilt the folder: drop the stored parts
            _upload_built(store, key, folder)
        return dataclasses.replace(report, cache=store.path(key))
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _seed_staging(store: Storage, task: str, staging: Path) -> dict[str, set[str]]:
    """Copy the stored manifests and part descriptions of `task` (not the arrays) into the staging folder, so that
    prepare_task sees what is already complete. Returns {key: {parts seeded}}."""
    seeded: dict[str, set[str]] = {}
    for key in store.list_tree(task):
        parts = key.split("/")  # task/key/manifest.json or task/key/part/part.json
        if (len(parts) == 3 and parts[2] == MANIFEST) or (len(parts) == 4 and parts[3] == PART_FILE):
            store.download_file(key, staging / key)
            if len(parts) == 4:
                seeded.setdefault(parts[1], set()).add(parts[2])
    return seeded


def _upload_built(store: Storage, key: str, folder: Path) -> None:
    """Put every part prepare built in `folder` (the ones holding arrays), each part.json after its arrays, then
    the manifest: a reader that finds a part.json finds the files it describes (S3 reads after writes)."""
    for part in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if not (part / "input_ids.npy").is_file():
            continue  # seeded from the store, not rebuilt
        files = sorted(f for f in part.iterdir() if f.is_file())
        for f in [f for f in files if f.name != PART_FILE] + [part / PART_FILE]:
            store.upload_file(f, f"{key}/{part.name}/{f.name}")
    store.upload_file(folder / MANIFEST, f"{key}/{MANIFEST}")


def prepare_sweep(sweep, storage: Storage, map_fn=map) -> tuple[list, str | None]:
    """(per-task reports, cache location); empty when the sweep has nothing to prepare (the stand-in engine)."""
    location = cache_location(sweep, storage)
    if not get_engine(sweep.spec.engine).has_model:
        return [], None
    from itsel_ray.data.prepare import prepare_plan

    root = location.root if isinstance(location, Storage) else str(location)
    configs = [trial_config(sweep, t) for stage in STAGES for t in plan_stage(sweep, stage)]
    reports = list(map_fn(PrepareOne(root), prepare_plan(configs)))
    storage.write_json(REPORT, [r.to_dict() for r in reports])
    return reports, root


def trial_data(sweep, storage: Storage) -> dict:
    """What the trials of a stage need to find the prepared data (StageContext fields): `data_cache`, a local
    folder or a store URI (None: nothing prepared), and for a store `prepared`, {task: {stored folder: version}}
    from the last prepare report (version = digest of the folder's manifest, one read per task)."""
    location = cache_location(sweep, storage)
    if not isinstance(location, Storage):
        return {"data_cache": str(location) if location.is_dir() else None}
    reports = storage.read_json(REPORT)
    folders: dict[str, dict[str, str]] = {}
    for r in reports if isinstance(reports, list) else []:
        cache = r.get("cache") if isinstance(r, dict) else None
        if not cache or r.get("problems") or not str(cache).startswith(location.root + "/"):
            continue
        key = location.relative(cache)
        manifest = location.read_bytes(f"{key}/{MANIFEST}")
        if manifest is not None:
            folders.setdefault(r["task"], {})[key] = hashlib.sha256(manifest).hexdigest()[:16]
    return {"data_cache": location.root if folders else None, "prepared": folders}


def local_cache(data_cache: str, folders: dict[str, str]) -> str:
    """The local cache root a trial reads: `data_cache` itself when it is a folder; for a store, this node's copy
    of the trial's task folders (each fetched once per node and version)."""
    if not is_uri(data_cache):
        return data_cache
    store, root = Storage(data_cache), node_cache.location(data_cache, "prepared")
    for key, version in folders.items():
        node_cache.fetch_folder(store, key, root / key, version)
    return str(root)


def problems(reports) -> list[str]:
    return [f"{r.task}: {p}" for r in reports for p in r.problems]


def describe(reports) -> str:
    from itsel_ray.data.prepare import format_report

    return format_report(reports)



def truncation_line(reports) -> str | None:
    """One line: the share of each task's training inputs cut at its max source length, tasks with any first."""
    cut = []
    for r in reports:
        train = next((s for s in r.splits if s.name == "train"), None)
        if train is not None and train.examples and train.at_cap:
            cut.append((train.at_cap / train.examples, r.task, train))
    if not cut:
        return None
    shown = ", ".join(f"{task} {100 * share:.1f}%" for share, task, _ in sorted(cut, reverse=True))
    rest = len(reports) - len(cut)
    return (f"[prepare] training inputs cut at the max source length: {shown}"
            + (f"; {rest} other task(s) none" if rest else "") + " (details in the log)")


def console_lines(reports) -> list[str]:
    """What the console shows of a prepare run that found no problem: one line per warning ("warning: " first) and
    per note, and one line of truncation rates; the rows behind them go to the log (`describe`)."""
    lines = [f"warning: [prepare] {w}" for r in reports for w in r.warnings]
    lines += [f"[prepare] note: {n}" for r in reports for n in r.notes]
    cut = truncation_line(reports)
    return lines + ([cut] if cut else [])
