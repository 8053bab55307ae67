"""`status`: per stage, how many trials are done, running, failed or not started, and an ETA, read from storage.

Starts nothing and imports no Ray. "running" needs a live driver: when the stage's progress.json has not been
updated for a while, unfinished trials with saved state are shown as interrupted (a rerun resumes them).
"""

from __future__ import annotations

import statistics
import time

from itsel_ray.sweep.plan import STAGES
from itsel_ray.sweep.results import collect_records
from itsel_ray.sweep.storage import Storage

LIVE_S = 120.0  # progress.json is rewritten every few seconds while a driver runs the stage


def format_duration(seconds: float | None) -> str:
    if seconds is None or seconds != seconds:
        return "?"
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def stage_summary(sweep, storage: Storage, *, now: float | None = None) -> list[dict]:
    now = time.time() if now is None else now
    records = collect_records(sweep, storage)
    out = []
    for stage in STAGES:
        rs = [r for r in records if r.trial.stage == stage]
        progress = storage.read_json(f"{stage}/progress.json") or {}
        age = now - float(progress.get("updated_at", 0)) if progress else None
        live = age is not None and age < LIVE_S and progress.get("running", 0) + progress.get("pending", 0) > 0
        counts = {k: sum(1 for r in rs if r.status == k) for k in ("done", "failed", "running", "pending")}
        row = {"stage": stage, "total": len(rs), "done": counts["done"], "failed": counts["failed"],
               "running": counts["running"] if live else 0, "interrupted": 0 if live else counts["running"],
               "not started": counts["pending"], "live": live, "progress_age_s": age}
        walls = [float(r.result["wall_s"]) for r in rs if r.status == "done" and r.result.get("wall_s") is not None]
        remaining = counts["pending"] + counts["running"]
        if remaining == 0:
            row["eta"] = "-"
        elif live and progress.get("eta_s") is not None:
            row["eta"] = format_duration(max(0.0, float(progress["eta_s"]) - age))
        elif walls:
            row["eta"] = f"~{format_duration(remaining * statistics.median(walls))} of trial time (not running)"
        else:
            row["eta"] = "unknown" + ("" if live else " (not running)")
        out.append(row)
    return out


def format_status(sweep, storage: Storage) -> str:
    rows = stage_summary(sweep, storage)
    cols = ["stage", "total", "done", "running", "interrupted", "failed", "not started", "eta"]
    table = [cols] + [[str(r[c]) for c in cols] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
    lines = [f"sweep {sweep.name} at {storage.root}"]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in table]
    for r in rows:
        if r["progress_age_s"] is not None:
            state = "live" if r["live"] else "no driver running"
            lines.append(f"{r['stage']}: progress.json updated {format_duration(r['progress_age_s'])} ago ({state})")
    if any(r["interrupted"] or r["failed"] or r["not started"] for r in rows):
        lines.append("Rerun the stage's command to continue: finished trials are kept, interrupted ones resume.")
    return "\n".join(lines)


def sweeps_in(storage_root: str) -> list[str]:
    """Sweep names under a storage path (folders holding tune/ or transfer/ trial folders)."""
    st = Storage(storage_root)
    if st.remote:
        return []
    root = st.local()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and ((p / "tune").is_dir() or (p / "transfer").is_dir()))
