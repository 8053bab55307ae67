"""Length-bucketed batches (train.batching: bucketed): a pure function of (seed, step) over the same row stream as
random batches, less padding on skewed lengths, what the cost model assumes, and an exact resume."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from itsel_ray.artifacts import TrialFiles, read_json
from itsel_ray.engine.batching import batch_indices, bucket_keys, bucketed_batch_indices, pool_batches
from itsel_ray.engine.cost import SplitLengths, train_batches
from itsel_ray.engine.t5 import T5
from itsel_ray.schema import ConfigError
from itsel_ray.trial_config import TrainConfig

from .conftest import tiny_trial


def lengths(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    return rng.lognormal(3.5, 0.6, size=n).astype(int) + 3, rng.integers(2, 6, size=n)


def test_a_bucketed_batch_is_a_pure_function_of_seed_and_step():
    inputs, targets = lengths()
    keys = bucket_keys(inputs, targets)
    forward = [bucketed_batch_indices(keys, 16, seed=3, step=s) for s in range(300)]
    backward = [bucketed_batch_indices(keys.copy(), 16, seed=3, step=s) for s in reversed(range(300))][::-1]
    assert forward == backward  # no hidden state: any order of asking, a fresh copy of the keys
    assert forward != [bucketed_batch_indices(keys, 16, seed=4, step=s) for s in range(300)]
    assert all(len(b) == 16 for b in forward)


def test_each_pool_holds_the_rows_random_batching_would_and_pads_less():
    inputs, targets = lengths()
    keys = bucket_keys(inputs, targets)
    per_pool = pool_batches(len(keys), 16)
    assert per_pool == 64
    for pool in range(3):
        steps = range(pool * per_pool, (pool + 1) * per_pool)
        bucketed = Counter(i for s in steps for i in bucketed_batch_indices(keys, 16, seed=1, step=s))
        rand = Counter(i for s in steps for i in batch_indices(len(keys), 16, seed=1, step=s))
        assert bucketed == rand  # the same rows, only grouped differently: an epoch still sees every row once
    def pad_share(batches):
        real = sum(inputs[b].sum() for b in batches)
        return 1 - real / sum(len(b) * inputs[b].max() for b in batches)
    rand = [batch_indices(len(keys), 16, seed=1, step=s) for s in range(640)]
    buck = [bucketed_batch_indices(keys, 16, seed=1, step=s) for s in range(640)]
    assert pad_share(buck) < 0.25 * pad_share(rand)
    # the batch order inside a pool is shuffled: lengths do not climb step by step
    first = [inputs[b].max() for b in buck[:per_pool]]
    assert first != sorted(first)


def test_the_cost_model_draws_batches_like_the_engine():
    inputs, targets = lengths(4000, seed=2)
    keys = bucket_keys(inputs, targets)
    engine = np.mean([inputs[bucketed_batch_indices(keys, 32, seed=0, step=s)].max() for s in range(512)])
    model = np.mean([b[0].inputs for b in train_batches(SplitLengths(inputs, targets), batch_size=32,
                                                        batching="bucketed")])
    assert model == pytest.approx(engine, rel=0.05)
    engine_rand = np.mean([inputs[batch_indices(len(keys), 32, seed=0, step=s)].max() for s in range(512)])
    model_rand = np.mean([b[0].inputs for b in train_batches(SplitLengths(inputs, targets), batch_size=32)])
    assert model_rand == pytest.approx(engine_rand, rel=0.05)


def test_small_data_makes_smaller_pools():
    keys = bucket_keys(np.arange(40), np.ones(40, dtype=int))
    assert pool_batches(40, 16) == 2
    got = sorted(i for s in range(2) for i in bucketed_batch_indices(keys, 16, seed=0, step=s))
    assert got == sorted(batch_indices(40, 32, seed=0, step=0))


def test_the_option_is_checked():
    with pytest.raises(ConfigError, match="train.batching must be one of random, bucketed"):
        TrainConfig(batching="sorted")
    assert "batching" not in tiny_trial().identity()["train"]  # off: trials from before the option keep theirs
    assert tiny_trial(train={"batching": "bucketed"}).identity()["train"]["batching"] == "bucketed"


def test_a_bucketed_trial_resumes_exactly(tmp_path):
    cfg = tiny_trial(train={"batching": "bucketed", "max_steps": 30, "eval_every": 10, "save_every": 10})
    T5.run_trial(cfg, tmp_path / "straight")
    expected = read_json(TrialFiles(tmp_path / "straight").result)

    class Interrupt(Exception):
        pass

    def crash_at_10(metrics, checkpointed):
        if metrics["step"] == 10:
            raise Interrupt

    with pytest.raises(Interrupt):
        T5.run_trial(cfg, tmp_path / "part", report=crash_at_10)
    T5.run_trial(cfg, tmp_path / "part")
    again = read_json(TrialFiles(tmp_path / "part").result)
    assert again["history"] == expected["history"] and again["best_score"] == expected["best_score"]
    rand = read_json(TrialFiles(tmp_path / "straight").result)
    T5.run_trial(tiny_trial(train={"max_steps": 30, "eval_every": 10, "save_every": 10}), tmp_path / "random")
    assert read_json(TrialFiles(tmp_path / "random").result)["history"] != rand["history"]  # other batches


def test_two_datasets_of_one_size_never_share_a_cached_pool():
    """Trials run one after another in one worker process: a pool sorted for one task's lengths must not serve
    another task with as many rows."""
    a = bucket_keys(np.arange(100), np.ones(100, dtype=int))
    first = bucketed_batch_indices(a, 10, seed=0, step=0)
    del a
    b = bucket_keys(np.arange(100)[::-1].copy(), np.ones(100, dtype=int))
    second = bucketed_batch_indices(b, 10, seed=0, step=0)
    fresh = bucketed_batch_indices(b.copy(), 10, seed=0, step=0)
    assert second == fresh and second != first
