"""How long a row may be: a bound on the text a task formats, so that one runaway row (a whole file pasted into
a cell, a missing line break) is refused with its row named instead of being padded and tokenised for minutes.

The bound is generous: the longest inputs of the paper's tasks (ReCoRD, RACE, MultiRC passages) are a few
thousand characters, and a task reads at most `max_source_length` tokens of any input anyway.
"""

from __future__ import annotations

CHARS_PER_TOKEN_BOUND = 400  # a T5 piece is rarely over 16 characters; 400 leaves room for any real text
MIN_ROW_CHARS = 100_000


def row_char_limit(spec) -> int:
    """Characters one row's formatted input (or its text columns together) may hold for task `spec`."""
    return max(MIN_ROW_CHARS, CHARS_PER_TOKEN_BOUND * int(spec.max_source_length))


def limit_reason(spec) -> str:
    return (f"the most a row of task {spec.name} may hold ({row_char_limit(spec):,} characters; its inputs are cut "
            f"at {spec.max_source_length} tokens)")


def check_lengths(spec, examples: list, ctx) -> list:
    """`examples` unchanged, or a TaskDataError (through `ctx.error`) naming the row when an input or target is
    longer than `row_char_limit`."""
    limit = row_char_limit(spec)
    for ex in examples:
        longest = max(len(ex.input), len(ex.target))
        if longest > limit:
            raise ctx.error(f"the formatted row holds {longest:,} characters, above {limit_reason(spec)}; "
                            "shorten or drop the row")
    return examples
