"""Reading a sweep's results folder and a ground-truth CSV into a Study; bad input names file and field."""

import numpy as np
import pandas as pd
import pytest

from itsel_ray.analysis import MEAN_SEED, PAPER_TASKS, InputError, TaskMeta, study_from_csv, study_from_sweep
from itsel_ray.analysis.meta import canonical_name, resolve_metadata
from itsel_ray.analysis.synthetic import synthetic_study, write_sweep_folder
from itsel_ray.artifacts import save_prompt


@pytest.fixture(scope="module")
def small():
    return synthetic_study(n_sources=5, n_targets=3, seeds=(28, 52), steps=(10, 20), tokens=4, dim=6, missing=2)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_sweep_folder_round_trip(small, tmp_path, fmt):
    write_sweep_folder(small, tmp_path, fmt=fmt)
    study = study_from_sweep(tmp_path, metadata=small.meta)
    assert study.sources == small.sources and study.targets == small.targets and study.seeds == (28, 52)
    np.testing.assert_array_equal(np.isnan(study.transfer), np.isnan(small.transfer))
    np.testing.assert_allclose(study.transfer, small.transfer, equal_nan=True)
    np.testing.assert_allclose(study.baseline, small.baseline)
    np.testing.assert_array_equal(study.source_prompts, small.source_prompts)
    assert study.steps == (10, 20)
    for key, value in small.target_prompts.items():
        np.testing.assert_array_equal(study.target_prompts[key], value)
    assert any("2 of 30 transfer scores are missing" in n for n in study.notes)


def _results(rows):
    base = {"stage": "tune", "role": "source", "task": "mnli", "source": None, "target": None, "seed": 42,
            "status": "done", "score": 80.0, "best_step": 5, "steps": 10, "wall_s": 1.0, "trial_dir": "",
            "best_prompt": ""}
    return pd.DataFrame([{**base, **r} for r in rows])


def _transfer(source, target, seed, score, status="done"):
    return {"stage": "transfer", "role": "transfer", "task": target, "source": source, "target": target,
            "seed": seed, "status": status, "score": score}


META = {"mnli": PAPER_TASKS["mnli"], "qqp": PAPER_TASKS["qqp"], "cb": PAPER_TASKS["cb"]}


def test_best_source_prompt_is_best_score_ties_to_smallest_seed(tmp_path):
    for name, seed in (("mnli_150", 150), ("mnli_42", 42), ("qqp_386", 386)):
        save_prompt(tmp_path / f"{name}.npy", np.full((2, 3), seed, dtype=np.float32))
    rows = [
        {"task": "mnli", "seed": 150, "score": 81.0, "best_prompt": "mnli_150.npy"},
        {"task": "mnli", "seed": 42, "score": 81.0, "best_prompt": "mnli_42.npy"},   # tie: seed 42 wins
        {"task": "mnli", "seed": 386, "score": 70.0, "status": "failed"},
        {"task": "qqp", "seed": 386, "score": 75.0, "best_prompt": "qqp_386.npy"},
        {"stage": "tune", "role": "target", "task": "cb", "target": "cb", "seed": 28, "score": 85.0},
        _transfer("mnli", "cb", 28, 86.0), _transfer("qqp", "cb", 28, np.nan, status="failed"),
    ]
    _results(rows).to_csv(tmp_path / "results.csv", index=False)
    study = study_from_sweep(tmp_path, metadata=META)
    assert study.source_prompts[:, 0, 0].tolist() == [42.0, 386.0]
    assert np.isnan(study.transfer[1, 0, 0]) and study.transfer[0, 0, 0] == 86.0
    assert study.baseline.tolist() == [[85.0]]
    assert not study.has_prompts  # no target snapshots
    assert any("no target prompt snapshots" in n for n in study.notes)


def test_missing_column_names_file_and_column(tmp_path):
    _results([_transfer("mnli", "cb", 28, 1.0)]).drop(columns=["status"]).to_csv(tmp_path / "results.csv")
    with pytest.raises(InputError, match=r"results\.csv.*status"):
        study_from_sweep(tmp_path, metadata=META)


