"""Every selector on small hand-made prompts, with the expected numbers worked out by hand."""

import math
import random

import numpy as np
import pytest

from itsel_ray.registry import UnknownNameError
from itsel_ray.selection import SELECTORS, PromptPair, SelectionInput, SelectorOptions, get_selector, paper_draws

R2 = math.sqrt(2)

# Target prompt: two tokens along the axes.
T = np.array([[1.0, 0.0], [0.0, 1.0]])
# Source prompts (2 tokens x 2 features each).
A = np.array([[1.0, 0.0], [1.0, 0.0]])    # both tokens on x
B = np.array([[3.0, 0.0], [0.0, 1.0]])    # T's tokens, unequal lengths
C = np.array([[-1.0, 0.0], [0.0, 1.0]])   # x flipped
D = np.array([[1.0, 0.0], [1.0, 0.0]])
E = np.array([[1.0, 1.0], [-1.0, 0.0]])
F = np.array([[1.0, 0.0], [0.0, 1.0]])    # identical to T


def run(name, names, prompts, target=T, **opts):
    """Scores of selector `name` for sources named by the letters of `names` with these prompts."""
    inp = SelectionInput(target="t", sources=tuple(names), prompts=PromptPair(np.stack(prompts), target))
    return get_selector(name).scores(inp, SelectorOptions(**opts))


def test_feature_with_and_without_normalisation():
    # raw token means: T [.5, .5]; A [1, 0]; B [1.5, .5]; C [-.5, .5]
    # cos(T, A) = .5 / (sqrt(.5) * 1) = .707107 ; cos(T, B) = 1 / (sqrt(.5) * sqrt(2.5)) = .894427 ; cos(T, C) = 0
    raw = run("feature", "abc", [A, B, C], normalize=False)
    np.testing.assert_allclose(raw, [1 / R2, 1 / math.sqrt(1.25), 0.0], atol=1e-12)
    # unit tokens: B becomes [[1,0],[0,1]] = T -> mean [.5, .5] -> cos 1; A, C unchanged
    unit = run("feature", "abc", [A, B, C])
    np.testing.assert_allclose(unit, [1 / R2, 1.0, 0.0], atol=1e-12)


def test_unigram_by_hand():
    # unit tokens, per-token mean over features: T [.5, .5]; A [.5, .5]; C [-.5, .5]; E [1/sqrt2, -.5]
    # cos(T, A) = 1 ; cos(T, C) = 0 ; cos(T, E) = (.5/sqrt2 - .25) / (sqrt(.5) * sqrt(.5 + .25))
    e = (0.5 / R2 - 0.25) / (math.sqrt(0.5) * math.sqrt(0.75))
    np.testing.assert_allclose(run("unigram", "ace", [A, C, E]), [1.0, 0.0, e], atol=1e-12)
    # raw tokens: B per-token means [1.5, .5] -> cos with [.5, .5] = 1 / (sqrt(.5) sqrt(2.5))
    np.testing.assert_allclose(run("unigram", "b", [B], normalize=False), [1 / math.sqrt(1.25)], atol=1e-12)


def test_max_directions_differ():
    # cos(source token i, target token j):
    #   D: d1 = d2 = x: cos with t1 = 1, with t2 = 0
    #   E: e1 = (1,1)/sqrt2: .7071 with t1 and t2; e2 = -x: -1 with t1, 0 with t2
    # target-centric (eq. 4): mean_j max_i -> D (1 + 0)/2 = .5 ; E (.7071 + .7071)/2 = .7071
    # source-centric (authors): mean_i max_j -> D (1 + 1)/2 = 1 ; E (.7071 + 0)/2 = .3536
    tc = run("max", "de", [D, E])
    sc = run("max", "de", [D, E], max_direction="source_centric")
    sym = run("max", "de", [D, E], max_direction="symmetric")
    np.testing.assert_allclose(tc, [0.5, 1 / R2], atol=1e-12)
    np.testing.assert_allclose(sc, [1.0, 0.5 / R2], atol=1e-12)
    np.testing.assert_allclose(sym, [0.75, (1 / R2 + 0.5 / R2) / 2], atol=1e-12)
    assert tc.argmax() != sc.argmax()  # the two directions pick different sources
    # cosine ignores token length, so normalisation does not change MAX
    np.testing.assert_allclose(run("max", "de", [D, E], normalize=False), tc, atol=1e-12)


def test_max_topk_by_hand():
    # k = 2 (all source tokens), target-centric: mean over target tokens of the mean of its 2 cosines
    #   D: t1 (1 + 1)/2 = 1, t2 (0 + 0)/2 = 0 -> .5 ; E: t1 (.7071 - 1)/2, t2 (.7071 + 0)/2 -> mean
    e = ((1 / R2 - 1) / 2 + (1 / R2) / 2) / 2
    np.testing.assert_allclose(run("max-topk", "de", [D, E], topk=2), [0.5, e], atol=1e-12)
    # k = 1 is MAX
    np.testing.assert_allclose(run("max-topk", "de", [D, E], topk=1), run("max", "de", [D, E]), atol=1e-12)


