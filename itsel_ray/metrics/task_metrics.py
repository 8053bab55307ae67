"""Task metrics, x100 as in the paper: `TASK_METRICS[name](predictions, examples, labels) -> float`.

`labels` is the task's label set in the style in use (None for free text). Predictions and golds are compared
after stripping. Invalid predictions (outside the label set, unparsable numbers) always count as wrong, following
the T5 metrics the authors used; a correlation that is undefined (constant predictions) is NaN, never 0. All
functions are pure.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter, defaultdict
from typing import Callable, Sequence

import numpy as np

from itsel_ray.registry import Registry
from itsel_ray.numbers import parse_number
from itsel_ray.examples import Example

Metric = Callable[[Sequence[str], Sequence[Example], "tuple[str, ...] | None"], float]
TASK_METRICS: Registry[Metric] = Registry("task metric")


def _check(predictions: Sequence[str], examples: Sequence[Example]) -> None:
    if len(predictions) != len(examples):
        raise ValueError(f"{len(predictions)} predictions for {len(examples)} examples")
    if not examples:
        raise ValueError("no examples to score")


def _need_labels(labels, metric: str, at_least: int = 2) -> tuple[str, ...]:
    if labels is None or len(labels) < at_least:
        raise ValueError(f"metric {metric!r} needs a closed label set of at least {at_least} labels, got {labels!r}")
    return tuple(labels)


def _pairs(predictions, examples):
    return [(p.strip(), e.target.strip()) for p, e in zip(predictions, examples)]


# ------------------------------------------------------------------------------------------------ classification


@TASK_METRICS.register("accuracy")
def accuracy(predictions, examples, labels=None) -> float:
    """Exact string match with the gold target."""
    _check(predictions, examples)
    return 100.0 * float(np.mean([p == g for p, g in _pairs(predictions, examples)]))


def _binary_f1(pairs: list[tuple[str, str]], labels: tuple[str, ...]) -> float:
    """F1 of the positive class labels[1]; an invalid prediction is flipped to the class opposite its gold (T5's
    f1_score_with_invalid). 0 when there is no positive gold or prediction at all (sklearn's zero_division)."""
    neg, pos = labels[0], labels[1]
    tp = fp = fn = 0
    for p, g in pairs:
        gold_pos = g == pos
        pred_pos = (p == pos) if p in (neg, pos) else not gold_pos
        tp += pred_pos and gold_pos
        fp += pred_pos and not gold_pos
        fn += gold_pos and not pred_pos
    return 100.0 * (2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)


@TASK_METRICS.register("f1")
def f1(predictions, examples, labels) -> float:
    """Binary F1, positive class = labels[1] (QQP, MRPC)."""
    _check(predictions, examples)
    return _binary_f1(_pairs(predictions, examples), _need_labels(labels, "f1"))


@TASK_METRICS.register("macro_f1")
def macro_f1(predictions, examples, labels) -> float:
    """Unweighted mean of the per-class F1 over every class in `labels` (CB). An invalid prediction is a miss for
    its gold class and a false positive for none; a class with no gold and no prediction scores 0 (sklearn)."""
    _check(predictions, examples)
    labels = _need_labels(labels, "macro_f1")
    pairs = _pairs(predictions, examples)
    scores = []
    for c in labels:
        tp = sum(p == c and g == c for p, g in pairs)
        fp = sum(p == c and g != c for p, g in pairs)
        fn = sum(p != c and g == c for p, g in pairs)
        scores.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return 100.0 * float(np.mean(scores))


@TASK_METRICS.register("mcc")
def mcc(predictions, examples, labels) -> float:
    """Matthews correlation (CoLA), multiclass form over gold x predicted categories, where every invalid
    prediction falls into one extra "invalid" category (what sklearn computes on the authors' mapped ids).
    0 when either side is constant, as sklearn: a constant classifier is at chance, not undefined."""
    _check(predictions, examples)
    labels = _need_labels(labels, "mcc")
    cats = {c: i for i, c in enumerate(labels)}
    k = len(labels) + 1  # the last category holds invalid predictions
    conf = np.zeros((k, k))
    for p, g in _pairs(predictions, examples):
        conf[cats.get(g, k - 1), cats.get(p, k - 1)] += 1
    t, q, n, c = conf.sum(axis=1), conf.sum(axis=0), conf.sum(), np.trace(conf)
    cov_tp = c * n - q @ t
    cov_pp, cov_tt = n * n - q @ q, n * n - t @ t
    return 0.0 if cov_pp * cov_tt == 0 else 100.0 * float(cov_tp / math.sqrt(cov_pp * cov_tt))


# ------------------------------------------------------------------------------------------------ regression


def _numbers(predictions, examples) -> tuple[np.ndarray, np.ndarray]:
    """(predicted, gold) numbers; an unparsable prediction is -1, as the authors."""
    _check(predictions, examples)
    pred = np.array([parse_number(p) for p in predictions], dtype=float)
    gold = np.array([parse_number(e.target) for e in examples], dtype=float)
    return pred, gold


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 2:
        return math.nan
    dx, dy = x - x.mean(), y - y.mean()
    denom = math.sqrt(float(dx @ dx) * float(dy @ dy))
    return math.nan if denom == 0 else 100.0 * float(dx @ dy) / denom


@TASK_METRICS.register("pearson")
def pearson(predictions, examples, labels=None) -> float:
    """Pearson correlation of parsed predictions with the (rounded) gold scores; NaN when undefined."""
    return _pearson(*_numbers(predictions, examples))


@TASK_METRICS.register("spearman")
def spearman(predictions, examples, labels=None) -> float:
    """Spearman correlation: Pearson on average ranks (ties share their mean rank); NaN when undefined."""
    from scipy.stats import rankdata  # here, not at import: scipy.stats costs every trial worker a second to start

    pred, gold = _numbers(predictions, examples)
    return _pearson(rankdata(pred), rankdata(gold))


# ------------------------------------------------------------------------------------------------ QA

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD normalisation as in T5: lower case, punctuation removed, articles removed, whitespace collapsed."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def _token_f1(pred: str, gold: str) -> float:
    common = Counter(pred.split()) & Counter(gold.split())
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred.split()), same / len(gold.split())
    return 2 * precision * recall / (precision + recall)


