"""The contract every declared task must meet, checked on a few of its rows: the same checks run in the test suite
over every task the project declares and, through `itsel-ray list tasks --include FILE --check`, on a user's own.

On rows in the task's real schema, per label style:
  - every row formats (columns present, labels inside the label set), into examples with a non-empty input and
    target; an example's label index names its own target (an input without the task's prefix is noted);
  - under a tokenizer (the real T5 vocabulary when given): each label word tokenises without unknown pieces,
    within the task's max target length, and no two labels share their token ids (the engine's own rule);
  - each metric scores the gold targets as 100 and wrong predictions (another label, another example's answer)
    below 100, always within [-100, 100] (correlations and MCC go below 0); a metric undefined on these few rows
    (a correlation of one row) is noted.

No I/O here except `sample_rows`, which reads a task's first rows from wherever it declares them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from itsel_ray.examples import Example
from itsel_ray.tasks import TaskSpec
from itsel_ray.tasks.spec import LABEL_STYLES, SPLITS, TaskDataError, fetch_rows

ROWS = 8  # rows per split: enough for every metric to be defined on most tasks, quick on any


@dataclass
class TaskCheck:
    """The outcome for one task: problems (the contract is broken) and notes (what could not be checked)."""

    task: str
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    examples: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def line(self) -> str:
        state = "ok" if self.ok else f"{len(self.problems)} problem(s)"
        return f"{self.task}: {state} ({self.examples} examples checked)"


def check_task(spec: TaskSpec, rows: Mapping[str, Sequence[Mapping[str, Any]]], *, tokenizer=None) -> TaskCheck:
    """Check `spec` on `rows` ({split: rows}, train and/or validation) under `tokenizer` (None: labels are not
    tokenised, and a note says so)."""
    out = TaskCheck(spec.name)
    if not any(rows.values()):
        out.problems.append("no rows to check")
        return out
    for style in LABEL_STYLES:
        examples = _formatted(spec, rows, style, out)
        if examples is None:
            continue
        out.examples += len(examples)
        _check_examples(spec, style, examples, out)
        _check_labels(spec, style, tokenizer, out)
        scored = _formatted(spec, rows, style, out, as_evaluation=True)
        if scored:
            _check_metrics(spec, style, scored, out)
    if tokenizer is None:
        out.notes.append("label tokens not checked (no tokenizer)")
    return out


def _formatted(spec: TaskSpec, rows, style: str, out: TaskCheck, *, as_evaluation: bool = False):
    examples: list[Example] = []
    for split, split_rows in rows.items():
        if not split_rows:
            continue
        logical = "validation" if as_evaluation else split
        try:
            examples += spec.examples_from_rows(list(split_rows), split=logical, label_style=style, where=split)
        except TaskDataError as err:
            if not as_evaluation:
                out.problems.append(f"{style} labels: {err}")
            return None
    return examples


def _check_examples(spec: TaskSpec, style: str, examples: list[Example], out: TaskCheck) -> None:
    """One line per kind of fault, naming the first example and how many share it."""
    words = spec.label_words(style)
    faults: dict[str, list[int]] = {}
    unprefixed = []
    for i, e in enumerate(examples):
        if not e.input.strip():
            faults.setdefault("empty input", []).append(i)
        elif spec.prefix and not e.input.startswith(spec.prefix):
            unprefixed.append(i)
        if not e.target.strip():
            faults.setdefault("empty target", []).append(i)
        if e.label is not None and words is not None and (not 0 <= e.label < len(words) or words[e.label] != e.target):
            faults.setdefault(f"label {e.label} does not name its target {e.target!r}", []).append(i)
    for fault, where in faults.items():
        out.problems.append(f"{style} labels, example {where[0]}: {fault} ({len(where)} of {len(examples)} examples)")
    if unprefixed:  # a formatter of the user's own may leave the prefix out on purpose
        out.notes.append(f"{style} labels: {len(unprefixed)} of {len(examples)} inputs do not start with the prefix "
                         f"{spec.prefix!r} (does the formatter use it?)")


def _check_labels(spec: TaskSpec, style: str, tokenizer, out: TaskCheck) -> None:
    words = spec.label_words(style)
    if tokenizer is None or words is None:
        return
    from itsel_ray.engine.labels import LabelSetError, check_label_tokens, label_token_ids

    ids = label_token_ids(tokenizer, words)
    unk = getattr(tokenizer, "unk_token_id", None)
    unknown = [w for w, seq in zip(words, ids) if unk is not None and unk in seq]
    if unknown:
        out.problems.append(f"{style} labels {unknown}: the tokenizer has no pieces for them (unknown token)")
    try:
        check_label_tokens(spec, style, words, ids, tokenizer)
    except LabelSetError as err:
        out.problems.append(str(err))


def wrong_predictions(spec: TaskSpec, style: str, examples: Sequence[Example]) -> list[str]:
    """Predictions that must not score 100: another label word for labelled examples, else another example's
    target (the reversed order), else an empty answer."""
    words = spec.label_words(style)
    out = []
    for i, e in enumerate(examples):
        if e.label is not None and words is not None and len(words) > 1:
            out.append(words[(e.label + 1) % len(words)])
            continue
        other = examples[len(examples) - 1 - i].target
        out.append(other if other.strip() != e.target.strip() and other not in e.golds else "")
    return out


def _check_metrics(spec: TaskSpec, style: str, examples: list[Example], out: TaskCheck) -> None:
    perfect = spec.score([e.target for e in examples], examples, label_style=style)
    wrong = spec.score(wrong_predictions(spec, style, examples), examples, label_style=style)
    for metric in spec.metrics:
        good, bad = perfect[metric], wrong[metric]
        for name, value in (("gold targets", good), ("wrong predictions", bad)):
            if not (math.isnan(value) or -100.0 - 1e-9 <= value <= 100.0 + 1e-9):
                out.problems.append(f"{style} labels, metric {metric}: {value} on the {name} is outside [-100, 100]")
        if math.isnan(good):
            out.notes.append(f"{style} labels, metric {metric}: undefined on these {len(examples)} rows")
            continue
        if abs(good - 100.0) > 1e-6:
            out.problems.append(f"{style} labels, metric {metric}: the gold targets score {good:.4g}, not 100")
        if not math.isnan(bad) and bad >= 100.0 - 1e-6:
            out.problems.append(f"{style} labels, metric {metric}: wrong predictions score {bad:.4g}")


def sample_rows(spec: TaskSpec, n: int = ROWS, *, data_dir=None, mirror=None) -> dict[str, list[dict]]:
    """The first `n` rows of each declared split, read from the task's own source (a Hub task reads the Hub or a
    mirror). A split that cannot be read raises TaskDataError naming the task."""
    out = {}
    for split in SPLITS:
        if split not in spec.data.splits:
            continue
        if split == "validation" and spec.data.carve_validation:
            continue  # carved from train: the training rows stand for both
        rows, _ = fetch_rows(spec, split, data_dir, mirror)  # cached per process
        out[split] = rows[:n]
    return out


def load_tokenizer(name: str | None):
    """The tokenizer to check labels under: a Hub id or folder, or "vocab:<name>"; (tokenizer, note)."""
    if not name:
        return None, "label tokens not checked (no --tokenizer)"
    try:
        from itsel_ray.engine.backbone import build_tokenizer

        return build_tokenizer(name), ""
    except Exception as err:  # offline without a cached copy, a wrong path: the rest of the checks still run
        return None, f"label tokens not checked: cannot load tokenizer {name!r} ({type(err).__name__}: " \
                     f"{str(err).splitlines()[0] if str(err) else ''})"
