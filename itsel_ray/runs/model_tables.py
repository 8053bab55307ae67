"""Selector inputs that need the frozen model: every source prompt scored on every target, one map call per target.

Each table is <sweep>/results/<name>.{parquet,csv} with columns (target, source, score, examples, loss, error),
written before the analysis runs, which reads it like any other results table: `probe` (zero-shot loss of the
target's objective, `itsel_ray.engine.zero_shot`) and `logme` (LogME of the frozen encoder's pooled features under
each prompt against the target's labels, `itsel_ray.engine.features`). A target the scorer cannot handle gets NaN
scores and the reason in `error` (missing, never 0). The engine functions are named here and imported where the map
runs them; the map itself is injected (the builtin map, or Ray tasks on a GPU share), so nothing here imports Ray.
"""

from __future__ import annotations

import importlib
import io
from dataclasses import dataclass

import numpy as np
import pandas as pd

from itsel_ray.runs.source_prompts import persist_source_prompts
from itsel_ray.runs.storage import Storage
from itsel_ray.runs.tables import RESULTS_DIR

COLUMNS = ["target", "source", "score", "examples", "loss", "error"]
MODEL_TABLES = {  # table name -> engine function
    "probe": "itsel_ray.engine.zero_shot:probe_prompts",
    "logme": "itsel_ray.engine.features:logme_prompts",
}


@dataclass(frozen=True)
class ScoreTarget:
    """Score all source prompts on one target; the prompts travel with the function, once per map call."""

    function: str  # "module:function", (cfg, prompts, *, max_examples) -> ({source: score}, rows used)
    prompts: dict[str, np.ndarray]
    max_examples: int

    def __call__(self, cfg) -> list[dict]:
        module, name = self.function.split(":")
        fn = getattr(importlib.import_module(module), name)
        try:
            scores, n = fn(cfg, self.prompts, max_examples=self.max_examples)
        except Exception as err:  # e.g. LogME on free-text targets: this target unscored, with the reason
            return [{"target": cfg.task, "source": s, "score": float("nan"), "examples": 0, "loss": cfg.train.loss,
                     "error": f"{type(err).__name__}: {err}"} for s in self.prompts]
        return [{"target": cfg.task, "source": s, "score": v, "examples": n, "loss": cfg.train.loss, "error": ""}
                for s, v in scores.items()]


def write_model_table(name: str, sweep, storage: Storage, map_fn=map, *, max_examples: int = 256) -> pd.DataFrame:
    """Score every source's best prompt on every target's training sample and write table `name`."""
    prompts, _ = persist_source_prompts(sweep, storage)
    seed = sweep.grid.target_seeds[0]
    configs = [sweep.trial_config("transfer", task=t, seed=seed) for t in sweep.grid.targets]
    rows = [row for chunk in map_fn(ScoreTarget(MODEL_TABLES[name], prompts, max_examples), configs) for row in chunk]
    table = pd.DataFrame(rows, columns=COLUMNS)
    buf = io.BytesIO()
    table.to_parquet(buf, index=False)
    storage.write_bytes(f"{RESULTS_DIR}/{name}.parquet", buf.getvalue())
    storage.write_bytes(f"{RESULTS_DIR}/{name}.csv", table.to_csv(index=False).encode("utf-8"))
    return table
