"""The analysis stage: build a Study from a sweep's results (or a ground-truth CSV), score every selector on every
(target, seed, step) cell, and write the paper's tables, figures and a report.

Entry point: `run_analysis(study, cfg, out_dir, map_fn=map)`; `analyze_folder` does the loading too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from itsel_ray.analysis.cells import Cell, CellContext, CellResult, CellRunner, evaluate_cell
from itsel_ray.analysis.analysis_file import (
    AnalysisConfig,
    RankingConfig,
    SelectorEntry,
    SembConfig,
    analysis_config_from_dict,
    builtin_config,
    load_analysis_config,
)
from itsel_ray.analysis.from_csv import study_from_csv
from itsel_ray.analysis.from_sweep import study_from_sweep
from itsel_ray.analysis.inputs import InputError
from itsel_ray.analysis.meta import PAPER_TASKS, TaskMeta
from itsel_ray.analysis.report import AnalysisResult
from itsel_ray.analysis.run import MapFn, run_analysis
from itsel_ray.analysis.study import MEAN_SEED, Study


def analyze_folder(results_dir: str | Path, out_dir: str | Path, cfg: AnalysisConfig | None = None,
                   map_fn: MapFn = map, *, metadata: Mapping[str, TaskMeta] | None = None) -> AnalysisResult:
    """Load a sweep's results folder and run the analysis on it (the sweep's `analyze` stage in one call).

    Args:
        results_dir: holds results.parquet|csv and prompts.parquet|csv (see `inputs.py`).
        out_dir: where the report goes.
        cfg: the analysis definition (default: analysis/paper.yaml).
        map_fn: builtin `map`, or `itsel_ray.sweep.parallel.ray_map` to fan the cells out as Ray tasks.
    """
    cfg = cfg or load_analysis_config(builtin_config("paper"))
    study = study_from_sweep(results_dir, metadata=metadata, steps=cfg.steps)
    return run_analysis(study, cfg, out_dir, map_fn)


__all__ = [
    "AnalysisConfig", "AnalysisResult", "Cell", "CellContext", "CellResult", "CellRunner", "InputError", "MEAN_SEED",
    "MapFn", "PAPER_TASKS", "RankingConfig", "SelectorEntry", "SembConfig", "Study", "TaskMeta",
    "analysis_config_from_dict", "analyze_folder", "builtin_config", "evaluate_cell", "load_analysis_config",
    "run_analysis", "study_from_csv", "study_from_sweep",
]