def _squad(predictions, examples, score: Callable[[str, str], float]) -> float:
    _check(predictions, examples)
    total = 0.0
    for p, e in zip(predictions, examples):
        p = normalize_answer(p)
        total += max(score(p, normalize_answer(g)) for g in e.golds)
    return 100.0 * total / len(examples)


@TASK_METRICS.register("squad_em")
def squad_em(predictions, examples, labels=None) -> float:
    """Exact match after SQuAD normalisation, the max over the gold answers (SQuAD, DROP, ReCoRD)."""
    return _squad(predictions, examples, lambda p, g: float(p == g))


@TASK_METRICS.register("squad_f1")
def squad_f1(predictions, examples, labels=None) -> float:
    """Token-overlap F1 after SQuAD normalisation, the max over the gold answers; 0 without overlap."""
    return _squad(predictions, examples, _token_f1)


@TASK_METRICS.register("multirc_f1a")
def multirc_f1a(predictions, examples, labels) -> float:
    """MultiRC F1a: binary F1 over every answer row, invalid predictions flipped (as `f1`)."""
    return f1(predictions, examples, labels)


@TASK_METRICS.register("multirc_em")
def multirc_em(predictions, examples, labels=None) -> float:
    """MultiRC EM: the share of questions (Example.group) whose every answer row is predicted exactly."""
    _check(predictions, examples)
    right: dict[str, bool] = defaultdict(lambda: True)
    for (p, g), e in zip(_pairs(predictions, examples), examples):
        if e.group is None:
            raise ValueError("multirc_em needs Example.group (the question id) on every example")
        right[e.group] &= p == g
    return 100.0 * sum(right.values()) / len(right)
