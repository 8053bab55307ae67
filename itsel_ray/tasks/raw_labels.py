"""How a dataset's raw label value becomes a class index: class ids, the dataset's own values, or label words.

Datasets spell labels in several ways: class ids (the Hub's ClassLabel columns, `0`..`n-1`, also as the strings a
CSV reader returns), the dataset's own values (WinoGrande's "1"/"2", RACE's letters: `Labels.encoding`), booleans
(SuperGLUE's original JSON lines) and label words ("entailment"; CR's Hub files spell "positive", the authors'
verbalizer "postive"). Each is accepted where it names one class without doubt, and only there:

- a class id `0`..`n-1` (an int, an integral float, or its digit string) when the task has no encoding of its own;
- a value of the task's encoding (`str(raw)` in `Labels.encoding`);
- a boolean only when the label words are False/True themselves (BoolQ, MultiRC, WiC, WSC);
- a label word, exactly, or unique under case and "_"/"-"/space folding, or through `WORD_ALIASES`.

Anything else raises `LabelValueError` saying what the task expects. A prepare run notes which readings other than
plain ids it used (`noting_labels`), so that a split given as words is said once, with the mapping.
"""

from __future__ import annotations

import math
import re
from contextlib import contextmanager
from contextvars import ContextVar
from numbers import Integral, Real
from typing import Any, Iterator

# Spellings of a label word seen in real files, by the word the task declares. "postive" is the authors' CR
# verbalizer (kept as their target); the Hub's CR files say "positive" in label_text.
WORD_ALIASES: dict[str, tuple[str, ...]] = {"postive": ("positive",)}

HIDDEN = (-1, "", "-1")  # how hidden test labels are written (-1 in ClassLabel columns, "" in string columns)


class LabelValueError(ValueError):
    """A raw label that names no class of the task; the message says what is expected."""


def fold(text: str) -> str:
    """Case and separator folding: "Not_Entailment", "not entailment" and "not-entailment" are one word."""
    return re.sub(r"[\s_\-]+", "_", str(text).strip().casefold())


def _words_by_fold(words: tuple[str, ...]) -> dict[str, set[int]]:
    found: dict[str, set[int]] = {}
    for i, word in enumerate(words):
        for spelling in (word, *WORD_ALIASES.get(word, ())):
            found.setdefault(fold(spelling), set()).add(i)
    return found


def _expected(labels, n: int) -> str:
    words = labels.words or ()
    parts = []
    if labels.encoding is not None:
        parts.append(f"one of the dataset's values {', '.join(labels.encoding)}")
    else:
        parts.append(f"a class id 0..{n - 1}")
    if words and tuple(words) != tuple(labels.encoding or ()):
        parts.append(f"a label word ({', '.join(words)})")
    return " or ".join(parts)


def read_label(labels, raw: Any) -> tuple[int, str]:
    """(class index, how it was read: "id", "value", "bool" or "word") of raw label `raw` under `labels`
    (a `tasks.spec.Labels`); raises LabelValueError when it names no class."""
    words = tuple(labels.words or ())
    n = len(words or labels.abstract or ())
    expected = _expected(labels, n)
    hint = " (hidden test labels are -1 or empty; evaluate on a labelled split)" if _hidden(raw) else ""
    if raw is None:
        raise LabelValueError(f"label is empty (null); expected {expected}")
    if isinstance(raw, bool):
        if [fold(w) for w in words] == ["false", "true"]:
            return int(raw), "bool"
        raise LabelValueError(f"label {raw!r} is a boolean, which names no class of this task; expected {expected}")
    if labels.encoding is not None:
        key = _integral_text(raw) if isinstance(raw, Real) else str(raw).strip()
        if key in labels.encoding:
            return labels.encoding.index(key), "value"
    elif isinstance(raw, Integral) or (isinstance(raw, Real) and _is_integral(raw)):
        if 0 <= int(raw) < n:
            return int(raw), "id"
        raise LabelValueError(f"label {raw!r} is outside the label set: expected {expected}{hint}")
    elif isinstance(raw, str) and re.fullmatch(r"\s*\d+\s*", raw):
        if 0 <= int(raw) < n:
            return int(raw), "id"
        raise LabelValueError(f"label {raw!r} is outside the label set: expected {expected}{hint}")
    if isinstance(raw, str) and words:
        if raw in words:
            return words.index(raw), "word"
        matches = _words_by_fold(words).get(fold(raw), set())
        if len(matches) == 1:
            return next(iter(matches)), "word"
        if len(matches) > 1:
            raise LabelValueError(f"label {raw!r} matches several label words ({', '.join(words[i] for i in sorted(matches))})")
    raise LabelValueError(f"label {raw!r} is outside the label set: expected {expected}{hint}")


def _is_integral(value: Real) -> bool:
    return math.isfinite(float(value)) and float(value) == int(value)


def _integral_text(value: Real) -> str:
    return str(int(value)) if _is_integral(value) else str(value)


def _hidden(raw: Any) -> bool:
    return not isinstance(raw, bool) and (raw in HIDDEN or (isinstance(raw, str) and not raw.strip()))


# ------------------------------------------------------------------------------------------------ said once

_READINGS: ContextVar[dict | None] = ContextVar("label_readings", default=None)


@contextmanager
def noting_labels() -> Iterator[dict]:
    """Collect, while formatting, every raw label read other than as a plain class id: {how: {raw: index}}."""
    token = _READINGS.set({})
    try:
        yield _READINGS.get()
    finally:
        _READINGS.reset(token)


def note_reading(how: str, raw: Any, index: int) -> None:
    seen = _READINGS.get()
    if seen is not None and how in ("word", "bool"):
        seen.setdefault(how, {}).setdefault(repr(raw), index)


def describe_readings(seen: dict, words: tuple[str, ...] | None) -> str | None:
    """One sentence on how labels were read, e.g. "labels given as label words ('entailment' -> 0,
    'positive' -> 1 (postive)), mapped to class ids"; None when every label was a class id or a dataset value."""
    parts = []
    for how, title in (("word", "label words"), ("bool", "booleans")):
        shown = []
        for raw, i in sorted((seen.get(how) or {}).items(), key=lambda kv: kv[1]):
            word = words[i] if words and i < len(words) else None
            same = word is None or raw.strip("'\"") == word
            shown.append(f"{raw} -> {i}" + ("" if same else f" ({word})"))
        if shown:
            parts.append(f"{title} ({', '.join(shown)})")
    return "labels given as " + " and ".join(parts) + ", mapped to class ids" if parts else None
