"""Every paper task through the engine: fixture rows in the datasets' real schemas, a tiny T5, no download."""

import dataclasses
import json
import math
import re
from pathlib import Path

import pytest

from itsel_ray.artifacts import TrialFiles, read_json
from itsel_ray.trial_config import TrialConfig
from itsel_ray.tasks import SOURCE_TASKS, TARGET_TASKS, get_task
from itsel_ray.tasks import spec as spec_module
from itsel_ray.tasks.synthetic import VOCABULARIES
from itsel_ray.engine.t5 import T5
from tests.conftest import TEST_THREADS

FIXTURES = Path(__file__).parent / "fixtures" / "tasks"


def _strings(obj):
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)


def _fixture_vocabulary() -> list[str]:
    """Every word (split as the tokenizer splits) of every fixture row, label word and spelled-out number."""
    text = [s for f in sorted(FIXTURES.glob("*.json")) for s in _strings(json.loads(f.read_text()))]
    for name in (*SOURCE_TASKS, *TARGET_TASKS):
        for style in ("text", "abstract"):
            text += list(get_task(name).label_words(style) or ())
    text += ["zero one two three four five six seven eight nine point"]
    words = {w for t in text for w in re.findall(r"\w+|[^\w\s]+", t)}
    return sorted(words)


if "fixtures" not in VOCABULARIES:
    VOCABULARIES.add("fixtures", _fixture_vocabulary)


@pytest.fixture
def fixture_rows(monkeypatch):
    def fetch(spec, split, data_dir=None, mirror=None):
        rows = json.loads((FIXTURES / f"{spec.name}.json").read_text())[split]
        columns = sorted({k for r in rows for k in r})
        return rows, columns

    monkeypatch.setattr(spec_module, "fetch_rows", fetch)
    # ReCoRD carves its validation rows from train (1,000 in the paper); the fixture has two training rows
    record = get_task("record")
    monkeypatch.setitem(spec_module.TASKS._items, "record",
                        dataclasses.replace(record, data=dataclasses.replace(record.data, carve_validation=1)))


def _cfg(task: str, loss: str, eval_mode: str) -> TrialConfig:
    return TrialConfig.from_dict({
        "task": task, "seed": 1,
        "model": {"config": {"d_model": 32, "d_ff": 64, "num_layers": 1, "num_decoder_layers": 1, "num_heads": 2,
                             "d_kv": 16, "dropout_rate": 0.1}, "tokenizer": "vocab:fixtures"},
        "prompt": {"length": 4},
        "optim": {"name": "adafactor", "lr": 0.5},
        "train": {"max_steps": 2, "batch_size": 2, "eval_every": 2, "save_every": 1, "loss": loss,
                  "eval_mode": eval_mode, "max_new_tokens": 6, "threads": TEST_THREADS},
    })


@pytest.mark.parametrize("task", [*SOURCE_TASKS, *TARGET_TASKS])
def test_every_task_trains_and_evaluates_end_to_end(task, fixture_rows, tmp_path):
    result = T5.run_trial(_cfg(task, "sequence", "generate"), tmp_path)
    record = read_json(TrialFiles(tmp_path).result)
    assert record["status"] == "done" and record["steps"] == 2 and len(record["history"]) == 1
    spec = get_task(task)
    evaluated = record["history"][0]
    assert set(spec.metrics) <= set(evaluated)
    # scores are on the 0-100 scale, or NaN where undefined (a correlation of constant predictions): never faked
    for m in spec.metrics:
        assert math.isnan(evaluated[m]) or -100.0 <= evaluated[m] <= 100.0
    assert sorted(TrialFiles(tmp_path).snapshots()) == [0, 1, 2]
    assert result.steps == 2


@pytest.mark.parametrize("task", [t for t in (*SOURCE_TASKS, *TARGET_TASKS) if get_task(t).label_words() is not None])
def test_closed_label_tasks_train_with_the_label_loss_and_rank(task, fixture_rows, tmp_path):
    T5.run_trial(_cfg(task, "label", "rank"), tmp_path)
    record = read_json(TrialFiles(tmp_path).result)
    assert record["history"][0]["valid"] == 100.0  # rank classification always answers with a label word
