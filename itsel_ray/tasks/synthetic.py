"""Offline synthetic tasks with planted relatedness, for the demo sweep and the tests.

Every task is a label rule over one shared corpus: a sequence of filler words in which each of `N_GROUPS` keyword
groups is present (1-2 occurrences) with probability 1/2. Sources ask whether one group is present (4,000 training
rows); targets combine groups and have less data, from 1,024 down to 64 rows, so that, as in the paper, the
smaller targets gain most from transfer. A target is *related* to the sources whose group its rule reads, so a
prompt tuned on such a source already encodes part of what the target needs; that is the ground truth the
selectors are scored against (`RELATED`). Rows are generated deterministically from the task's data seed, so the
data is fixed across trial seeds, and they go through `datasets` like every other task.
"""

from __future__ import annotations

import hashlib
import random
from typing import Callable

from itsel_ray.registry import Registry
from itsel_ray.tasks.declare import declare_task
from itsel_ray.tasks.spec import FORMATTERS, GENERATORS, Example, FormatContext, Labels, TaskSpec

N_GROUPS = 8
GROUP_SIZE = 10
N_FILLER = 190
SEQ_LEN = 16
SOURCE_TRAIN, EVAL_ROWS = 4000, 500
LABELS = Labels(words=("no", "yes"), abstract=("0", "1"))


def group_words(g: int) -> list[str]:
    return [f"k{g}{chr(ord('a') + i)}" for i in range(GROUP_SIZE)]


FILLER = [f"w{i:03d}" for i in range(N_FILLER)]


def _count(tokens: list[str], g: int) -> int:
    words = set(group_words(g))
    return sum(t in words for t in tokens)


# A rule maps a token sequence to 0/1; `reads` lists the groups it looks at (the planted relatedness).
RULES: dict[str, tuple[Callable[[list[str]], int], tuple[int, ...]]] = {
    **{f"has{g}": ((lambda t, g=g: int(_count(t, g) > 0)), (g,)) for g in range(N_GROUPS)},
    "and01": (lambda t: int(_count(t, 0) > 0 and _count(t, 1) > 0), (0, 1)),
    "cnt2": (lambda t: int(_count(t, 2) >= 2), (2,)),
    "more34": (lambda t: int(_count(t, 3) > _count(t, 4)), (3, 4)),
    "and45": (lambda t: int(_count(t, 4) > 0 and _count(t, 5) > 0), (4, 5)),
    "or67": (lambda t: int(_count(t, 6) > 0 or _count(t, 7) > 0), (6, 7)),
    "or23": (lambda t: int(_count(t, 2) > 0 or _count(t, 3) > 0), (2, 3)),
    "cnt5": (lambda t: int(_count(t, 5) >= 2), (5,)),
    "and03": (lambda t: int(_count(t, 0) > 0 and _count(t, 3) > 0), (0, 3)),
    "more10": (lambda t: int(_count(t, 1) > _count(t, 0)), (1, 0)),
}


def sample_sequence(rng: random.Random) -> list[str]:
    """16 filler words, then each group inserted 1-2 times at random positions with probability 1/2."""
    tokens = [rng.choice(FILLER) for _ in range(SEQ_LEN)]
    for g in range(N_GROUPS):
        if rng.random() < 0.5:
            for _ in range(rng.randint(1, 2)):
                tokens.insert(rng.randrange(len(tokens) + 1), rng.choice(group_words(g)))
    return tokens


