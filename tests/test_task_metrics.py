"""Task metrics against hand-computed values (the arithmetic is in the comments), invalid predictions included."""

from __future__ import annotations

import math

import pytest
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import f1_score, matthews_corrcoef

from itsel_ray.metrics.task_metrics import TASK_METRICS, normalize_answer
from itsel_ray.tasks import Example, get_task
from itsel_ray.registry import UnknownNameError


def golds(*targets: str) -> list[Example]:
    return [Example(input="", target=t) for t in targets]


def test_accuracy_is_exact_match_after_strip_and_invalid_is_wrong():
    # right, right (" positive " strips), wrong, invalid -> 2/4
    preds = ["negative", " positive ", "negative", "banana"]
    ex = golds("negative", "positive", "positive", "negative")
    assert TASK_METRICS.get("accuracy")(preds, ex, ("negative", "positive")) == pytest.approx(50.0)


def test_binary_f1_flips_invalid_predictions_to_the_wrong_class():
    labels = ("not_equivalent", "equivalent")
    ex = golds("equivalent", "equivalent", "equivalent", "not_equivalent", "not_equivalent", "not_equivalent")
    preds = ["equivalent", "not_equivalent", "maybe", "equivalent", "not_equivalent", "???"]
    # TP (row 1); FN (2); invalid with positive gold -> FN (3); FP (4); TN (5); invalid with negative gold -> FP (6)
    # TP=1 FP=2 FN=2: F1 = 2*1 / (2*1 + 2 + 2) = 1/3
    assert TASK_METRICS.get("f1")(preds, ex, labels) == pytest.approx(100 / 3)
    # the same as sklearn on the flipped ids
    assert f1_score([1, 1, 1, 0, 0, 0], [1, 0, 0, 1, 0, 1]) * 100 == pytest.approx(100 / 3)


def test_f1_positive_class_is_the_second_label_in_either_style():
    ex = golds("1", "0", "1")
    # positive "1": TP=1 (row 1), FN=1 (row 3), FP=0 -> 2/3
    assert TASK_METRICS.get("f1")(["1", "0", "0"], ex, ("0", "1")) == pytest.approx(200 / 3)


def test_mcc_binary_and_with_an_invalid_prediction():
    labels = ("unacceptable", "acceptable")
    ex = golds("acceptable", "acceptable", "acceptable", "unacceptable", "unacceptable")
    preds = ["acceptable", "acceptable", "unacceptable", "unacceptable", "acceptable"]
    # TP=2 FN=1 FP=1 TN=1: (2*1 - 1*1) / sqrt(3*3*2*2) = 1/6
    assert TASK_METRICS.get("mcc")(preds, ex, labels) == pytest.approx(100 / 6)

    ex = golds("acceptable", "acceptable", "unacceptable", "unacceptable")
    preds = ["acceptable", "xyz", "unacceptable", "acceptable"]
    # categories (unacc, acc, invalid): gold counts t = (2, 2, 0), predicted counts p = (1, 2, 1), correct c = 2,
    # n = 4: cov(t,p) = c*n - p.t = 8 - (2 + 4 + 0) = 2; cov(p,p) = 16 - (1 + 4 + 1) = 10; cov(t,t) = 16 - 8 = 8
    # MCC = 2 / sqrt(10 * 8) = 0.2236068
    assert TASK_METRICS.get("mcc")(preds, ex, labels) == pytest.approx(100 * 2 / math.sqrt(80))
    assert matthews_corrcoef(["1", "1", "0", "0"], ["1", "-101", "0", "1"]) * 100 == pytest.approx(
        100 * 2 / math.sqrt(80))


def test_mcc_of_a_constant_classifier_is_chance_level():
    ex = golds("acceptable", "unacceptable", "acceptable")
    assert TASK_METRICS.get("mcc")(["acceptable"] * 3, ex, ("unacceptable", "acceptable")) == 0.0


