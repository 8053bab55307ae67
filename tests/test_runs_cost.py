"""The sweep's cost before it starts: lengths from the prepared data or from the tasks' declarations, the engine's
trial FLOPs over them, the total in GPU-hours at a measured or stated throughput, and `--dry-run`'s table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from itsel_ray.data.prepare import PrepareSettings, prepare_task
from itsel_ray.engine import get_engine
from itsel_ray.engine.cost import SplitLengths, TaskLengths
from itsel_ray.engine.data import prepare_data
from itsel_ray.engine.t5 import T5
from itsel_ray.runs import cost as runs_cost
from itsel_ray.runs.cost import (
    ASSUMED, CALIBRATION_ENV, cost_lines, declared_lengths, prepared_lengths, sweep_costs, throughput,
)
from itsel_ray.runs.plan import plan_stage
from itsel_ray.runs.storage import Storage
from itsel_ray.runs.sweep_file import load_sweep
from itsel_ray.schema import ConfigError
from itsel_ray.sweep import cli
from itsel_ray.tasks import get_task
from itsel_ray.tasks.declare import declare_task
from itsel_ray.trial_config import DataConfig, ModelConfig, TrialConfig

TINY = {"d_model": 16, "d_ff": 32, "num_layers": 1, "num_decoder_layers": 1, "num_heads": 2, "d_kv": 8}
TOKENIZER = "vocab:synthetic"


@pytest.fixture(autouse=True)
def _no_calibration(monkeypatch):
    monkeypatch.delenv(CALIBRATION_ENV, raising=False)
    for var in ("ITSEL_RAY_DATA_MIRROR", "ITSEL_RAY_DATA_CACHE"):
        monkeypatch.delenv(var, raising=False)


def trial(task: str = "syn_and45", **train) -> TrialConfig:
    return TrialConfig.from_dict({"task": task, "seed": 0, "model": {"config": TINY, "tokenizer": TOKENIZER},
                                  "prompt": {"length": 4, "population": 50},
                                  "train": {"max_steps": 40, "eval_every": 20, "batch_size": 8, "eval_batch_size": 16,
                                            "loss": "label", "eval_mode": "rank", **train}})


def test_declared_lengths_are_the_tasks_limits():
    cfg = trial(max_eval_examples=30)
    spec = get_task(cfg.task)
    lengths = declared_lengths(cfg)
    assert lengths.upper_bound and "upper bound" in lengths.source
    assert len(lengths.train) == spec.train_size
    assert set(lengths.train.inputs) == {spec.max_source_length}
    words = spec.label_words("text")
    assert lengths.labels == tuple(min(spec.max_target_length, len(w) + 2) for w in words)
    assert set(lengths.train.targets) == {max(lengths.labels)}
    assert len(lengths.eval) == 30  # max_eval_examples bounds an otherwise unknown split
    assert declared_lengths(trial()).eval is None  # neither prepared, carved nor declared: unknown
    carved = TrialConfig.from_dict({**trial().to_dict(), "data": {"eval_split": "heldout", "heldout_size": 12}})
    held = declared_lengths(carved)
    assert len(held.eval) == 12 and len(held.train) == spec.train_size - 12


def test_a_declared_validation_size_counts_evaluation_before_prepare():
    rte = declared_lengths(trial("rte"))
    assert len(rte.eval) == get_task("rte").validation_size == 277  # GLUE RTE's validation split (its dataset card)
    assert len(declared_lengths(trial("rte", max_eval_examples=100)).eval) == 100  # still capped by the trial
    record = declared_lengths(trial("record"))  # carved from training: the carve, not a declared size
    assert len(record.eval) == 1000 and get_task("record").validation_size is None


def test_a_task_file_declares_its_validation_size_and_a_bad_one_is_refused():
    entry = {"name": "mine", "data": {"kind": "local", "path": "data"}, "fields": ["text"], "labels": ["a", "b"],
             "train_size": 10}
    assert declare_task({**entry, "validation_size": 7}, register=False).validation_size == 7
    assert declare_task(entry, register=False).validation_size is None
    with pytest.raises(ConfigError, match=r"tasks\.mine: validation_size must be >= 1, got 0 in t\.yaml"):
        declare_task({**entry, "validation_size": 0}, where="t.yaml", register=False)


def test_prepared_lengths_are_the_token_counts_the_trial_reads(tmp_path):
    cfg = trial(max_train_examples=50, max_eval_examples=40)
    settings = PrepareSettings(ModelConfig(config=TINY, tokenizer=TOKENIZER), DataConfig(), (0,))
    report = prepare_task(cfg.task, settings, cache_root=tmp_path)
    assert report.ok, report.problems
    lengths = prepared_lengths(cfg, Path(report.cache))
    data = prepare_data(TrialConfig.from_dict({**cfg.to_dict(), "data": {"cache_dir": str(tmp_path)}}),
                        get_task(cfg.task), T5.backbone(cfg.model))
    assert not lengths.upper_bound and lengths.source.startswith("prepared data")
    assert lengths.train.inputs.tolist() == [len(r) for r in data.train.inputs.tolist()]
    assert lengths.train.targets.tolist() == [len(r) for r in data.train.targets.tolist()]
    assert lengths.eval.inputs.tolist() == [len(r) for r in data.eval.inputs.tolist()]
    # the label set drops each word's EOS, which the prepared targets keep
    assert lengths.labels == tuple(int(n) + 1 for n in data.labels.mask.sum(dim=1).tolist())
    declared = declared_lengths(cfg)
    assert lengths.train.inputs.max() <= declared.train.inputs.max()
    assert lengths.train.inputs.mean() < declared.train.inputs.mean()  # real rows are shorter than the limit


def test_throughput_is_measured_when_a_calibration_is_found_else_the_stated_assumption(tmp_path, monkeypatch):
    assert throughput() is ASSUMED and not ASSUMED.measured and "assumed" in ASSUMED.source
    store = Storage(str(tmp_path / "sweep"))
    assert throughput(store) is ASSUMED
    store.write_json("calibration.json", {"device": "NVIDIA A10G", "tflops": {"bf16": 40.0, "fp32": 12.5}})
    rate = throughput(store)
    assert rate.measured and "NVIDIA A10G" in rate.source
    assert rate.of("auto") == rate.of("bf16") == 40e12 and rate.of("fp32") == 12.5e12
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"tflops": {"bf16": 0}}))
    monkeypatch.setenv(CALIBRATION_ENV, str(bad))
    with pytest.raises(ConfigError, match="bad.json"):
        throughput(store)
    monkeypatch.setenv(CALIBRATION_ENV, str(tmp_path / "absent.json"))
    with pytest.raises(ConfigError, match="absent.json"):
        throughput()


def test_the_sweep_total_is_the_sum_over_its_trials(tmp_path):
    sweep = load_sweep("demo")
    costs = sweep_costs(sweep)
    trials = {stage: sum(c.trials for c in costs if c.stage == stage) for stage in ("tune", "transfer")}
    assert trials == {stage: len(plan_stage(sweep, stage)) for stage in ("tune", "transfer")}
    g = sweep.grid
    assert trials["transfer"] == len(g.sources) * len(g.targets) * len(g.target_seeds)
    # the engine's own number for one trial, through the same lengths
    first = costs[0]
    cfg = sweep.trial_config(first.role, task=first.task, seed=sweep.grid.source_seeds[0])
    again = get_engine(sweep.spec.engine).trial_cost(cfg, declared_lengths(cfg))
    assert again.total_flops == pytest.approx(first.cost.total_flops)
    assert first.cost.evaluations == 3 and first.cost.steps == 300  # the demo's source stage: 300 steps, eval 100
    rate = runs_cost.Throughput({"bf16": 1e12, "fp32": 0.5e12}, "stated for the test", measured=False)
    lines = cost_lines(sweep, rate=rate)
    total = sum(c.trials * c.cost.total_flops for c in costs)
    hours = total / 1e12 / 3600  # precision auto: bf16 on the cluster's GPU
    assert any(line.startswith("sweep total:") and f"{hours:,.1f} GPU-hours" in line for line in lines), lines
    rows = [line for line in lines if line.strip().startswith(("tune ", "transfer "))]
    assert len(rows) == len(costs) == len(g.sources) + 2 * len(g.targets)  # tune: sources, targets; transfer: targets


def test_an_engine_without_a_cost_model_says_so():
    sweep = load_sweep("smoke", overrides=["engine=fake"])
    assert not get_engine(sweep.spec.engine).has_model
    assert cost_lines(sweep) == [f"cost: not modelled (engine {sweep.spec.engine!r})"]


def test_dry_run_prints_the_cost_table(tmp_path, capsys, monkeypatch):
    code = cli.main(["transfer", "--sweep", "paper", "--dry-run", "--set", "resources.use_gpu=auto",
                     "--set", "resources.gpu_memory_gb=24", "--storage", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0
    assert "GPU-hours at bf16 24.5 TFLOP/s, assumed: 35 % of an A10G's dense peak" in out
    assert any(line.split()[:3] == ["tune", "source", "qqp"] for line in out.splitlines())
    assert "sweep total:" in out and "declared limits (upper bound)" in out
    monkeypatch.setenv(CALIBRATION_ENV, str(tmp_path / "nope.json"))
    assert cli.main(["transfer", "--sweep", "paper", "--dry-run", "--set", "resources.use_gpu=auto",
                     "--storage", str(tmp_path)]) == 2
    assert "nope.json" in capsys.readouterr().err


def test_padding_share_of_random_batches_on_known_lengths():
    """Two lengths, half the rows each: a random batch of 8 is padded to the long one unless all 8 rows are short
    (probability 1/256), so the padded step costs about as much as 8 long rows, and the unpadded one as 4 of each."""
    from itsel_ray.engine.t5 import cost as t5cost
    from itsel_ray.engine.t5.shapes import shape_from_config

    cfg = trial(loss="sequence", eval_mode="generate")
    n = 400
    inputs = np.where(np.arange(n) % 2 == 0, 10, 60)
    lengths = TaskLengths(SplitLengths(inputs, np.full(n, 3)), None, None, "test")
    cost = t5cost.trial_cost(cfg, lengths, shape=shape_from_config(TINY))
    shape = shape_from_config(TINY)
    long = sum(t5cost.encoder(shape, 8, 4 + 60)) + sum(t5cost.decoder(shape, 8, 3, 4 + 60))
    assert cost.step_flops == pytest.approx(long, rel=0.01)
    short = sum(t5cost.encoder(shape, 1, 4 + 10)) + sum(t5cost.decoder(shape, 1, 3, 4 + 10))
    unpadded = 8 * (short + long / 8) / 2
    assert cost.unpadded_step_flops == pytest.approx(unpadded)
    assert cost.padding_share == pytest.approx(1 - unpadded / cost.step_flops)
    assert cost.padding_share > 0.05  # at this width the vocabulary head on the (unpadded) targets dominates
    assert cost.tokens_per_step == pytest.approx(8 * (4 + 60 + 3), rel=0.01)
    assert cost.real_tokens_per_step == 8 * (4 + 35 + 3)


def test_after_prepare_the_dry_run_uses_the_prepared_lengths(tmp_path, capsys):
    from itsel_ray.runs.prepared import prepare_sweep
    from itsel_ray.runs.storage import sweep_root

    overrides = ["grid.sources=[syn_has0]", "grid.targets=[syn_and45]", "grid.source_seeds=[42]",
                 "grid.target_seeds=[28]"]
    sweep = load_sweep("demo", overrides=overrides)
    storage = sweep_root(str(tmp_path), sweep.name)
    before = sweep_costs(sweep, storage)
    assert all(c.lengths.upper_bound for c in before)
    reports, _ = prepare_sweep(sweep, storage)
    assert all(r.ok for r in reports)
    after = sweep_costs(sweep, storage)
    assert all(c.lengths.source.startswith("prepared data") for c in after)
    for b, a in zip(before, after):
        assert a.cost.train_flops < b.cost.train_flops  # real rows are shorter than the declared limit
        assert a.cost.eval_rows == 500  # the demo's max_eval_examples, now counted from the prepared split
    args = ["transfer", "--sweep", "demo", "--dry-run", "--storage", str(tmp_path)]
    for item in overrides:
        args += ["--set", item]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "prepared data (" in out and "declared limits" not in out
