"""The contract of a task (itsel_ray/task_check.py) over every declared task, on a few rows in its real schema:
fixture rows for the paper's Hub tasks, the task's own rows for generated and local ones. A newly declared task is
checked here without a test of its own; the checks are shown to fail on broken declarations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from itsel_ray.metrics.task_metrics import TASK_METRICS
from itsel_ray.task_check import check_task, sample_rows, wrong_predictions
from itsel_ray.tasks import TASKS, get_task
from itsel_ray.tasks.declare import declare_task, forget
from itsel_ray.tasks.spec import clear_row_cache

FIXTURES = Path(__file__).parent / "fixtures" / "tasks"
T5 = Path(__file__).resolve().parents[2] / "shared" / "anchors" / "t5_tokenizer"
DECLARED = TASKS.names()  # every task the package declares (the paper's, the synthetic family)


def contract_rows(name: str) -> dict[str, list[dict]]:
    """Fixture rows in the dataset's schema where the task reads the Hub, else the task's own first rows."""
    fixture = FIXTURES / f"{name}.json"
    if fixture.is_file():
        return json.loads(fixture.read_text())
    spec = get_task(name)
    if spec.data.kind == "hub":
        pytest.fail(f"task {name} reads the Hub and has no fixture rows: add {fixture} (a few rows per split)")
    return sample_rows(spec)


def load_t5():
    if not T5.is_dir():
        return None
    from transformers import T5TokenizerFast

    return T5TokenizerFast.from_pretrained(str(T5))


@pytest.fixture(scope="module")
def t5_or_none():
    return load_t5()


@pytest.fixture(scope="module")
def t5(t5_or_none):
    if t5_or_none is None:
        pytest.skip("the T5 tokenizer anchor is not present")
    return t5_or_none


@pytest.mark.parametrize("name", DECLARED)
def test_every_declared_task_meets_the_contract(name, t5_or_none):
    """Under the real T5 vocabulary when the anchor is present (test_the_t5_vocabulary_is_checked says whether)."""
    result = check_task(get_task(name), contract_rows(name), tokenizer=t5_or_none)
    assert result.ok, result.problems
    assert result.examples > 0


def test_the_t5_vocabulary_is_checked(t5):
    result = check_task(get_task("hellaswag"), contract_rows("hellaswag"), tokenizer=t5)
    assert result.ok and not any("no tokenizer" in n for n in result.notes)


# ------------------------------------------------------------------------------------------------ it can fail


@pytest.fixture
def scratch(tmp_path):
    made = []

    def declare(**entry):
        base = {"name": "contract_probe", "data": {"kind": "local", "path": str(tmp_path)},
                "fields": ["text"], "labels": ["no", "yes"], "train_size": 2}
        spec = declare_task({**base, **entry}, where="test")
        made.append(spec)
        return spec

    yield declare
    forget(made)
    clear_row_cache()


ROWS = {"train": [{"text": "a b", "label": 0}, {"text": "c d", "label": 1}], "validation": [{"text": "e", "label": 1}]}


def test_a_label_word_the_vocabulary_cannot_write_is_a_problem(scratch, t5):
    spec = scratch(labels=["no", "\u2603\u2604"])
    result = check_task(spec, ROWS, tokenizer=t5)
    assert any("unknown token" in p for p in result.problems), result.problems


def test_a_label_truncated_by_the_target_length_is_a_problem(scratch, t5):
    spec = scratch(labels=["no", "absolutely not at all"], max_target_length=2)
    result = check_task(spec, ROWS, tokenizer=t5)
    assert any("truncates" in p for p in result.problems), result.problems


def test_a_metric_that_does_not_reward_the_gold_targets_is_a_problem(scratch):
    TASK_METRICS.add("contract_half", lambda predictions, examples, labels: 50.0)
    try:
        result = check_task(scratch(metrics=["contract_half"]), ROWS)
    finally:
        TASK_METRICS.remove("contract_half")
    assert any("gold targets score 50" in p for p in result.problems), result.problems


def test_a_metric_that_rewards_wrong_predictions_or_leaves_its_range_is_a_problem(scratch):
    TASK_METRICS.add("contract_always", lambda predictions, examples, labels: 100.0)
    TASK_METRICS.add("contract_huge", lambda predictions, examples, labels: 1000.0)
    try:
        result = check_task(scratch(metrics=["contract_always", "contract_huge"]), ROWS)
    finally:
        TASK_METRICS.remove("contract_always")
        TASK_METRICS.remove("contract_huge")
    assert any("contract_always: wrong predictions score 100" in p for p in result.problems), result.problems
    assert any("1000.0 on the gold targets is outside [-100, 100]" in p for p in result.problems), result.problems


def test_a_row_outside_the_label_set_or_a_missing_column_is_a_problem(scratch):
    spec = scratch()
    bad = {"train": [{"text": "a", "label": 5}]}
    assert any("label 5 is outside the label set" in p for p in check_task(spec, bad).problems)
    missing = {"train": [{"body": "a", "label": 0}]}
    assert any("missing column 'text'" in p for p in check_task(spec, missing).problems)


def test_wrong_predictions_differ_from_every_gold():
    spec = get_task("squad")
    rows = json.loads((FIXTURES / "squad.json").read_text())
    examples = spec.examples_from_rows(rows["train"] + rows["validation"], split="validation")
    for pred, e in zip(wrong_predictions(spec, "text", examples), examples):
        assert pred not in e.golds
