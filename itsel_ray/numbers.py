"""Similarity scores as spelled-out text (STS-B, CxC): the one writer and the one parser, shared by the row
formatters and the correlation metrics so that what is trained is exactly what is scored.

A score is rounded to 0.1 the way the authors' code rounds it (numpy: round-half-even on ``x * 10``, so 3.45 ->
3.4, where Python's ``round`` gives 3.5), written as its digits ("3.1"), and in the word style spelled digit by
digit ("three point one"). T5's coarser 0.2 grid is the option steps_per_unit=5.
"""

from __future__ import annotations

import math
import re

import numpy as np

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
POINT_WORD = "point"
INVALID_NUMBER = -1.0  # what an unparsable prediction counts as (the authors' default)

_CHAR_TO_WORD = {**{str(d): w for d, w in enumerate(DIGIT_WORDS)}, ".": POINT_WORD}
_WORD_TO_CHAR = {w: c for c, w in _CHAR_TO_WORD.items()}
_DECIMAL = re.compile(r"\d+(?:\.\d+)?|\.\d+")


def round_score(value: float | str, steps_per_unit: int = 10) -> float:
    """`value` on a grid of 1/steps_per_unit, rounded as numpy's ``np.round(x, 1)`` does: ``rint(x * 10) / 10``.

    The default is the authors' 0.1 grid; steps_per_unit=5 gives T5's 0.2 grid (``np.round(x * 5) / 5``).
    """
    x = float(value)
    if not math.isfinite(x) or x < 0:
        raise ValueError(f"similarity score {value!r} is not a finite, non-negative number")
    return float(np.rint(x * steps_per_unit) / steps_per_unit)


def score_digits(value: float | str, steps_per_unit: int = 10) -> str:
    """The rounded score as digits, e.g. 3.8 -> "3.8", 5 -> "5.0" (the PROMPT-ABSTRACT target)."""
    return f"{round_score(value, steps_per_unit):.1f}"


def spell_number(value: float | str, steps_per_unit: int = 10) -> str:
    """The rounded score spelled digit by digit, e.g. 3.14 -> "three point one" (the PROMPT-TEXT target)."""
    return " ".join(_CHAR_TO_WORD[c] for c in score_digits(value, steps_per_unit))


def parse_number(text: str, default: float = INVALID_NUMBER) -> float:
    """A prediction back to a float; `default` when nothing parses.

    A plain decimal ("3.8", the abstract style) is read directly. Otherwise, as the authors' STS-B post-processor
    does, the known words are kept, the rest dropped, and the joined characters read as a float: "three xk point
    two" -> 3.2, "three" -> 3.0, "point five" -> 0.5, "banana" -> default.
    """
    text = text.strip()
    if _DECIMAL.fullmatch(text):
        return float(text)
    chars = "".join(_WORD_TO_CHAR[t] for t in text.split() if t in _WORD_TO_CHAR)
    try:
        return float(chars)
    except ValueError:
        return default
