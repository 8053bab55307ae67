"""Bad input to `python -m itsel_ray.analyze` is refused before any work, with exit status 2 and a message that
names the file and the field; an analysis file with an unknown name fails when it is loaded."""

import dataclasses
import math
import shutil

import numpy as np
import pandas as pd
import pytest

from itsel_ray import analyze
from itsel_ray.analysis import load_analysis_config
from itsel_ray.analysis.synthetic import synthetic_study, write_sweep_folder
from itsel_ray.artifacts import save_prompt
from itsel_ray.schema import ConfigError

ARGS = ["--selectors", "random", "size", "--config", "analysis/demo.yaml", "--resamples", "200", "--reference",
        "size"]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    study = synthetic_study(n_sources=3, n_targets=2, seeds=(28,), steps=(10,), tokens=3, dim=4)
    return write_sweep_folder(study, tmp_path_factory.mktemp("sweep"))


def copy(results, tmp_path):
    return shutil.copytree(results, tmp_path / "results")


def run(capsys, *args):
    code = analyze.main([*args, *ARGS])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_the_good_folder_runs(results, tmp_path, capsys):
    code, out, err = run(capsys, "--results", str(results), "--out", str(tmp_path / "out"))
    assert code == 0 and "WARNING" not in err


@pytest.mark.parametrize("value,match", [
    (250.0, r"row \d+, column 'score': 250.0 is outside the score range \[0, 100\] \(task mnli is scored by accuracy"),
    (-3.0, r"row \d+, column 'score': -3.0 is outside the score range \[0, 100\]"),
    ("inf", r"column 'score': inf is outside the score range"),
    ("", r"is done but its 'score' \(the trial's best_score\) is 'nan'; a finished trial needs a number"),
])
def test_results_scores_out_of_range_or_missing_are_refused(results, tmp_path, capsys, value, match):
    folder = copy(results, tmp_path)
    table = pd.read_csv(folder / "results.csv")
    row = table.index[(table.stage == "tune") & (table.task == "mnli")][0]
    table["score"] = table["score"].astype(object)
    table.loc[row, "score"] = value
    table.to_csv(folder / "results.csv", index=False)
    code, out, err = run(capsys, "--results", str(folder), "--out", str(tmp_path / "out"))
    assert code == 2 and "results.csv" in err and "Traceback" not in err
    assert pytest.importorskip("re").search(match, err), err
    assert not (tmp_path / "out").exists()  # refused before any work


def test_a_correlation_task_may_score_below_zero(results, tmp_path, capsys):
    folder = copy(results, tmp_path)
    table = pd.read_csv(folder / "results.csv")
    # boolq is an accuracy target; cola's MCC may be negative, and is on the same scale otherwise
    table.loc[(table.stage == "transfer") & (table.target == "cola") & (table.source == "mnli"), "score"] = -12.5
    table.to_csv(folder / "results.csv", index=False)
    assert run(capsys, "--results", str(folder), "--out", str(tmp_path / "out"))[0] == 0


@pytest.mark.parametrize("broken,match", [
    (lambda p: p.write_bytes(p.read_bytes()[:40]), "truncated"),
    (lambda p: p.write_bytes(b"garbage"), "not even a safetensors header length|not a safetensors file"),
    (lambda p: save_prompt(p, np.full((3, 4), np.nan, np.float32)), "NaN or infinite values"),
    (lambda p: save_prompt(p, np.zeros((3, 4), np.float32)), "all zeros"),
])
@pytest.mark.parametrize("which", ["target snapshot", "source best prompt"])
def test_bad_prompt_files_are_refused_naming_the_file(results, tmp_path, capsys, broken, match, which):
    folder = copy(results, tmp_path)
    prompts = pd.read_csv(folder / "prompts.csv")
    role = "target" if which == "target snapshot" else "source"
    path = folder / prompts[prompts.role == role].path.iloc[0]
    broken(path)
    code, out, err = run(capsys, "--results", str(folder), "--out", str(tmp_path / "out"))
    assert code == 2 and str(path) in err and "Traceback" not in err
    assert pytest.importorskip("re").search(match, err), err


TABLE7_LIKE = "source,boolq,boolq_std,cola\nprompt-text,78.7,0.2,60.0\nmnli,{mnli},0.3,55.0\nqqp,80.0,0.1,{qqp}\n"


