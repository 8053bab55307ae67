"""The sweep's prepared data: every task of the plan loaded, checked and tokenised once before any trial, in a cache
the trials memory-map (itsel_ray.data.prepare does the work per task; this module decides what and where).

The cache root is the sweep's data.cache_dir, else $ITSEL_RAY_DATA_CACHE, else <sweep>/prepared/ on the sweep's
own (shared) storage. Object-store storage has no folder to memory-map: there the trials load their data themselves
unless a cache root is given. An engine without a model (the stand-in) reads no data, so its sweeps have nothing to
prepare. Each run
writes <sweep>/prepared/report.json (the per-task report). No Ray here: the map over tasks is injected.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from itsel_ray.data.cache import cache_root_for
from itsel_ray.engine import get_engine
from itsel_ray.runs.plan import STAGES, plan_stage
from itsel_ray.runs.storage import Storage
from itsel_ray.runs.trial_state import trial_config

PREPARED = "prepared"


def cache_root(sweep, storage: Storage) -> Path | None:
    configured = cache_root_for(sweep.settings["source"].data.cache_dir)
    if configured is not None:
        return configured
    return None if storage.remote else storage.local(PREPARED)


@dataclass(frozen=True)
class PrepareOne:
    """Prepare one (task, settings) under `root` (picklable: the map may run it as a Ray task)."""

    root: str

    def __call__(self, item):
        from itsel_ray.data.prepare import prepare_task

        task, settings = item
        return prepare_task(task, settings, cache_root=self.root)


def prepare_sweep(sweep, storage: Storage, map_fn=map) -> tuple[list, Path | None]:
    """(per-task reports, cache root); empty when the sweep has nothing to prepare (stand-in engine, remote storage
    without a cache root)."""
    root = cache_root(sweep, storage)
    if not get_engine(sweep.spec.engine).has_model or root is None:
        return [], None
    from itsel_ray.data.prepare import prepare_plan

    configs = [trial_config(sweep, t) for stage in STAGES for t in plan_stage(sweep, stage)]
    reports = list(map_fn(PrepareOne(str(root)), prepare_plan(configs)))
    storage.write_json(f"{PREPARED}/report.json", [r.to_dict() for r in reports])
    return reports, root


def problems(reports) -> list[str]:
    return [f"{r.task}: {p}" for r in reports for p in r.problems]


def describe(reports) -> str:
    from itsel_ray.data.prepare import format_report

    return format_report(reports)