def test_bad_status_value_is_named(tmp_path):
    _results([_transfer("mnli", "cb", 28, 1.0, status="finished")]).to_csv(tmp_path / "results.csv", index=False)
    with pytest.raises(InputError, match=r"'status'.*finished.*done"):
        study_from_sweep(tmp_path, metadata=META)


def test_duplicate_finished_runs_are_an_error(tmp_path):
    _results([_transfer("mnli", "cb", 28, 1.0), _transfer("mnli", "cb", 28, 2.0)]).to_csv(
        tmp_path / "results.csv", index=False)
    with pytest.raises(InputError, match="2 finished transfer runs"):
        study_from_sweep(tmp_path, metadata=META)


def test_missing_prompt_file_is_named(tmp_path):
    rows = [{"task": "mnli", "seed": 42, "best_prompt": "nowhere/mnli.safetensors"}, _transfer("mnli", "cb", 28, 1.0)]
    _results(rows).to_csv(tmp_path / "results.csv", index=False)
    with pytest.raises(ValueError, match="mnli.safetensors"):
        study_from_sweep(tmp_path, metadata=META)


def test_not_a_results_folder(tmp_path):
    with pytest.raises(InputError, match="results.parquet or results.csv"):
        study_from_sweep(tmp_path)


def test_ground_truth_csv_with_per_seed_columns(tmp_path):
    path = tmp_path / "gt.csv"
    path.write_text(
        "source,cb,cb_s28,cb_s52,copa,copa_s28,copa_s52\n"
        "prompt-text,80,79,81,60,58,62\n"
        "MNLI,82,81,83,61,,63\n"
        "superglue-record,84,84,84,64,63,65\n"
    )
    study = study_from_csv(path, metadata=PAPER_TASKS)
    assert study.sources == ("mnli", "record") and study.targets == ("copa", "cb") and study.seeds == (28, 52)
    assert study.transfer[0, 1].tolist() == [81.0, 83.0]   # mnli -> cb per seed
    assert np.isnan(study.transfer[0, 0, 0])               # empty cell -> missing
    assert study.baseline.tolist() == [[58.0, 62.0], [79.0, 81.0]]


def test_ground_truth_csv_means_only(tmp_path):
    path = tmp_path / "gt.csv"
    path.write_text("source,cb,cb_std\nprompt-text,80,1\nprompt-abstract,70,1\nqqp,82,0.5\n")
    study = study_from_csv(path, metadata=PAPER_TASKS)
    assert study.seeds == (MEAN_SEED,) and study.sources == ("qqp",)
    assert study.transfer_std.tolist() == [[0.5]]


def test_ground_truth_csv_errors(tmp_path):
    path = tmp_path / "gt.csv"
    path.write_text("source,cb\nprompt-text,80\nqqp,eighty\n")
    with pytest.raises(InputError, match=r"row 'qqp', column 'cb'"):
        study_from_csv(path, metadata=PAPER_TASKS)
    path.write_text("source,cb\nqqp,80\n")
    with pytest.raises(InputError, match="no baseline row 'prompt-text'"):
        study_from_csv(path, metadata=PAPER_TASKS)
    path.write_text("source,cb\nprompt-text,80\nmystery,80\n")
    with pytest.raises(ValueError, match="mystery"):
        study_from_csv(path, metadata=PAPER_TASKS)
    with pytest.raises(InputError, match="not found"):
        study_from_csv(tmp_path / "absent.csv")


def test_metadata_sources():
    assert canonical_name("SuperGLUE-RECORD") == "record" and canonical_name("WINGRANDE") == "winogrande"
    custom = {"a": TaskMeta(10, "qa", "QA")}
    assert resolve_metadata(["a"], custom) == custom
    with pytest.raises(ValueError, match="no metadata for task"):
        resolve_metadata(["b"], custom)
    with pytest.raises(ValueError, match="category"):
        TaskMeta(10, "regression")
