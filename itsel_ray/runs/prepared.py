"""The sweep's prepared data: every task of the plan loaded, checked and tokenised once before any trial, in a cache
the trials memory-map (itsel_ray.data.prepare does the work per task; this module decides what and where).

The cache root is the sweep's data.cache_dir, else $ITSEL_RAY_DATA_CACHE, else <sweep>/prepared/ on the sweep's
own (shared) storage. Object-store storage has no folder to memory-map: there the trials load their data themselves
unless a cache root is given. The stand-in engine reads no data, so its sweeps have nothing to prepare. Each run
writes <sweep>/prepared/report.json (the per-task report). No Ray here: the map over tasks is injected.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from itsel_ray.data.cache import cache_root_for
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
    if sweep.spec.engine != "torch" or root is None:
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
