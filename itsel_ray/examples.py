"""The text-to-text example: what a task's formatter produces, the engine trains on and a task metric scores.

It lives below both the task declarations and the metrics, so that neither imports the other to share it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Example:
    """One text-to-text example.

    input: the full model input, task prefix included. target: the training target text. label: index into the
    task's label set for closed label sets, else None. answers: every gold string the metric accepts (QA); empty
    means (target,). group: the question id MultiRC groups answers by for exact match.
    """

    input: str
    target: str
    label: int | None = None
    answers: tuple[str, ...] = ()
    group: str | None = None

    @property
    def golds(self) -> tuple[str, ...]:
        return self.answers or (self.target,)
