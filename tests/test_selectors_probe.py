"""PROBE on hand-made probe scores: it ranks by the given score, needs scores, and FUSION keeps a missing one
missing."""

import math

import numpy as np
import pytest

from itsel_ray.selection import SELECTORS, PromptPair, SelectionInput, SelectorOptions, get_selector, rank_from_scores


def test_probe_scores_are_the_targets_probe_row_and_rank_by_it():
    # minus losses: b has the lowest loss (0.4), then a and c tie at 0.7 (tie -> by name), then d
    inp = SelectionInput(target="t", sources=("c", "a", "d", "b"),
                         model_scores={"probe": np.array([-0.7, -0.7, -1.2, -0.4])})
    sel = get_selector("probe")
    assert sel.label == "PROBE" and not sel.uniform and "probe" in SELECTORS.names()
    scores = sel.scores(inp, SelectorOptions())
    np.testing.assert_array_equal(scores, [-0.7, -0.7, -1.2, -0.4])
    assert [inp.sources[i] for i in rank_from_scores(scores, inp.sources)] == ["b", "a", "c", "d"]


def test_probe_needs_probe_scores_and_the_right_length():
    sel = get_selector("probe")
    bare = SelectionInput(target="t", sources=("a", "b"), sizes=np.array([1.0, 2.0]))
    assert sel.missing(bare, SelectorOptions()) == ["probe"]
    with pytest.raises(ValueError, match="needs probe"):
        sel.scores(bare, SelectorOptions())
    with pytest.raises(ValueError, match=r"probe: \(3,\) scores for 2 sources"):
        sel.scores(SelectionInput(target="t", sources=("a", "b"), model_scores={"probe": np.zeros(3)}),
                   SelectorOptions())


def test_a_missing_probe_score_stays_missing():
    inp = SelectionInput(target="t", sources=("a", "b"), model_scores={"probe": np.array([-0.5, np.nan])})
    scores = get_selector("probe").scores(inp, SelectorOptions())
    assert scores[0] == -0.5 and math.isnan(scores[1])  # not 0, not -inf


def test_fusion_with_probe_by_hand():
    # sources a, b, c. PROBE: c -0.2 > a -0.5 > b -0.9 -> ranks c1 a2 b3. SIZE: a 10 > b 5 > c 1 -> a1 b2 c3.
    # RRF with k = 1: a 1/3 + 1/2 = .8333, b 1/4 + 1/3 = .5833, c 1/2 + 1/4 = .75
    opts = SelectorOptions(fusion=("probe", "size"), fusion_k=1)
    sizes = np.array([10.0, 5.0, 1.0])
    inp = SelectionInput(target="t", sources=("a", "b", "c"), sizes=sizes,
                         model_scores={"probe": np.array([-0.5, -0.9, -0.2])})
    np.testing.assert_allclose(get_selector("fusion").scores(inp, opts), [5 / 6, 7 / 12, 3 / 4])
    # b unscored by PROBE: b is missing (NaN) and a, c are ranked among themselves.
    # PROBE: c1 a2; SIZE: a1 c2 -> a 1/3 + 1/2, c 1/2 + 1/3
    inp = SelectionInput(target="t", sources=("a", "b", "c"), sizes=sizes,
                         model_scores={"probe": np.array([-0.5, np.nan, -0.2])})
    out = get_selector("fusion").scores(inp, opts)
    assert math.isnan(out[1])
    np.testing.assert_allclose(out[[0, 2]], [5 / 6, 5 / 6])


def test_fusion_of_prompt_selectors_is_unchanged():
    # every score finite: the NaN handling must not change FUSION (ranks over all sources, as before)
    t = np.array([[1.0, 0.0], [0.0, 1.0]])
    src = np.stack([np.array([[1.0, 0.0], [1.0, 0.0]]), np.array([[1.0, 1.0], [-1.0, 0.0]]), t])
    inp = SelectionInput(target="t", sources=("d", "e", "f"), prompts=PromptPair(src, t),
                         sizes=np.array([10.0, 5.0, 1.0]))
    np.testing.assert_allclose(get_selector("fusion").scores(inp, SelectorOptions(fusion_k=1)), [0.75, 2 / 3, 0.75])
