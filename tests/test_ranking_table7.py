"""SIZE and RANDOM scored against the paper's Table 7 (means over seeds), checked against hand computations.

Reads the shared anchor file in place (never copied); skipped when it is absent.
"""

import csv
import math
from pathlib import Path

import numpy as np
import pytest

from itsel_ray.analysis import PAPER_TASKS, load_analysis_config, study_from_csv
from itsel_ray.analysis.cells import ALL, CellRunner
from itsel_ray.analysis.analysis_file import analysis_config_from_dict
from itsel_ray.analysis.run import build_context

TABLE7 = Path(__file__).resolve().parents[2] / "shared" / "anchors" / "paper_table7.csv"
pytestmark = pytest.mark.skipif(not TABLE7.is_file(), reason="paper_table7.csv anchor not available")

# SIZE's order (training-set sizes, largest first; the authors' REFERENCE_SCORE_SIZE ordinals 13..1).
SIZE_ORDER = ["mnli", "qqp", "qnli", "record", "squad", "cxc", "drop", "sst2", "winogrande", "hellaswag", "multirc",
              "race", "cosmosqa"]
TARGETS = ["boolq", "cola", "stsb", "wic", "cr", "mrpc", "rte", "wsc", "copa", "cb"]


def read_means():
    with open(TABLE7, newline="") as f:
        rows = {r["source"]: r for r in csv.DictReader(f)}
    return {t: {s: float(rows[s][t]) for s in SIZE_ORDER} for t in TARGETS}


def dcg(values):
    return sum((2.0 ** v - 1) / math.log2(i + 2) for i, v in enumerate(values))


@pytest.fixture(scope="module")
def rows():
    study = study_from_csv(TABLE7, metadata=PAPER_TASKS)
    cfg = analysis_config_from_dict({"selectors": ["size", "random"], "table4_selectors": ["size"],
                                     "step_selectors": [], "metrics": ["ndcg", "regret@1", "regret@3"]})
    ctx, cells, _ = build_context(study, cfg)
    runner = CellRunner(ctx)
    out = [row for cell in cells for row in runner(cell).rows if row["group"] == ALL]
    return {(r["selector"], r["target"]): r for r in out}


def test_study_from_table7():
    study = study_from_csv(TABLE7, metadata=PAPER_TASKS)
    assert study.sources == tuple(["mnli", "qqp", "qnli", "record", "cxc", "squad", "drop", "sst2", "winogrande",
                                   "hellaswag", "multirc", "cosmosqa", "race"])
    assert study.targets == tuple(TARGETS)
    assert study.transfer[0, 0, 0] == 78.36  # MNLI -> BoolQ
    assert study.baseline[0, 0] == 78.69     # PROMPT-TEXT BoolQ
    assert study.transfer_std[0, 0] == 0.20


def test_size_on_copa_by_hand(rows):
    # COPA column in SIZE order: mnli 63.00 first; the best is 68.00 (cxc, multirc, race)
    copa = read_means()["copa"]
    in_order = [copa[s] for s in SIZE_ORDER]
    assert in_order[:3] == [63.00, 67.33, 61.33]
    r = rows[("SIZE", "copa")]
    assert r["regret@1"] == pytest.approx((68.00 - 63.00) / 68.00 * 100)   # 7.3529
    assert r["regret@3"] == pytest.approx((68.00 - 67.33) / 68.00 * 100)   # 0.9853
    assert r["ndcg"] == pytest.approx(dcg(in_order) / dcg(sorted(in_order, reverse=True)), rel=1e-12)


def test_random_expectation_on_copa_by_hand(rows):
    copa = list(read_means()["copa"].values())
    n = len(copa)
    # E[top-1] = the mean score: (68 - mean) / 68 * 100
    assert rows[("RANDOM", "copa")]["regret@1"] == pytest.approx((68.0 - sum(copa) / n) / 68.0 * 100)
    # E[nDCG] = mean gain * sum of all discounts / IDCG
    mean_gain = sum(2.0 ** v - 1 for v in copa) / n
    expected = mean_gain * sum(1 / math.log2(i + 2) for i in range(n)) / dcg(sorted(copa, reverse=True))
    assert rows[("RANDOM", "copa")]["ndcg"] == pytest.approx(expected, rel=1e-12)
    # E[max of a random 3-subset], by counting: the j-th best is the max in C(n-1-j, 2) of C(n, 3) subsets
    ranked = sorted(copa, reverse=True)
    top3 = sum(math.comb(n - 1 - j, 2) * v for j, v in enumerate(ranked)) / math.comb(n, 3)
    assert rows[("RANDOM", "copa")]["regret@3"] == pytest.approx((68.0 - top3) / 68.0 * 100)


def test_size_regret_at_1_over_all_targets_by_hand(rows):
    means = read_means()
    by_hand = [(max(col.values()) - col["mnli"]) / max(col.values()) * 100 for col in means.values()]
    ours = [rows[("SIZE", t)]["regret@1"] for t in TARGETS]
    np.testing.assert_allclose(ours, by_hand, rtol=1e-12)
    # WSC: every source at 63.46 except QQP 64.42 -> (64.42 - 63.46) / 64.42 * 100
    assert rows[("SIZE", "wsc")]["regret@1"] == pytest.approx((64.42 - 63.46) / 64.42 * 100)


def test_paper_config_runs_prompt_free_selectors_only():
    study = study_from_csv(TABLE7, metadata=PAPER_TASKS)
    cfg = load_analysis_config(Path(__file__).resolve().parents[1] / "analysis" / "paper.yaml")
    messages = []
    ctx, cells, headline = build_context(study, cfg, text_embeddings={}, load_texts=_no_texts, messages=messages)
    assert headline is None and all(c.step is None for c in cells)
    assert {e.label for e in ctx.entries} == {"RANDOM", "RANDOM (draw)", "SIZE"}
    assert any("skipped MAX" in m for m in messages) and any("skipped semb-b" in m for m in messages)


def _no_texts(task, cap):
    raise RuntimeError("no texts in this test")


def test_table4_size_top1_is_mnli_everywhere():
    # SIZE's top-1 is MNLI for every target: the average score is the mean of the MNLI row of Table 7, and the
    # no-transfer average the mean of the PROMPT-TEXT row.
    from itsel_ray.analysis.run import collect
    from itsel_ray.analysis.tables import table4

    mnli = [78.36, 61.55, 90.22, 69.07, 93.18, 90.93, 78.45, 63.46, 63.00, 87.62]
    prompt_text = [78.69, 62.47, 90.14, 69.07, 92.96, 89.95, 79.66, 63.46, 60.0, 85.64]
    study = study_from_csv(TABLE7, metadata=PAPER_TASKS)
    cfg = analysis_config_from_dict({"selectors": ["size"], "table4_selectors": ["size"], "step_selectors": []})
    ctx, cells, _ = build_context(study, cfg)
    _, _, lookup = collect([CellRunner(ctx)(c) for c in cells], study)
    t4 = table4(study, lookup, [("SIZE", False, None)], [1]).set_index("selector")
    assert t4.loc["NO TRANSFER", "avg_score"] == pytest.approx(sum(prompt_text) / 10)   # 77.204
    assert t4.loc["SIZE", "avg_score"] == pytest.approx(sum(mnli) / 10)                 # 77.584
    assert t4.loc["SIZE", "abs"] == pytest.approx((sum(mnli) - sum(prompt_text)) / 10)  # 0.38
    assert t4.loc["SIZE", "rel"] == pytest.approx((sum(mnli) - sum(prompt_text)) / sum(prompt_text) * 100)