@pytest.mark.parametrize("mnli,qqp,match", [
    ("-4", "50", r"row 'mnli', column 'boolq': -4.0 is outside the score range \[0, 100\]"),
    ("101", "50", r"row 'mnli', column 'boolq': 101.0 is outside"),
    ("1e308", "50", r"row 'mnli', column 'boolq': 1e\+308 is outside"),
    ("inf", "50", r"row 'mnli', column 'boolq': inf is outside"),
    ("nan", "50", r"row 'mnli', column 'boolq': 'nan' is not a number \(leave the cell empty"),
    ("80", "-101", r"row 'qqp', column 'cola': -101.0 is outside the score range \[-100, 100\] \(task cola is "
                   r"scored by mcc"),
])
def test_ground_truth_values_out_of_range_are_refused(tmp_path, capsys, mnli, qqp, match):
    path = tmp_path / "gt.csv"
    path.write_text(TABLE7_LIKE.format(mnli=mnli, qqp=qqp))
    code, out, err = run(capsys, "--ground-truth", str(path), "--out", str(tmp_path / "out"))
    assert code == 2 and "gt.csv" in err and "Traceback" not in err
    assert pytest.importorskip("re").search(match, err), err


def test_a_bad_std_cell_is_refused(tmp_path, capsys):
    path = tmp_path / "gt.csv"
    path.write_text(TABLE7_LIKE.format(mnli="80", qqp="50").replace("0.3", "-0.3"))
    code, _, err = run(capsys, "--ground-truth", str(path), "--out", str(tmp_path / "out"))
    assert code == 2 and "row 'mnli', column 'boolq_std': '-0.3' is not a standard deviation" in err


def test_an_empty_cell_is_a_missing_score_and_a_0_1_scale_is_a_loud_warning(tmp_path, capsys):
    path = tmp_path / "gt.csv"
    path.write_text("source,boolq,cola\nprompt-text,0.787,0.6\nmnli,,0.55\nqqp,0.80,0.5\nqnli,0.7,0.52\n")
    code, out, err = run(capsys, "--ground-truth", str(path), "--out", str(tmp_path / "out"))
    assert code == 0
    assert "WARNING: every transfer score lies in [0, 1]" in err and "0-100 scale" in err
    assert "1 of 6 transfer scores are empty (missing)" in out
    assert "every transfer score lies in [0, 1]" in (tmp_path / "out" / "report.md").read_text()


# ---------------------------------------------------------------------------- unknown names in the YAML

BASE = dataclasses.asdict(load_analysis_config("analysis/paper.yaml"))


@pytest.mark.parametrize("key,value,match", [
    ("selectors", ["random", "maximum"], "unknown selector 'maximum'"),
    ("selectors", [{"selector": "nearest", "label": "N"}], "unknown selector 'nearest'"),
    ("selectors", [{"selector": "fusion", "options": {"fusion": ["max", "bogus"]}}], "unknown selector 'bogus'"),
    ("metrics", ["ndcg", "precision@3"], "unknown ranking metric 'precision'"),
    ("metrics", ["regret"], "needs a cutoff"),
    ("step_selectors", ["max", "maxx"], r"step_selectors: \['maxx'\]"),
    ("table4_selectors", ["sizee"], r"table4_selectors: \['sizee'\]"),
    ("options", {"fusion": ["max", "sizes"]}, "unknown selector 'sizes'"),
    ("ranking", {"gain": "cubic"}, "unknown gain 'cubic'"),
    ("uncertainty", {"reference": "featur"}, "uncertainty.reference: 'featur'"),
    ("uncertainty", {"test": "t-test"}, "unknown paired test 't-test'"),
    ("uncertainty", {"interval": "bca"}, "unknown interval method 'bca'"),
])
def test_every_key_naming_a_selector_or_metric_is_checked_at_load_time(tmp_path, key, value, match):
    import yaml

    data = {**BASE, key: value}
    if key == "options":
        data["selectors"] = ["random", "max"]  # FUSION's parts are checked even when FUSION is not run
        data["step_selectors"], data["table4_selectors"] = ["max"], ["max"]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=match) as err:
        load_analysis_config(path)
    assert "bad.yaml" in str(err.value)


def test_logme_is_in_both_shipped_analyses():
    for name in ("paper", "demo"):
        cfg = load_analysis_config(f"analysis/{name}.yaml")
        assert "LOGME" in [label for label, _, _ in cfg.resolved_selectors()]
        assert not math.isnan(cfg.uncertainty.level)
