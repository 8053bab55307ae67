"""LOGME in the analysis: the logme table is read like the probe table and LOGME is scored and reported; a bad
table names the file and column."""

import numpy as np
import pandas as pd
import pytest

from itsel_ray.analysis import InputError, analysis_config_from_dict, run_analysis, study_from_sweep
from itsel_ray.analysis.synthetic import synthetic_study, write_sweep_folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    study = synthetic_study(n_sources=4, n_targets=2, seeds=(28, 52), steps=(10,), tokens=2, dim=3, logme=True)
    return study, write_sweep_folder(study, tmp_path_factory.mktemp("sweep"))


def test_logme_table_is_read_scored_and_reported(folder, tmp_path):
    study, path = folder
    read = study_from_sweep(path)
    np.testing.assert_allclose(read.model_scores["logme"], study.model_scores["logme"])
    assert "probe" not in read.model_scores
    cfg = analysis_config_from_dict({"selectors": ["random", "logme"], "metrics": ["ndcg", "regret@1"],
                                     "table4_selectors": ["logme"], "step_selectors": [], "groups": [],
                                     "uncertainty": {"resamples": 200, "reference": "logme"}})
    result = run_analysis(read, cfg, tmp_path / "out")
    t3 = pd.read_csv(tmp_path / "out" / "table3.csv", index_col=0)
    assert list(t3.index) == ["RANDOM", "LOGME"] and t3.loc["LOGME", "ALL nDCG cells"] == 4
    tidy = result.tidy
    row = tidy[(tidy.selector == "LOGME") & (tidy.target == study.targets[0]) & (tidy.seed == 28)].iloc[0]
    best = study.sources[int(np.argmax(study.model_scores["logme"][0]))]
    truth = study.transfer[:, 0, 0]
    assert row["regret@1"] == pytest.approx((truth.max() - truth[study.sources.index(best)]) / truth.max() * 100)
    assert "- logme: LogME scores of the frozen model's features" in result.report.read_text()
    assert "for 8 of 8 (target, source) pairs" in result.report.read_text()


def test_a_bad_logme_table_names_the_file_and_column(folder, tmp_path):
    import shutil

    _, path = folder
    copy = shutil.copytree(path, tmp_path / "results")
    table = pd.read_csv(copy / "logme.csv")
    table["score"] = table["score"].astype(object)
    table.loc[1, "score"] = "high"
    table.to_csv(copy / "logme.csv", index=False)
    with pytest.raises(InputError, match=r"logme\.csv: column 'score' must hold numbers; row 1 has 'high'"):
        study_from_sweep(copy)


def test_a_target_the_scorer_failed_on_is_unscored_with_its_reason(folder, tmp_path):
    import shutil

    study, path = folder
    copy = shutil.copytree(path, tmp_path / "results")
    table = pd.read_csv(copy / "logme.csv")
    failed = table["target"] == study.targets[1]
    table.loc[failed, "score"] = np.nan
    table["error"] = np.where(failed, "ZeroDivisionError: float division by zero", "")
    table.to_csv(copy / "logme.csv", index=False)
    read = study_from_sweep(copy)
    logme = read.model_scores["logme"]
    assert np.isnan(logme[1]).all() and np.isfinite(logme[0]).all()
    assert any(f"LOGME has no score for target {study.targets[1]} (4 sources): ZeroDivisionError" in n
               for n in read.notes)
    cfg = analysis_config_from_dict({"selectors": ["random", "logme"], "metrics": ["ndcg"], "step_selectors": [],
                                     "table4_selectors": [], "groups": [], "uncertainty": {"resamples": 200}})
    result = run_analysis(read, cfg, tmp_path / "out")
    logme_rows = result.tidy[result.tidy.selector == "LOGME"]
    assert (logme_rows.status == "ok").sum() == 2 and (logme_rows.status == "missing").sum() == 2
    assert "ZeroDivisionError" in result.report.read_text()


def test_the_model_table_leaves_a_failing_target_unscored_and_goes_on(monkeypatch):
    import types

    import itsel_ray.engine as engines
    from itsel_ray.runs import model_tables

    class Readout:
        rows = 16

        def __init__(self, task, prompts):
            self.task, self.prompts = task, prompts

        def losses(self):
            if self.task == "bad":  # the error a scorer raised on one target (LogME's N < D division, before)
                return {s: 1.0 / 0.0 for s in self.prompts}
            return {s: -float(i) for i, s in enumerate(self.prompts)}

    engine = types.SimpleNamespace(readout=lambda cfg, prompts, *, max_examples: Readout(cfg.task, prompts))
    monkeypatch.setattr(engines, "get_engine", lambda name: engine)
    fn = model_tables.ScoreTarget("t5", "probe", {"a": np.zeros((2, 2)), "b": np.zeros((2, 2))}, 16)
    cfg = lambda task: types.SimpleNamespace(task=task, train=types.SimpleNamespace(loss="label"))  # noqa: E731
    rows = [row for task in ("good", "bad") for row in fn(cfg(task))]
    bad = [r for r in rows if r["target"] == "bad"]
    assert [r["score"] for r in rows if r["target"] == "good"] == [0.0, 1.0]
    assert all(np.isnan(r["score"]) and r["error"] == "ZeroDivisionError: float division by zero" for r in bad)
