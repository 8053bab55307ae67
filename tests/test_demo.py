"""A reduced offline demo, end to end as a user runs it: `python -m itsel_ray.sweep transfer` on a local Ray.

Same tasks, model and analysis as sweeps/demo.yaml, fewer tasks, seeds and steps, so it fits CI in a few minutes.
The full demo's planted-structure numbers come from benchmarks/demo_check.py.
"""

import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def reduced_demo(path: Path) -> Path:
    raw = yaml.safe_load((ROOT / "sweeps" / "demo.yaml").read_text())
    raw["name"] = "demo-reduced"
    raw["grid"] = {"sources": ["syn_has0", "syn_has2", "syn_has3"], "targets": ["syn_and01", "syn_cnt2"],
                   "source_seeds": [42], "target_seeds": [28]}
    raw["trial"]["train"].update({"max_steps": 20, "eval_every": 10, "save_every": 10, "max_eval_examples": 100})
    raw["stages"]["source"]["train"] = {"max_steps": 40, "eval_every": 20, "save_every": 20}
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.mark.slow
def test_reduced_demo_runs_tune_transfer_and_analysis(tmp_path):
    sweep = reduced_demo(tmp_path / "demo-reduced.yaml")
    storage = tmp_path / "runs"
    cmd = [sys.executable, "-m", "itsel_ray.sweep", "transfer", "--sweep", str(sweep), "--storage", str(storage),
           "--no-dashboard", "--quiet"]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    root = storage / "demo-reduced"

    results = pd.read_csv(root / "results" / "results.csv")
    assert len(results) == 3 + 2 + 3 * 2  # tune (sources + targets) + transfer
    assert set(results.status) == {"done"}
    assert all(math.isfinite(s) and 0 <= s <= 100 for s in results.score)
    assert all((root / "results" / p).is_file() for p in results.best_prompt)  # relative to the results folder
    prompts = pd.read_csv(root / "results" / "prompts.csv")
    assert {0, 10, 20} <= set(prompts[prompts.role == "target"].step)

    for name in ("probe", "logme"):  # the model-based selectors' inputs, one score per (target, source)
        table = pd.read_csv(root / "results" / f"{name}.csv")
        assert len(table) == 3 * 2 and table.score.notna().all(), table

    analysis = root / "analysis"
    report = (analysis / "report.md").read_text()
    for name in ("table3", "table4", "table7", "table8"):
        assert (analysis / f"{name}.csv").is_file() and (analysis / f"{name}.md").is_file()
        assert f"{name}.csv" in report
    figures = sorted(p.name for p in (analysis / "figures").glob("*.png"))
    assert {"fig3_relative_transfer.png", "fig5_ndcg_by_step.png", "heatmap_transfer.png"} <= set(figures)
    assert all(f"figures/{f}" in report for f in figures)
    table3 = pd.read_csv(analysis / "table3_all_metrics.csv").set_index("selector")
    assert {"RANDOM", "SIZE", "FEATURE", "MAX", "PROBE", "LOGME"} <= set(table3.index)
    assert str(analysis / "report.md") in out.stdout  # the command says where the report landed
