"""Spelled-out similarity scores: numpy-style 0.1 rounding, digit-by-digit words, and the lenient parser."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from itsel_ray.numbers import INVALID_NUMBER, parse_number, round_score, score_digits, spell_number


@given(st.integers(min_value=0, max_value=50))
def test_spelled_numbers_round_trip_on_the_grid(tenths):
    value = tenths / 10
    assert round_score(value) == value
    assert parse_number(spell_number(value)) == value
    assert parse_number(score_digits(value)) == value


@given(st.floats(min_value=0.0, max_value=5.0, allow_nan=False))
def test_any_score_lands_on_the_grid_within_half_a_step(x):
    r = round_score(x)
    assert abs(r - x) <= 0.05 + 1e-9
    assert parse_number(spell_number(x)) == r


@pytest.mark.parametrize("value,words", [
    (3.1, "three point one"), (0.0, "zero point zero"), (5.0, "five point zero"),
    (3.799999952316284, "three point eight"),  # STS-B's float32 3.8
    # numpy rounds x*10 half to even: 34.5 -> 34, 21.5 -> 22, 30.5 -> 30 (Python's round gives 3.5, 2.1, 3.1)
    ("3.45", "three point four"), ("2.15", "two point two"), ("3.05", "three point zero"), (4, "four point zero"),
])
def test_spell_number(value, words):
    assert spell_number(value) == words


@pytest.mark.parametrize("text,value", [
    ("three point one", 3.1), ("  four point two ", 4.2), ("3.8", 3.8), ("three", 3.0), ("point five", 0.5),
    # the authors' parser keeps the known words and drops the rest
    ("three xk point two", 3.2), ("three three", 33.0),
    ("banana", INVALID_NUMBER), ("", INVALID_NUMBER), ("point", INVALID_NUMBER), ("nan", INVALID_NUMBER),
])
def test_parse_number(text, value):
    assert parse_number(text) == value


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf, "abc"])
def test_scores_outside_the_range_do_not_spell(bad):
    with pytest.raises(ValueError):
        spell_number(bad)


@given(st.floats(min_value=0.0, max_value=5.0, allow_nan=False))
def test_rounding_is_numpys(x):
    import numpy as np

    assert round_score(x) == float(np.round(x, 1))


def test_t5_grid_option_rounds_to_fifths():
    # 3.7 * 5 = 18.5 -> even 18 -> 3.6; 3.9 * 5 = 19.5 -> 20 -> 4.0; 0.3 * 5 = 1.5 -> 2 -> 0.4
    assert [spell_number(x, steps_per_unit=5) for x in (3.7, 3.9, 0.3)] == [
        "three point six", "four point zero", "zero point four"]
