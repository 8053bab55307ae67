"""End to end on a small synthetic study: every table and figure is written and linked from report.md, and the
Ray-parallel run gives the same numbers as the plain one."""

import dataclasses
import os
import re

import numpy as np
import pandas as pd
import pytest

from itsel_ray.analysis import analysis_config_from_dict, load_analysis_config, run_analysis
from itsel_ray.analysis.analysis_file import builtin_config
from itsel_ray.analysis.synthetic import synthetic_study

TABLES = ("table3", "table3_all_metrics", "table4", "table7", "table8")
FIGURES = ("fig3_relative_transfer", "fig6_gain_vs_size", "heatmap_transfer", "fig5_ndcg_by_step",
           "fig7_ndcg_by_step_per_target", "fig4_tsne_cola")


def small_study():
    return synthetic_study(n_sources=7, n_targets=3, seeds=(28, 52), steps=(10, 20), tokens=6, dim=8, missing=1,
                           probe=True)


def small_config():
    # The demo's definition on paper-named tasks: the paper's Table 6 groups and targets.
    data = dataclasses.asdict(load_analysis_config(builtin_config("demo")))
    data.update(tsne_targets=["cola", "copa"], groups=["classification", "multiple_choice", "qa"],
                tsne_min_tokens=1)  # 6-token prompts: drawn here to test the figure; the default leaves it out
    return analysis_config_from_dict(data)


def fake_text_embeddings(study):
    rng = np.random.default_rng(3)
    table = {t: rng.normal(size=5) for t in (*study.sources, *study.targets)}
    return {"semb-b": table, "semb-r": {t: v[::-1].copy() for t, v in table.items()}}


def test_report_writes_and_links_everything(tmp_path):
    study = small_study()
    result = run_analysis(study, small_config(), tmp_path, text_embeddings=fake_text_embeddings(study))
    report = result.report.read_text()
    for name in TABLES:
        assert (tmp_path / f"{name}.csv").stat().st_size > 0 and (tmp_path / f"{name}.md").is_file()
        assert f"({name}.csv)" in report
    for name in FIGURES:
        png = tmp_path / "figures" / f"{name}.png"
        assert png.read_bytes()[:4] == b"\x89PNG"
        assert f"(figures/{name}.png)" in report
    for link in re.findall(r"\]\(([^)]+)\)", report):  # every relative link resolves
        assert (tmp_path / link).exists(), link
    tidy = pd.read_csv(tmp_path / "selector_metrics.csv")
    assert {"selector", "target", "seed", "step", "ndcg", "regret@1", "regret@3", "spearman", "kendall"} <= set(tidy)
    assert set(tidy.selector) >= {"RANDOM", "SIZE", "SEMB-B", "SEMB-R", "FEATURE", "UNIGRAM", "MAX", "MAX-SRC",
                                  "MAX-TOPK", "MMD", "FUSION", "PROBE"}
    assert (tidy.status == "missing").any()  # the blanked transfer score is reported, not scored
    t3 = pd.read_csv(tmp_path / "table3.csv", index_col=0)
    assert list(t3.columns)[:3] == ["CLASSIFICATION R@1", "CLASSIFICATION nDCG", "CLASSIFICATION R@3"]
    assert "ALL nDCG" in t3.columns and t3.loc["RANDOM", "ALL nDCG"] < 100
    t4 = pd.read_csv(tmp_path / "table4.csv")
    assert t4.selector.iloc[0] == "NO TRANSFER" and t4.selector.iloc[-1] == "ORACLE"
    oracle = t4.set_index("selector").loc["ORACLE", "avg_score"]
    assert (t4.avg_score <= oracle + 1e-9).all()
    assert {"MAX-TOPK", "PROBE"} <= set(t4.selector)  # the demo's Table 4 rows beyond the paper
    assert any("Figure 4: no t-SNE for copa" in m for m in result.messages)


