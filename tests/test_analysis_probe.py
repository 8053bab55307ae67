"""PROBE in the analysis: the probe table is read and aligned with the study, a bad one names file and column, a
study without one skips PROBE with a note, and PROBE's metrics, missing scores and Table 4 rows are as worked out
by hand."""

import math

import numpy as np
import pandas as pd
import pytest

from itsel_ray import analyze
from itsel_ray.analysis import (
    PAPER_TASKS,
    InputError,
    Study,
    analysis_config_from_dict,
    run_analysis,
    study_from_csv,
    study_from_sweep,
)
from itsel_ray.analysis.cells import ALL, CellRunner
from itsel_ray.analysis.run import build_context, collect
from itsel_ray.analysis.synthetic import synthetic_study, write_sweep_folder

# ------------------------------------------------------------------------------------------ reading the table


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A results folder of 3 sources (mnli, qqp, qnli) x 2 targets (boolq, cola), without a probe table."""
    small = synthetic_study(n_sources=3, n_targets=2, seeds=(28,), steps=(10,), tokens=2, dim=3)
    return small, write_sweep_folder(small, tmp_path_factory.mktemp("sweep"))


def _with_probe(src, dst, table: pd.DataFrame | str, fmt="csv"):
    """A copy of results folder `src` in `dst` with the given probe table."""
    import shutil

    shutil.copytree(src, dst)
    if isinstance(table, str):
        (dst / "probe.csv").write_text(table)
    elif fmt == "parquet":
        table.to_parquet(dst / "probe.parquet", index=False)
    else:
        table.to_csv(dst / "probe.csv", index=False)
    return dst


# rows in no particular order; (cola, qqp) has no row, (boolq, qqp) no score, "ghost" is not a study target
PROBE_ROWS = pd.DataFrame({
    "target": ["cola", "boolq", "boolq", "cola", "boolq", "ghost"],
    "source": ["qnli", "mnli", "qqp", "mnli", "qnli", "mnli"],
    "score": [-0.3, -0.5, None, -0.9, -0.2, -0.1],
    "examples": 64, "loss": "label",
})


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_probe_table_is_aligned_with_the_study(folder, tmp_path, fmt):
    small, src = folder
    study = study_from_sweep(_with_probe(src, tmp_path / "r", PROBE_ROWS, fmt), metadata=small.meta)
    assert study.targets == ("boolq", "cola") and study.sources == ("mnli", "qqp", "qnli")
    expected = np.array([[-0.5, np.nan, -0.2],    # boolq: mnli, qqp (no score), qnli
                         [-0.9, np.nan, -0.3]])   # cola: mnli, qqp (no row), qnli
    np.testing.assert_array_equal(study.model_scores["probe"], expected)
    np.testing.assert_array_equal(study.model_row("probe", "cola"), expected[1])
    assert any("2 of 6 probe scores are missing" in n for n in study.notes)
    assert any("1 probe rows name a target or source outside the study" in n for n in study.notes)


def test_no_probe_table_means_no_probe(folder):
    small, src = folder
    study = study_from_sweep(src, metadata=small.meta)
    assert "probe" not in study.model_scores and study.model_row("probe", "cola") is None


def test_ground_truth_csv_has_no_probe(tmp_path):
    path = tmp_path / "gt.csv"
    path.write_text("source,cb\nprompt-text,80\nqqp,82\nmnli,81\n")
    assert study_from_csv(path, metadata=PAPER_TASKS).model_scores == {}


@pytest.mark.parametrize("text, match", [
    ("target,source,loss\ncola,mnli,label\n", r"probe\.csv: missing column\(s\) \['score'\]"),
    ("target,source,score\ncola,mnli,-0.5\ncola,qqp,low\n", r"probe\.csv: column 'score' must hold numbers; row 1 "
                                                           r"has 'low'"),
    ("target,source,score\ncola,,-0.5\n", r"probe\.csv: column 'source' is empty in row 0"),
    ("target,source,score\ncola,mnli,-0.5\ncola,mnli,-0.6\n", r"probe\.csv: 2 rows for target 'cola', source 'mnli'"),
])
def test_a_bad_probe_table_names_file_and_column(folder, tmp_path, text, match):
    small, src = folder
    with pytest.raises(InputError, match=match):
        study_from_sweep(_with_probe(src, tmp_path / "r", text), metadata=small.meta)


def test_study_checks_the_probe_shape():
    with pytest.raises(ValueError, match=r"probe scores must be \[targets, sources\] = \(1, 2\)"):
        Study(sources=("mnli", "qqp"), targets=("cb",), seeds=(28,), transfer=np.zeros((2, 1, 1)),
              baseline=np.zeros((1, 1)), meta=PAPER_TASKS, model_scores={"probe": np.zeros((2, 1))})


# ------------------------------------------------------------------------------------------ the analysis

SOURCES = ("mnli", "qqp", "record", "squad")  # groups: classification mnli, qqp; multiple choice record; qa squad


def study(probe):
    # target cb; seed 28: mnli 80, qqp 85, record 90, squad 70; seed 52: 81, 86, 88, 75
    transfer = np.array([[[80.0, 81.0]], [[85.0, 86.0]], [[90.0, 88.0]], [[70.0, 75.0]]])
    return Study(sources=SOURCES, targets=("cb",), seeds=(28, 52), transfer=transfer,
                 baseline=np.array([[82.0, 83.0]]), meta=PAPER_TASKS,
                 model_scores={"probe": np.array([probe], dtype=float)})


def config(missing="skip", **extra):
    return analysis_config_from_dict({"selectors": ["size", "probe"], "metrics": ["ndcg", "regret@1"],
                                      "ranking": {"gain": "linear", "missing": missing},
                                      "table4_selectors": ["size", "probe"], "table4_ks": [1],
                                      "step_selectors": [], **extra})


def tidy_rows(s, cfg):
    ctx, cells, _ = build_context(s, cfg)
    return collect([CellRunner(ctx)(c) for c in cells], s)


def get(tidy, seed, group, col):
    return tidy[(tidy.selector == "PROBE") & (tidy.seed == seed) & (tidy.group == group)][col].item()


def test_probe_metrics_by_hand():
    # PROBE ranks qqp (-0.2), record (-0.3), mnli (-0.5), squad (-1.4) in both seeds
    tidy, scores, _ = tidy_rows(study([-0.5, -0.2, -0.3, -1.4]), config())
    assert get(tidy, 28, ALL, "regret@1") == pytest.approx((90 - 85) / 90 * 100)
    assert get(tidy, 52, ALL, "regret@1") == pytest.approx((88 - 86) / 88 * 100)
    # linear gain, seed 28: DCG = 85 + 90/log2 3 + 80/2 + 70/log2 5 ; ideal 90 + 85/log2 3 + 80/2 + 70/log2 5
    dcg = 85 + 90 / math.log2(3) + 80 / 2 + 70 / math.log2(5)
    idcg = 90 + 85 / math.log2(3) + 80 / 2 + 70 / math.log2(5)
    assert get(tidy, 28, ALL, "ndcg") == pytest.approx(dcg / idcg)
    assert get(tidy, 28, "classification", "regret@1") == 0.0  # qqp (85) before mnli (80)
    ranks = scores[(scores.selector == "PROBE") & (scores.seed == 28)].set_index("source")["rank"]
    assert ranks.to_dict() == {"mnli": 3, "qqp": 1, "record": 2, "squad": 4}
    assert set(tidy.step.dropna()) == set()  # PROBE cells are (target, seed), no step


def test_a_missing_probe_score_follows_the_missing_policy():
    s = study([-0.5, -0.2, -0.3, np.nan])  # no probe score for squad
    tidy, scores, _ = tidy_rows(s, config("skip"))
    # skip: every group holding squad is missing (never scored as if squad's score were 0), the others are scored
    assert get(tidy, 28, ALL, "status") == "missing" and math.isnan(get(tidy, 28, ALL, "regret@1"))
    assert get(tidy, 28, "qa", "status") == "missing"
    assert get(tidy, 28, "classification", "status") == "ok"
    assert tidy[tidy.selector == "SIZE"].status.eq("ok").all()  # other selectors are not affected
    squad = scores[(scores.selector == "PROBE") & (scores.source == "squad")]
    assert squad.score.isna().all() and squad["rank"].isna().all()
    # present: ALL ranks qqp, record, mnli -> regret (90 - 85) / 90 at seed 28, flagged partial over 3 sources
    tidy, _, _ = tidy_rows(s, config("present"))
    assert get(tidy, 28, ALL, "status") == "ok" and bool(get(tidy, 28, ALL, "partial"))
    assert get(tidy, 28, ALL, "n_sources") == 3
    assert get(tidy, 28, ALL, "regret@1") == pytest.approx((90 - 85) / 90 * 100)


def test_no_probe_table_skips_probe_with_a_note():
    s = study([0, 0, 0, 0])
    s = Study(**{**{f: getattr(s, f) for f in s.__dataclass_fields__}, "model_scores": {}})
    messages = []
    cfg = config(selectors=["size", "probe", {"selector": "fusion", "options": {"fusion": ["probe", "size"]}}])
    ctx, cells, _ = build_context(s, cfg, messages=messages)
    assert [e.label for e in ctx.entries] == ["SIZE"]
    assert sum("skipped PROBE: the study has no probe scores" in m for m in messages) == 1
    assert sum("skipped FUSION: the study has no probe scores" in m for m in messages) == 1


def test_report_and_table4_include_probe(tmp_path):
    result = run_analysis(study([-0.5, -0.2, -0.3, -1.4]), config(), tmp_path)
    t3 = pd.read_csv(tmp_path / "table3.csv", index_col=0)
    assert t3.loc["PROBE", "ALL R@1"] == pytest.approx(((90 - 85) / 90 + (88 - 86) / 88) / 2 * 100)
    t4 = pd.read_csv(tmp_path / "table4.csv").set_index("selector")
    assert t4.loc["PROBE", "avg_score"] == pytest.approx((85 + 86) / 2)  # the top-1 pick qqp in both seeds
    report = result.report.read_text()
    assert "| PROBE |" in report and "- probe: zero-shot probe scores" in report and "for 4 of 4" in report


def test_table4_leaves_out_probe_without_complete_scores(tmp_path):
    result = run_analysis(study([-0.5, -0.2, -0.3, np.nan]), config(), tmp_path)
    t4 = pd.read_csv(tmp_path / "table4.csv")
    assert "PROBE" not in set(t4.selector) and "SIZE" in set(t4.selector)
    assert any("Table 4: PROBE left out" in m for m in result.messages)
    assert "Table 4: PROBE left out" in result.report.read_text()


def test_analyze_command_reports_probe_from_a_results_folder(tmp_path, capsys):
    s = synthetic_study(n_sources=5, n_targets=2, seeds=(28,), steps=(10,), tokens=3, dim=4, probe=True)
    folder = write_sweep_folder(s, tmp_path / "results")
    assert (folder / "probe.csv").is_file()
    code = analyze.main(["--results", str(folder), "--out", str(tmp_path / "out"), "--config", "analysis/demo.yaml",
                         "--selectors", "random", "size", "max", "probe"])
    out = capsys.readouterr().out
    assert code == 0
    assert any(line.startswith("PROBE") for line in out.splitlines())
    table4 = (tmp_path / "out" / "table4.md").read_text()
    assert "PROBE" in table4 and "MAX" in table4