def test_macro_f1_over_three_classes_with_an_invalid_prediction():
    labels = ("entailment", "contradiction", "neutral")
    ex = golds("entailment", "entailment", "entailment", "contradiction", "contradiction", "neutral")
    preds = ["entailment", "entailment", "contradiction", "contradiction", "maybe", "entailment"]
    # entailment: TP=2 FP=1 (row 6) FN=1 (row 3) -> 4/6; contradiction: TP=1 FP=1 (row 3) FN=1 (row 5, invalid)
    # -> 2/4; neutral: TP=0 FP=0 FN=1 -> 0. Mean = (2/3 + 1/2 + 0) / 3 = 7/18
    assert TASK_METRICS.get("macro_f1")(preds, ex, labels) == pytest.approx(100 * 7 / 18)


def test_correlations_parse_spelled_numbers_and_score_unparsable_as_minus_one():
    ex = golds("one point zero", "two point zero", "three point zero", "four point zero")
    preds = ["one point zero", "two point five", "banana", "four point zero"]
    # x = (1, 2.5, -1, 4), mean 1.625; y = (1, 2, 3, 4), mean 2.5
    # dx = (-.625, .875, -2.625, 2.375), dy = (-1.5, -.5, .5, 1.5)
    # sum dx*dy = .9375 - .4375 - 1.3125 + 3.5625 = 2.75; sum dx^2 = 13.6875; sum dy^2 = 5
    # Pearson = 2.75 / sqrt(68.4375) = 0.3324188
    assert TASK_METRICS.get("pearson")(preds, ex, None) == pytest.approx(100 * 2.75 / math.sqrt(68.4375))
    # ranks x = (2, 3, 1, 4), y = (1, 2, 3, 4): dx = (-.5, .5, -1.5, 1.5), dy = (-1.5, -.5, .5, 1.5)
    # sum dx*dy = .75 - .25 - .75 + 2.25 = 2; sum dx^2 = sum dy^2 = 5 -> Spearman = 2/5
    assert TASK_METRICS.get("spearman")(preds, ex, None) == pytest.approx(40.0)
    x, y = [1, 2.5, -1, 4], [1, 2, 3, 4]
    assert pearsonr(x, y)[0] * 100 == pytest.approx(100 * 2.75 / math.sqrt(68.4375))
    assert spearmanr(x, y)[0] * 100 == pytest.approx(40.0)


def test_spearman_gives_tied_predictions_their_mean_rank():
    ex = golds("one point zero", "two point zero", "three point zero", "four point zero")
    # x = (2, 2, 1, 3) -> ranks (2.5, 2.5, 1, 4); dx = (0, 0, -1.5, 1.5); dy = (-1.5, -.5, .5, 1.5)
    # sum dx*dy = -.75 + 2.25 = 1.5; sum dx^2 = 4.5; sum dy^2 = 5 -> 1.5 / sqrt(22.5) = 0.3162278
    preds = ["two", "two point zero", "one", "three"]
    assert TASK_METRICS.get("spearman")(preds, ex, None) == pytest.approx(100 * 1.5 / math.sqrt(22.5))


def test_undefined_correlations_are_nan_never_zero():
    ex = golds("one point zero", "two point zero", "three point zero")
    for name in ("pearson", "spearman"):
        assert math.isnan(TASK_METRICS.get(name)(["three"] * 3, ex, None))
        assert math.isnan(TASK_METRICS.get(name)(["garbage"] * 3, ex, None))  # all -1: constant too


def test_digit_predictions_parse_in_the_abstract_style():
    ex = golds("1.0", "2.0", "3.0")
    # x = (1, 2, 3) = y -> 1
    assert TASK_METRICS.get("pearson")(["1.0", "2.0", "3.0"], ex, None) == pytest.approx(100.0)


def test_squad_normalisation_drops_case_punctuation_and_articles():
    assert normalize_answer("The  Denver broncos!") == "denver broncos"
    assert normalize_answer("an apple, a pear") == "apple pear"
    assert normalize_answer("U.S.") == "us"


