"""`status`: per stage, trials done, running, waiting for a retry, failed, damaged or not started, and an ETA.

Starts nothing and imports no Ray. Finished work is read from the trial folders (the truth); what is running comes
from the live driver's progress log, which carries Tune's own counts. A driver is live only while it holds the
sweep's lock (its pid runs on this host, or its heartbeat is fresh), so a killed driver is never shown as running:
its unfinished trials are "interrupted" and resume on a rerun. The ETA is the remaining trials at the completion
rate observed in the live run.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from itsel_ray.runs import lock
from itsel_ray.runs.plan import STAGES, plan_stage
from itsel_ray.runs.progress import RunProgress, eta_seconds, latest_run
from itsel_ray.runs.source_prompts import source_index
from itsel_ray.runs.storage import Storage, StorageError, is_uri
from itsel_ray.runs.trial_state import read_stage

ANALYSIS_DIR = "analysis"
COLUMNS = ["stage", "total", "done", "running", "retrying", "interrupted", "failed", "damaged", "not started",
           "eta"]


def format_duration(seconds: float | None) -> str:
    if seconds is None or seconds != seconds:
        return "?"
    seconds = max(0, int(round(seconds)))  # a moment in the future by a clock tick (a line written after `now`)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


@dataclass
class StageStatus:
    stage: str
    total: int
    counts: dict = field(default_factory=dict)  # the COLUMNS counts
    live: bool = False
    eta: str = "-"
    notes: list = field(default_factory=list)
    progress: RunProgress | None = None

    def cell(self, column: str) -> str:
        if column == "stage":
            return self.stage
        if column == "total":
            return str(self.total)
        if column == "eta":
            return self.eta
        return str(self.counts.get(column, 0))


def stage_status(sweep, storage: Storage, stage: str, *, index: dict, driver_live: bool,
                 now: float) -> StageStatus:
    records = read_stage(sweep, storage, plan_stage(sweep, stage), index=index)
    progress = latest_run(storage, stage)
    live = driver_live and progress.run is not None and progress.ended is None
    by = {k: sum(1 for r in records if r.status == k) for k in ("done", "failed", "running", "damaged", "pending")}
    counts = {"done": by["done"], "failed": by["failed"], "damaged": by["damaged"]}
    if live:
        tune = progress.tune
        counts["running"] = int(tune.get("running", progress.count("running")))
        counts["retrying"] = int(tune.get("retrying", progress.count("retrying")))
        counts["interrupted"] = 0
    else:
        counts["running"] = counts["retrying"] = 0
        counts["interrupted"] = by["running"]
    busy = counts["running"] + counts["retrying"] + counts["interrupted"]
    counts["not started"] = max(0, len(records) - counts["done"] - counts["failed"] - counts["damaged"] - busy)
    st = StageStatus(stage, len(records), counts, live, progress=progress)
    st.notes = [r.note for r in records if r.note]
    remaining = len(records) - counts["done"] - counts["failed"]
    if remaining == 0:
        st.eta = "-"
    elif live:
        eta = eta_seconds(remaining, progress, now)
        st.eta = format_duration(eta) if eta is not None else "? (no trial finished yet in this run)"
    else:
        walls = [float(r.result["wall_s"]) for r in records
                 if r.status == "done" and r.result and r.result.get("wall_s") is not None]
        st.eta = (f"~{format_duration(remaining * statistics.median(walls))} of trial time (not running)" if walls
                  else "not running")
    return st


def analysis_status(storage: Storage, *, driver_live: bool) -> str:
    progress = latest_run(storage, "analyze")
    report = f"{ANALYSIS_DIR}/report.md"
    if progress.run is not None and progress.ended is None:
        if driver_live:
            return "running"
        return ("interrupted (the previous report is kept: " + storage.path(report) + ")" if storage.exists(report)
                else "interrupted")
    if progress.ended is not None and progress.ended.get("outcome") != "complete":
        return f"failed: {progress.ended.get('error') or progress.ended.get('outcome')}"
    if storage.exists(report):
        when = progress.ended["t"] if progress.ended else None
        stamp = f", {time.strftime('%Y-%m-%d %H:%M', time.localtime(when))}" if when else ""
        return f"done: {storage.path(report)}{stamp}"
    return "not run"


def check_storage_base(storage_base: str) -> None:
    """`status` on a storage that is not there is an error, not an empty sweep."""
    if is_uri(storage_base):
        return _check_stored_base(storage_base)
    p = Path(storage_base).expanduser()
    if not p.exists():
        raise StorageError(f"storage {p} does not exist (pass the --storage the sweep ran with)")
    if not p.is_dir():
        raise StorageError(f"storage {p} is a file, not a folder")


def _check_stored_base(uri: str) -> None:
    """An object store location: its bucket must exist and answer (a prefix with nothing under it is fine)."""
    import pyarrow.fs

    from itsel_ray.runs.object_store import endpoint

    st = Storage(uri)
    where = uri + (f" (endpoint {endpoint()})" if endpoint() else "")
    bucket = st.fs[1].split("/", 1)[0]
    try:
        missing = st.fs[0].get_file_info(bucket).type == pyarrow.fs.FileType.NotFound
    except OSError as err:
        raise StorageError(f"storage {where} cannot be reached: {str(err).strip().splitlines()[0]}") from None
    if missing:
        raise StorageError(f"storage {where}: bucket {bucket!r} does not exist (pass the --storage the sweep ran with)")


def format_status(sweep, storage: Storage, *, now: float | None = None) -> str:
    now = time.time() if now is None else now
    holder = lock.holder(storage)
    driver_live = lock.is_alive(holder, now)
    index = source_index(sweep, storage)
    rows = [stage_status(sweep, storage, s, index=index.entries, driver_live=driver_live, now=now) for s in STAGES]
    table = [COLUMNS] + [[r.cell(c) for c in COLUMNS] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(COLUMNS))]
    lines = [f"sweep {sweep.name} at {storage.root}"]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in table]
    lines.append(f"analyze: {analysis_status(storage, driver_live=driver_live)}")
    if driver_live:
        live = [r for r in rows if r.live]
        where = f" ({live[0].stage}: Tune's counts, {format_duration(now - (live[0].progress.updated or now))} old)" \
            if live else ""
        lines.append(f"driver: live, {holder.describe(now)}{where}")
    else:
        lines.append("driver: none running; counts come from storage only" +
                     (f" (the last one, {holder.describe(now)}, is gone)" if holder else ""))
    for note in [index.note] + [n for r in rows for n in r.notes]:
        if note:
            lines.append(f"note: {note}")
    if not driver_live and any(r.counts.get(k) for r in rows for k in ("interrupted", "failed", "not started",
                                                                     "damaged")):
        lines.append("Rerun the stage's command to continue: finished trials are kept, interrupted ones resume.")
    return "\n".join(lines)


def sweeps_in(storage_base: str) -> list[str]:
    """Sweep names under a storage path (folders holding tune/ or transfer/ trial folders)."""
    st = Storage(storage_base)
    if st.remote:  # one listing of the base, then one of each folder in it
        return [name for name in st.list_folders() if {"tune", "transfer"} & set(st.list_folders(name))
                or st.exists(f"{name}/sweep.yaml")]
    root = st.local()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and ((p / "tune").is_dir() or (p / "transfer").is_dir()
                                                                     or (p / "sweep.yaml").is_file()))