def generate_rows(rule: str, n: int, data_seed: int) -> list[dict]:
    """`n` class-balanced rows (text, label) for `rule`, by rejection sampling under `data_seed`."""
    fn, _ = RULES[rule]
    rng = random.Random(data_seed)
    rows, counts = [], [0, 0]
    quota = [n // 2, n - n // 2]
    while len(rows) < n:
        tokens = sample_sequence(rng)
        label = fn(tokens)
        if counts[label] < quota[label]:
            counts[label] += 1
            rows.append({"text": " ".join(tokens), "label": label})
    return rows


def _data_seed(rule: str, split: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{rule}/{split}".encode()).digest()[:4], "little")


@GENERATORS.register("synthetic")
def generate(split: str, *, rule: str, train_rows: int, eval_rows: int = EVAL_ROWS):
    """A `datasets.Dataset` of the rule's rows for `split` ("train" or "validation")."""
    import datasets

    n = train_rows if split == "train" else eval_rows
    rows = generate_rows(rule, n, _data_seed(rule, split))
    return datasets.Dataset.from_list(rows)


@FORMATTERS.register("synthetic")
def format_synthetic(row, spec: TaskSpec, ctx: FormatContext) -> list[Example]:
    """The row's text as it is -> its verbalised label (the synthetic keyword tasks)."""
    target, label = spec.label_target(row["label"], ctx)
    return [Example(input=row["text"], target=target, label=label)]


def vocabulary() -> list[str]:
    """Every word the synthetic tasks use (label words included), in a fixed order: the tokenizer's vocabulary."""
    words = list(LABELS.words) + list(LABELS.abstract or ())
    for g in range(N_GROUPS):
        words += group_words(g)
    return words + FILLER


VOCABULARIES: Registry[Callable[[], list[str]]] = Registry("vocabulary")
VOCABULARIES.add("synthetic", vocabulary)


def _declare(rule: str, role: str, train_rows: int, description: str) -> TaskSpec:
    """One synthetic task, through the declaration function every task file uses."""
    return declare_task({
        "name": f"syn_{rule}", "role": role, "description": description, "task_type": "synthetic keyword rule",
        "prefix": "", "data": {"kind": "generated", "path": "synthetic",
                               "options": {"rule": rule, "train_rows": train_rows}},
        "columns": ["text", "label"], "formatter": "synthetic",
        "labels": {"words": list(LABELS.words), "abstract": list(LABELS.abstract)}, "metrics": ["accuracy"],
        "train_size": train_rows, "max_source_length": 64, "max_target_length": 4,
    }, where=__file__)


SYNTHETIC_SOURCES = tuple(
    _declare(f"has{g}", "synthetic-source", SOURCE_TRAIN, f"is a word of keyword group {g} present?").name
    for g in range(N_GROUPS)
)
SYNTHETIC_TARGETS = tuple(
    _declare(rule, "synthetic-target", rows, desc).name
    for rule, rows, desc in [
        ("and01", 1024, "are groups 0 and 1 both present?"),
        ("cnt2", 512, "does group 2 occur at least twice?"),
        ("more34", 256, "does group 3 occur more often than group 4?"),
        ("and45", 128, "are groups 4 and 5 both present?"),
        ("or67", 64, "is group 6 or group 7 present?"),
        ("or23", 768, "is group 2 or group 3 present?"),
        ("cnt5", 384, "does group 5 occur at least twice?"),
        ("and03", 192, "are groups 0 and 3 both present?"),
        ("more10", 160, "does group 1 occur more often than group 0?"),
    ]
)


def related_sources(target: str) -> tuple[str, ...]:
    """The planted ground truth: sources whose group the target's rule reads positively.

    A `more` rule reads its second group with a negative sign (`more34`: more of 3 *than* 4), so that group's
    source is anti-related there (`anti_related_sources`) and is left out.
    """
    rule = target.removeprefix("syn_")
    groups = RULES[rule][1][:1] if rule.startswith("more") else RULES[rule][1]
    return tuple(f"syn_has{g}" for g in groups)


def anti_related_sources(target: str) -> tuple[str, ...]:
    """Sources whose group the target's rule reads with a negative sign: neither related nor a fair unrelated."""
    rule = target.removeprefix("syn_")
    return tuple(f"syn_has{g}" for g in RULES[rule][1][1:]) if rule.startswith("more") else ()


RELATED = {t: related_sources(t) for t in SYNTHETIC_TARGETS}
ANTI_RELATED = {t: anti_related_sources(t) for t in SYNTHETIC_TARGETS}