def test_mmd_by_hand():
    # gamma = .5: k(a, b) = exp(-.5 |a - b|^2) = exp(cos - 1) for unit tokens
    # T: mean k(t, t') = (1 + 1 + 2 e^-1)/4
    ktt = (1 + math.exp(-1)) / 2
    # D: both tokens x -> k(d, d') = 1; k(d, t1) = 1, k(d, t2) = e^-1
    d = -(1 + ktt - 2 * (1 + math.exp(-1)) / 2)
    # E: cos(e1, e2) = -1/sqrt2 -> k_ss = (1 + e^(-1/sqrt2 - 1))/2
    #    cross cosines .7071, .7071, -1, 0 -> k = e^(.7071-1) twice, e^-2, e^-1
    kss = (1 + math.exp(-1 / R2 - 1)) / 2
    kst = (2 * math.exp(1 / R2 - 1) + math.exp(-2) + math.exp(-1)) / 4
    e = -(kss + ktt - 2 * kst)
    np.testing.assert_allclose(run("mmd", "de", [D, E], mmd_gamma=0.5), [d, e], atol=1e-12)
    assert d == pytest.approx(-0.316060, abs=1e-6)


def test_seed_average_is_the_mean_over_target_prompts():
    # Two target prompts (seeds): T and its reverse-sign x token; FEATURE on A:
    #   T -> .7071 (above); T2 = [[-1, 0], [0, 1]] -> mean [-.5, .5] -> cos with [1, 0] = -.7071 -> mean 0
    t2 = np.array([[-1.0, 0.0], [0.0, 1.0]])
    avg = run("feature", "a", [A], target=np.stack([T, t2]))
    assert avg[0] == pytest.approx(0.0, abs=1e-12)


def test_size_scores_are_sizes():
    inp = SelectionInput(target="t", sources=("a", "b"), sizes=np.array([250.0, 393_000.0]))
    np.testing.assert_array_equal(get_selector("size").scores(inp, SelectorOptions()), [250.0, 393_000.0])


def test_random_draw_matches_the_authors_procedure():
    # The authors: random.seed(5) once, then shuffle a fresh [1..13] per cell, state carried over.
    random.seed(5)
    expected = []
    for _ in range(4):
        lst = list(range(1, 14))
        random.shuffle(lst)
        expected.append(lst)
    draws = paper_draws(["c0", "c1", "c2", "c3"], 13, seed=5)
    assert [draws[c].tolist() for c in ("c0", "c1", "c2", "c3")] == expected
    inp = SelectionInput(target="t", sources=tuple("abcdefghijklm"), draw=draws["c1"])
    assert get_selector("random-draw").scores(inp, SelectorOptions()).tolist() == expected[1]


def test_random_is_uniform():
    sel = get_selector("random")
    assert sel.uniform
    assert sel.scores(SelectionInput(target="t", sources=("a", "b")), SelectorOptions()).tolist() == [0, 0]


def test_semb_cosine_by_hand():
    target = np.array([1.0, 0.0, 0.0])
    sources = np.array([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 1.0, 0.0]])
    inp = SelectionInput(target="t", sources=("a", "b", "c"),
                         text_embeddings={"semb-b": (target, sources), "semb-r": (target, -sources)})
    np.testing.assert_allclose(get_selector("semb-b").scores(inp, SelectorOptions()), [1, 0, 1 / R2])
    np.testing.assert_allclose(get_selector("semb-r").scores(inp, SelectorOptions()), [-1, 0, -1 / R2])


def test_fusion_by_hand_with_tie_rule():
    # sources d, e, f. MAX (target-centric): f 1.0 > e .7071 > d .5 -> ranks f1 e2 d3
    # SIZE: d 10 > e 5 > f 1 -> ranks d1 e2 f3. RRF with k = 1:
    #   d: 1/(1+3) + 1/(1+1) = .75 ; e: 1/3 + 1/3 = .6667 ; f: 1/2 + 1/4 = .75
    inp = SelectionInput(target="t", sources=("d", "e", "f"), prompts=PromptPair(np.stack([D, E, F]), T),
                         sizes=np.array([10.0, 5.0, 1.0]))
    opts = SelectorOptions(fusion=("max", "size"), fusion_k=1)
    scores = get_selector("fusion").scores(inp, opts)
    np.testing.assert_allclose(scores, [0.75, 2 / 3, 0.75])
    from itsel_ray.selection import rank_from_scores

    assert [inp.sources[i] for i in rank_from_scores(scores, inp.sources)] == ["d", "f", "e"]  # tie -> by name


def test_missing_inputs_are_named():
    sel = get_selector("max")
    inp = SelectionInput(target="t", sources=("a",))
    assert sel.missing(inp, SelectorOptions()) == ["prompts"]
    with pytest.raises(ValueError, match="needs prompts"):
        sel.scores(inp, SelectorOptions())
    fusion_missing = get_selector("fusion").missing(inp, SelectorOptions(fusion=("max", "semb-r")))
    assert fusion_missing == ["prompts (for max)", "texts (for semb-r)"]


def test_bad_options_and_names():
    with pytest.raises(UnknownNameError, match="target_centric"):
        SelectorOptions(max_direction="sideways")
    with pytest.raises(UnknownNameError, match="max-topk"):
        get_selector("maxx")
    assert {"random", "random-draw", "size", "semb-b", "semb-r", "feature", "unigram", "max", "max-topk", "mmd",
            "fusion"} <= set(SELECTORS.names())


def test_unigram_needs_equal_lengths():
    with pytest.raises(ValueError, match="tokens"):
        run("unigram", "a", [np.ones((3, 2))])
