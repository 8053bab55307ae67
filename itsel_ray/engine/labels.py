"""A task's closed label set as the tokenizer writes it, checked when a trial starts; golds in the model's form.

A label that the target length truncates, or two labels that tokenise to the same ids, would train a different task
without any error (under T5's vocabulary HellaSwag's `X` and `Y` are two pieces each, and a limit of one piece plus
EOS made them one target). `label_set` refuses both, naming the task and the labels.

A free-text gold may hold characters the vocabulary lacks (CosmosQA answers with `{`, `~` or `½`): the model can
never produce them, so `as_generated` compares predictions with the gold written back from its own token ids, as
a seq2seq evaluation that decodes its label ids does.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

from itsel_ray.data.encoded import encode_targets
from itsel_ray.engine.objectives import LabelSet, decode_texts
from itsel_ray.examples import Example
from itsel_ray.tasks import TaskSpec


class LabelSetError(ValueError):
    """Label words that the tokenizer truncates or merges; the message names the task, style and labels."""


def label_token_ids(tokenizer, words: Sequence[str]) -> list[list[int]]:
    """Untruncated token ids of each label word, written as a target (`encode_targets`: EOS included)."""
    return encode_targets(tokenizer, words)


def check_label_tokens(task: TaskSpec, label_style: str, words: Sequence[str], ids: Sequence[Sequence[int]],
                       tokenizer=None) -> None:
    """Raise when a label needs more than the task's max target length or two labels share their token ids."""
    def pieces(seq) -> str:
        return " ".join(tokenizer.convert_ids_to_tokens(list(seq))) if tokenizer is not None else str(list(seq))

    long = [(w, s) for w, s in zip(words, ids) if len(s) > task.max_target_length]
    if long:
        need = max(len(s) for _, s in long)
        listed = ", ".join(f"{w!r} -> [{pieces(s)}] ({len(s)} tokens)" for w, s in long)
        raise LabelSetError(
            f"task {task.name}, {label_style} labels: max_target_length {task.max_target_length} truncates {listed}; "
            f"the label set needs a max target length of at least {need}")
    seen: dict[tuple[int, ...], str] = {}
    for w, s in zip(words, ids):
        key = tuple(s)
        if key in seen:
            raise LabelSetError(
                f"task {task.name}, {label_style} labels: {seen[key]!r} and {w!r} tokenise to the same ids "
                f"[{pieces(s)}], so no model can tell them apart")
        seen[key] = w


def label_set(task: TaskSpec, tokenizer, label_style: str, device) -> LabelSet | None:
    """The task's label set in `label_style` as padded token ids on `device`; None for free-text targets."""
    words = task.label_words(label_style)
    if words is None:
        return None
    ids = label_token_ids(tokenizer, words)
    check_label_tokens(task, label_style, words, ids, tokenizer)
    return LabelSet.build(words, ids, tokenizer.pad_token_id, device)


def as_generated(tokenizer, examples: Sequence[Example], *, max_target: int) -> list[Example]:
    """Free-text golds (examples without a label index) written back from their token ids (truncated to
    `max_target`), so a prediction the model can produce is compared with a gold in the same form. Closed label
    sets are left as they are: rank and generation both answer with the label words themselves."""
    free = [i for i, e in enumerate(examples) if e.label is None]
    if not free:
        return list(examples)
    texts = [t for i in free for t in (examples[i].target, *examples[i].answers)]
    ids = encode_targets(tokenizer, texts, max_length=max_target)
    decoded = iter(decode_texts(tokenizer, ids))
    out = list(examples)
    for i in free:
        e = examples[i]
        target = next(decoded)
        answers = tuple(next(decoded) for _ in e.answers)
        out[i] = replace(e, target=target, answers=answers)
    return out
