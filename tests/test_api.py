"""The Python API (itsel_ray/api.py): results as DataFrames and rankings on a written results folder, bad input as
ApiError; and docs/api.md's example run as written (slow: it runs a sweep)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import itsel_ray
from itsel_ray import api
from itsel_ray.analysis.synthetic import synthetic_study, write_sweep_folder
from itsel_ray.selection import SELECTORS

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"


@pytest.fixture(scope="module")
def sweep_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("store") / "syn"
    study = synthetic_study(n_sources=4, n_targets=2, seeds=(28, 52), steps=(100, 200), probe=True, seed=3)
    write_sweep_folder(study, root / "results", fmt="parquet")
    return root, study


def test_the_package_exports_the_api():
    assert itsel_ray.api is api


def test_load_results_reads_every_table(sweep_folder):
    root, study = sweep_folder
    for path in (root, root / "results"):
        results = api.load_results(path)
        assert results.root == root and results.results_dir == root / "results"
    assert len(results.results) == 4 * 3 + 2 * 2 + 4 * 2 * 2
    assert set(results.results.stage) == {"tune", "transfer"}
    assert list(results.model_tables) == ["probe"] and len(results.model_tables["probe"]) == 8
    assert results.analysis == {} and results.report is None  # not analysed yet
    assert results.evaluations.empty  # the written folder has no trial folders, only the tables
    assert api.load_results(root.parent, "syn").results.equals(results.results)


def test_a_target_prompt_is_found_by_task_seed_and_step(sweep_folder):
    results = api.load_results(sweep_folder[0])
    target = sweep_folder[1].targets[0]
    assert results.target_prompt(target).name == "step_000200.safetensors"
    assert "seed=28" in str(results.target_prompt(target))
    assert "seed=52" in str(results.target_prompt(target, seed=52, step=100))
    with pytest.raises(api.ApiError, match="no saved prompt of task 'nope'"):
        results.target_prompt("nope")


def test_rank_sources_matches_the_command(sweep_folder, capsys):
    from itsel_ray.rank import main

    results = api.load_results(sweep_folder[0])
    target = results.target_prompt(sweep_folder[1].targets[0])
    table = api.rank_sources(results.results_dir, target_prompt=target, selector="max", max_direction="symmetric")
    assert main(["--library", str(results.results_dir), "--target-prompt", str(target), "--selector", "max",
                 "--max-direction", "symmetric", "--format", "csv"]) == 0
    printed = pd.read_csv(__import__("io").StringIO(capsys.readouterr().out))
    assert list(printed.source) == list(table.source) and np.allclose(printed.score, table.score)
    assert list(table["rank"]) == [1, 2, 3, 4] and table.attrs["selector"] == "MAX"


def test_rank_sources_takes_arrays(sweep_folder):
    rng = np.random.default_rng(0)
    target = rng.standard_normal((5, 16)).astype(np.float32)
    library = {"near": target + 0.01, "far": -target, "other": rng.standard_normal((5, 16)).astype(np.float32)}
    table = api.rank_sources(library, target_prompt=[target, target + 0.001], selector="feature")
    assert list(table.source) == ["near", "other", "far"]
    sized = api.rank_sources(library, selector="size", sizes={"near": 10, "far": 1000, "other": 100})
    assert list(sized.source) == ["far", "other", "near"]


def test_bad_input_is_an_api_error(sweep_folder, tmp_path):
    with pytest.raises(api.ApiError, match="no results/ folder"):
        api.load_results(tmp_path)
    with pytest.raises(api.ApiError, match="unknown selector 'maxx'"):
        api.rank_sources(sweep_folder[0] / "results", selector="maxx")
    with pytest.raises(api.ApiError, match="give --target-prompt FILE"):
        api.rank_sources(sweep_folder[0] / "results", selector="max")
    with pytest.raises(api.ApiError, match=r"unknown option\(s\) \['max_dir'\]"):
        api.rank_sources(sweep_folder[0] / "results", selector="max", max_dir="x")


def test_tasks_and_selectors_as_tables():
    tasks = api.tasks()
    assert {"mnli", "syn_has0"} <= set(tasks.name) and tasks.set_index("name").train_size["cb"] == 250
    assert set(api.selectors().name) == set(SELECTORS.names())
    assert api.check_task("syn_has0").ok


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_the_doc_example_is_complete_python():
    blocks = python_blocks(DOC.read_text())
    assert len(blocks) == 3
    for block in blocks:
        compile(block, str(DOC), "exec")


@pytest.mark.slow
def test_the_documented_example_runs_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    try:
        for block in python_blocks(DOC.read_text()):
            exec(compile(block.replace("/tmp/itsel-api", str(tmp_path / "store")), str(DOC), "exec"), namespace)
    finally:
        if "mean-distance" in SELECTORS:
            SELECTORS.remove("mean-distance")
    results = namespace["results"]
    assert (results.results.status == "done").all() and not results.evaluations.empty
    assert "table3" in results.analysis and results.report.is_file()
    assert len(namespace["ranking"]) == 2 and len(namespace["mine"]) == 2