def _ray_and_plain(tmp_path):
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    from itsel_ray.sweep.parallel import local_ray, make_ray_map

    study = small_study()
    cfg = small_config()
    texts = fake_text_embeddings(study)
    plain = run_analysis(study, cfg, tmp_path / "plain", text_embeddings=texts)
    with local_ray(2):
        parallel = run_analysis(study, cfg, tmp_path / "ray", make_ray_map(chunksize=7),
                                text_embeddings=texts)
    return plain, parallel


@pytest.mark.slow
def test_ray_and_plain_give_identical_numbers(tmp_path):
    plain, parallel = _ray_and_plain(tmp_path)
    pd.testing.assert_frame_equal(plain.tidy, parallel.tidy, check_exact=True)
    for name in (*TABLES, "selector_scores", "summary"):
        assert (tmp_path / "plain" / f"{name}.csv").read_text() == (tmp_path / "ray" / f"{name}.csv").read_text()


def test_the_report_says_which_environments_the_trials_ran_in(tmp_path):
    import json

    from itsel_ray.analysis import analysis_config_from_dict, run_analysis, study_from_sweep
    from itsel_ray.analysis.synthetic import synthetic_study, write_sweep_folder

    study = synthetic_study(n_sources=3, n_targets=2, seeds=(28, 52), steps=(10,), tokens=2, dim=3)
    folder = write_sweep_folder(study, tmp_path / "results")
    results = pd.read_csv(folder / "results.csv")
    done = results.index[results.status == "done"]
    results["environment"] = ""
    results.loc[done[:-2], "environment"] = "aaaaaaaaaaaa"
    results.loc[done[-2:-1], "environment"] = "bbbbbbbbbbbb"  # one trial from another machine, one unrecorded
    results.to_csv(folder / "results.csv", index=False)
    (folder / "environments.json").write_text(json.dumps({
        "aaaaaaaaaaaa": {"summary": "AMD EPYC (avx2, fma) x2 | torch 2.13.0 AVX2, 1 thread, mkl",
                         "trials": len(done) - 2},
        "bbbbbbbbbbbb": {"summary": "Intel Xeon (avx512f, avx2) x8 | torch 2.13.0 AVX512", "trials": 1}}))
    read = study_from_sweep(folder)
    assert [e["fingerprint"] for e in read.environments] == ["aaaaaaaaaaaa", "bbbbbbbbbbbb", ""]
    assert read.environments[2]["trials"] == 1
    cfg = analysis_config_from_dict({"selectors": ["random", "size"], "metrics": ["ndcg"], "step_selectors": [],
                                     "table4_selectors": [], "groups": [], "uncertainty": {"resamples": 200,
                                                                                          "reference": "size"}})
    text = run_analysis(read, cfg, tmp_path / "out").report.read_text()
    section = text[text.index("## Where these numbers came from"):text.index("## Table 3")]
    assert f"- {len(done) - 2} finished trials, environment `aaaaaaaaaaaa`: AMD EPYC (avx2, fma) x2" in section
    assert "- 1 finished trials, environment unrecorded" in section
    assert "**The trials ran in more than one environment.**" in section
    assert "this analysis ran on: " in section


def test_figure4_is_left_out_for_short_prompts_and_carries_a_caveat_otherwise(tmp_path):
    study = small_study()
    data = dataclasses.asdict(small_config())
    short = run_analysis(study, analysis_config_from_dict({**data, "tsne_min_tokens": 25}), tmp_path / "a",
                         text_embeddings=fake_text_embeddings(study))
    assert not list((tmp_path / "a" / "figures").glob("fig4_*"))
    assert any("Figure 4: no t-SNE: 6 tokens per prompt (4 x 6 points)" in m for m in short.messages)
    text = run_analysis(study, small_config(), tmp_path / "b", text_embeddings=fake_text_embeddings(study)
                        ).report.read_text()
    assert "t-SNE keeps near neighbours, not distances or cluster sizes" in text
