"""The sweep's two tables, read by the analysis: <sweep>/results/results.{parquet,csv} and prompts.{parquet,csv}.

results: one row per *planned* trial, so a failed or missing run is a row with its status and a NaN score, never
a 0. prompts: one row per saved prompt file of every finished trial (the step snapshots with is_best False, plus
best.safetensors with its step and is_best True). Paths are relative to the results folder (`../tune/...`), as
the analysis reads them, so a storage copied elsewhere reads its own files. Both tables are rebuilt from the trial folders and
written atomically, with environments.json: every environment the finished trials ran in (`provenance`), which the
results' environment column names by fingerprint. No Ray here.
"""

from __future__ import annotations

import io
import math

import pandas as pd

from itsel_ray.artifacts import TrialFiles
from itsel_ray.runs.plan import STAGES, plan_stage
from itsel_ray.runs.progress import latest_run
from itsel_ray.runs.provenance import ENVIRONMENTS, environments_table, trial_environments
from itsel_ray.runs.source_prompts import source_index
from itsel_ray.runs.storage import Storage
from itsel_ray.runs.trial_state import Recover, TrialRecord, read_stage

HEAD = ["stage", "role", "task", "source", "target", "seed", "status", "score", "best_step", "steps", "wall_s"]
TAIL = ["environment", "trial_dir", "best_prompt"]
PROMPT_COLUMNS = ["stage", "role", "task", "source", "seed", "step", "path", "is_best"]
RESULTS_DIR = "results"
# result.json keys that describe the run rather than a task metric
_NOT_METRICS = {"score", "step", "loss", "lr", "wall_s", "best_score", "best_step", "done"}


def collect_records(sweep, storage: Storage, *, recover: Recover | None = None) -> list[TrialRecord]:
    """Every planned trial's record; a trial the driver's last run gave up on (retries spent) while its folder
    still says running is failed."""
    index = source_index(sweep, storage).entries
    records = []
    for stage in STAGES:
        states = latest_run(storage, stage).states
        for r in read_stage(sweep, storage, plan_stage(sweep, stage), index=index, recover=recover):
            if r.status == "running" and states.get(r.trial.key) == "failed":
                r = TrialRecord(r.trial, "failed", r.result, r.key, r.note)
            records.append(r)
    return records


def _metrics(result: dict | None) -> dict[str, float]:
    out = {}
    for k, v in ((result or {}).get("best_metrics") or {}).items():
        name = k[5:] if k.startswith("eval_") else k
        if name not in _NOT_METRICS and isinstance(v, (int, float)) and not isinstance(v, bool):
            out[f"metric_{name}"] = float(v)
    return out


def results_table(records: list[TrialRecord], storage: Storage,
                  environments: dict[str, list[dict]] | None = None) -> pd.DataFrame:
    """One row per record; `environments` (trial key -> its recorded environments, `provenance`) fills the
    environment column: the fingerprint(s) the trial ran in, joined by "+" (empty when none was recorded)."""
    rows = []
    for r in records:
        t, done = r.trial, r.status == "done"
        res = r.result or {}
        envs = (environments or {}).get(t.key, [])
        rows.append({
            "stage": t.stage, "role": t.role, "task": t.task, "source": t.source, "target": t.target,
            "seed": t.seed, "status": r.status, "score": r.score,
            "best_step": res.get("best_step") if done else None,
            "steps": res.get("steps") if r.result else None,
            "wall_s": float(res["wall_s"]) if r.result and res.get("wall_s") is not None else math.nan,
            **(_metrics(res) if done else {}),
            "environment": "+".join(e["fingerprint"] for e in envs),
            "trial_dir": f"../{t.key}",
            "best_prompt": f"../{t.key}/{TrialFiles.BEST_PROMPT}" if done else "",
        })
    df = pd.DataFrame(rows)
    metric_cols = sorted(c for c in df.columns if c.startswith("metric_")) if rows else []
    df = df.reindex(columns=HEAD + metric_cols + TAIL)
    df["seed"] = df["seed"].astype("int64")
    for col in ("best_step", "steps"):
        df[col] = pd.array(df[col].tolist(), dtype="Int64")
    for col in ["score", "wall_s"] + metric_cols:
        df[col] = df[col].astype("float64")
    for col in ("stage", "role", "task", "source", "target", "status", "environment", "trial_dir", "best_prompt"):
        df[col] = df[col].fillna("").astype(str)
    return df


def prompts_table(records: list[TrialRecord], storage: Storage) -> pd.DataFrame:
    rows = []
    for r in records:
        if r.status != "done":
            continue
        t = r.trial
        base = {"stage": t.stage, "role": t.role, "task": t.task, "source": t.source, "seed": t.seed}
        for key in storage.list_files(f"{t.key}/{TrialFiles.PROMPTS}"):
            name = key.rsplit("/", 1)[-1]
            if name.startswith("step_") and name.endswith(".safetensors"):
                try:
                    step = int(name[5:-12])
                except ValueError:
                    continue
                rows.append({**base, "step": step, "path": f"../{key}", "is_best": False})
        rows.append({**base, "step": int(r.result.get("best_step") or 0),
                     "path": f"../{t.key}/{TrialFiles.BEST_PROMPT}", "is_best": True})
    df = pd.DataFrame(rows, columns=PROMPT_COLUMNS)
    return df.astype({"seed": "int64", "step": "int64", "is_best": "bool"})


def write_tables(sweep, storage: Storage, *, recover: Recover | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rebuild both tables from storage and write parquet + CSV atomically."""
    records = collect_records(sweep, storage, recover=recover)
    envs = {r.trial.key: trial_environments(storage, r.trial.key) for r in records if r.status == "done"}
    results, prompts = results_table(records, storage, envs), prompts_table(records, storage)
    for stem, df in (("results", results), ("prompts", prompts)):
        buf = io.BytesIO()
        df.to_parquet(buf, index=False)
        storage.write_bytes(f"{RESULTS_DIR}/{stem}.parquet", buf.getvalue())
        storage.write_bytes(f"{RESULTS_DIR}/{stem}.csv", df.to_csv(index=False).encode("utf-8"))
    storage.write_json(f"{RESULTS_DIR}/{ENVIRONMENTS}", environments_table(envs.values()))
    return results, prompts
