"""The PROBE selector's input: every source prompt scored zero-shot on every target, one Ray task per target.

Written to <sweep>/results/probe.{parquet,csv} (target, source, score, examples, loss) before the analysis runs,
which reads it like any other results table. The scores come from `itsel_ray.engine.zero_shot` (no Ray there).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pandas as pd

from itsel_ray.sweep.results import RESULTS_DIR
from itsel_ray.sweep.sources import persist_source_prompts
from itsel_ray.sweep.storage import Storage

PROBE_TABLE = "probe"


@dataclass(frozen=True)
class ProbeTask:
    """Probe all source prompts on one target; the prompts travel with the function, once per map call."""

    prompts: dict[str, np.ndarray]
    max_examples: int

    def __call__(self, cfg) -> list[dict]:
        from itsel_ray.engine.zero_shot import probe_prompts

        scores, n = probe_prompts(cfg, self.prompts, max_examples=self.max_examples)
        return [{"target": cfg.task, "source": s, "score": v, "examples": n, "loss": cfg.train.loss}
                for s, v in scores.items()]


def write_probe_table(sweep, storage: Storage, map_fn=map, *, max_examples: int = 256) -> pd.DataFrame:
    """Score every source's best prompt on every target's training sample and write the probe table."""
    prompts, _ = persist_source_prompts(sweep, storage)
    seed = sweep.grid.target_seeds[0]
    configs = [sweep.trial_config("transfer", task=t, seed=seed) for t in sweep.grid.targets]
    rows = [row for chunk in map_fn(ProbeTask(prompts, max_examples), configs) for row in chunk]
    table = pd.DataFrame(rows, columns=["target", "source", "score", "examples", "loss"])
    buf = io.BytesIO()
    table.to_parquet(buf, index=False)
    storage.write_bytes(f"{RESULTS_DIR}/{PROBE_TABLE}.parquet", buf.getvalue())
    storage.write_bytes(f"{RESULTS_DIR}/{PROBE_TABLE}.csv", table.to_csv(index=False).encode("utf-8"))
    return table
