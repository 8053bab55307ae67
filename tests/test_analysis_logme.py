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
