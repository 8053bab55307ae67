"""Selector inputs that need the frozen model: every source prompt scored on every target, one map call per target.

Each table is <sweep>/results/<name>.{parquet,csv} with columns (target, source, score, examples, loss, error),
written before the analysis runs, which reads it like any other results table. One table per model-backed input
(`itsel_ray.selection.MODEL_INPUTS`: probe, logme, ...) that the sweep's analysis definition needs, computed from
the sweep engine's readout of the frozen model (`Engine.readout`). A target the input cannot handle gets NaN scores
and the reason in `error` (missing, never 0). The map itself is injected (the builtin map, or Ray tasks on a GPU
share), so nothing here imports Ray or torch.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pandas as pd

from itsel_ray.runs.source_prompts import persist_source_prompts
from itsel_ray.runs.storage import Storage
from itsel_ray.runs.tables import RESULTS_DIR

COLUMNS = ["target", "source", "score", "examples", "loss", "error"]


def needed_model_inputs(analysis_cfg) -> list[str]:
    """The model-backed inputs the analysis definition's selectors read (FUSION's parts included), in order."""
    from itsel_ray.selection import MODEL_INPUTS

    needs = {r for _, selector, opts in analysis_cfg.resolved_selectors() for r in selector.requirements(opts)}
    return [name for name in MODEL_INPUTS.names() if name in needs]


@dataclass(frozen=True)
class ScoreTarget:
    """Score all source prompts on one target; the prompts travel with the function, once per map call."""

    engine: str  # the sweep's engine name, resolved where the map runs it
    name: str  # the model-backed input
    prompts: dict[str, np.ndarray]
    max_examples: int | None = None  # None: the input's own default

    def __call__(self, cfg) -> list[dict]:
        from itsel_ray.engine import get_engine
        from itsel_ray.selection import MODEL_INPUTS

        spec = MODEL_INPUTS.get(self.name)
        try:
            readout = get_engine(self.engine).readout(cfg, self.prompts,
                                                      max_examples=self.max_examples or spec.examples)
            scores, n = spec.scores(readout), readout.rows
        except Exception as err:  # e.g. LogME on free-text targets: this target unscored, with the reason
            return [{"target": cfg.task, "source": s, "score": float("nan"), "examples": 0, "loss": cfg.train.loss,
                     "error": f"{type(err).__name__}: {err}"} for s in self.prompts]
        return [{"target": cfg.task, "source": s, "score": scores.get(s, float("nan")), "examples": n,
                 "loss": cfg.train.loss, "error": ""} for s in self.prompts]


def write_model_table(name: str, sweep, storage: Storage, map_fn=map, *, max_examples: int | None = None
                      ) -> pd.DataFrame:
    """Score every source's best prompt on every target's training sample with input `name`; write its table."""
    prompts, _ = persist_source_prompts(sweep, storage)
    seed = sweep.grid.target_seeds[0]
    configs = [sweep.trial_config("transfer", task=t, seed=seed) for t in sweep.grid.targets]
    score = ScoreTarget(sweep.spec.engine, name, prompts, max_examples)
    rows = [row for chunk in map_fn(score, configs) for row in chunk]
    table = pd.DataFrame(rows, columns=COLUMNS)
    buf = io.BytesIO()
    table.to_parquet(buf, index=False)
    storage.write_bytes(f"{RESULTS_DIR}/{name}.parquet", buf.getvalue())
    storage.write_bytes(f"{RESULTS_DIR}/{name}.csv", table.to_csv(index=False).encode("utf-8"))
    return table