def test_squad_em_and_f1_take_the_max_over_golds():
    ex = [
        Example("", "Denver Broncos", answers=("Denver Broncos", "the Denver Broncos.")),
        Example("", "Carolina Panthers"),
        Example("", "Santa Clara, California", answers=("Santa Clara, California", "Levi's Stadium")),
        Example("", "U . S .", answers=("U . S .", "the U . S .")),
    ]
    preds = ["The Denver broncos!", "Panthers", "Levi's Stadium in Santa Clara", "u. s."]
    # EM: 1 ("denver broncos"), 0, 0, 1 ("u s" = "u s") -> 2/4
    assert TASK_METRICS.get("squad_em")(preds, ex, None) == pytest.approx(50.0)
    # F1: 1; "panthers" vs "carolina panthers": p=1, r=1/2 -> 2/3;
    # "levis stadium in santa clara" vs "santa clara california": 2 common, p=2/5, r=2/3 -> 1/2,
    #   vs "levis stadium": 2 common, p=2/5, r=1 -> 4/7; max 4/7; last: 1
    assert TASK_METRICS.get("squad_f1")(preds, ex, None) == pytest.approx(100 * (1 + 2 / 3 + 4 / 7 + 1) / 4)


def test_multirc_em_per_question_and_f1a_over_all_answers():
    labels = ("False", "True")
    ex = [Example("", t, group=g) for t, g in [
        ("True", "q1"), ("False", "q1"), ("True", "q1"), ("True", "q2"), ("False", "q2"), ("False", "q3")]]
    preds = ["True", "False", "True", "True", "True", "yes"]
    # q1 all right; q2 wrong on its 2nd answer; q3's prediction is invalid -> 1 of 3 questions
    assert TASK_METRICS.get("multirc_em")(preds, ex, labels) == pytest.approx(100 / 3)
    # TP rows 1, 3, 4; FP row 5; the invalid row 6 (gold False) flips to True: FP. TP=3 FP=2 FN=0 -> 6/8
    assert TASK_METRICS.get("multirc_f1a")(preds, ex, labels) == pytest.approx(75.0)


def test_multirc_em_needs_groups():
    with pytest.raises(ValueError, match="group"):
        TASK_METRICS.get("multirc_em")(["True"], golds("True"), ("False", "True"))


def test_label_metrics_need_a_label_set_and_lengths_must_match():
    with pytest.raises(ValueError, match="closed label set"):
        TASK_METRICS.get("f1")(["a"], golds("a"), None)
    with pytest.raises(ValueError, match="2 predictions for 1 examples"):
        TASK_METRICS.get("accuracy")(["a", "b"], golds("a"), None)
    with pytest.raises(UnknownNameError, match="valid names: accuracy"):
        TASK_METRICS.get("bleu")


def test_score_averages_two_metrics_and_keeps_nan():
    cb = get_task("cb")
    ex = golds("entailment", "entailment", "entailment", "contradiction", "contradiction", "neutral")
    preds = ["entailment", "entailment", "contradiction", "contradiction", "maybe", "entailment"]
    # macro F1 = 7/18 (above), accuracy = 3/6 -> score = (38.889 + 50) / 2
    out = cb.score(preds, ex)
    assert out["macro_f1"] == pytest.approx(100 * 7 / 18) and out["accuracy"] == pytest.approx(50.0)
    assert out["score"] == pytest.approx((100 * 7 / 18 + 50.0) / 2)
    out = get_task("stsb").score(["two"] * 3, golds("one point zero", "two point zero", "three point zero"))
    assert math.isnan(out["pearson"]) and math.isnan(out["score"])


def test_score_uses_the_abstract_label_set_in_the_abstract_style():
    # MRPC abstract: positive class "1". TP=1, FN=1 -> F1 2/3; accuracy 2/3 -> score 2/3
    out = get_task("mrpc").score(["1", "0", "0"], golds("1", "1", "0"), label_style="abstract")
    assert out["f1"] == pytest.approx(200 / 3) and out["score"] == pytest.approx(200 / 3)


def test_every_declared_metric_exists():
    from itsel_ray.tasks import SOURCE_TASKS, TARGET_TASKS

    for name in SOURCE_TASKS + TARGET_TASKS:
        for metric in get_task(name).metrics:
            assert metric in TASK_METRICS, (name, metric)
