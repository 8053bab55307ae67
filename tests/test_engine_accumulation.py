"""Gradient accumulation, activation checkpointing and precision: the same updates as the plain full-batch step."""

import dataclasses
import random

import numpy as np
import pytest
import torch

from itsel_ray.artifacts import TrialFiles, load_prompt, read_json
from itsel_ray.engine import trial as trial_module
from itsel_ray.engine.backbone import set_activation_checkpointing
from itsel_ray.engine.batching import batch_indices
from itsel_ray.engine.objectives import LOSSES
from itsel_ray.engine.prompt import initial_prompt
from itsel_ray.engine.t5.model import PromptedT5
from itsel_ray.engine.trial import make_batch, prepare_data
from itsel_ray.tasks import get_task
from itsel_ray.engine.t5 import T5
from tests.conftest import TINY_MODEL, tiny_trial

DROPOUT_MODEL = {**TINY_MODEL, "config": {**TINY_MODEL["config"], "dropout_rate": 0.1}}


@pytest.fixture
def variable_targets(monkeypatch):
    """Training targets of 1 to 6 tokens + EOS, so that micro-batches hold different numbers of target tokens."""
    original = trial_module.prepare_data

    def prepare(cfg, task, bb):
        data = original(cfg, task, bb)
        rng = random.Random(0)
        targets = [[rng.randrange(3, 270) for _ in range(rng.randint(1, 6))] + [1] for _ in data.train.targets]
        return dataclasses.replace(data, train=dataclasses.replace(data.train, targets=targets))

    monkeypatch.setattr(trial_module, "prepare_data", prepare)
    return prepare


def _prompt_after(cfg, work, step):
    T5.run_trial(cfg, work)
    return load_prompt(TrialFiles(work).snapshot(step))


@pytest.mark.parametrize("loss", ["sequence", "label"])
def test_micro_batches_give_the_full_batch_updates(loss, variable_targets, tmp_path):
    steps = {"max_steps": 4, "eval_every": 4, "save_every": 4, "loss": loss, "batch_size": 16,
             "max_eval_examples": 8}
    # Adafactor's update is smooth in the gradient; Adam's first steps are nearly sign(g), where rounding-level
    # differences flip the tiny components.
    optim = {"name": "adafactor", "lr": 0.5, "schedule": "linear", "weight_decay": 1e-5, "max_grad_norm": 1.0}
    full = _prompt_after(tiny_trial(train=steps, optim=optim), tmp_path / "full", 4)
    start = load_prompt(TrialFiles(tmp_path / "full").snapshot(0))
    moved = np.abs(full - start).max()
    assert moved > 1e-2  # the prompt moved: the comparison is not between unchanged prompts
    for micro in (4, 5):  # 5 leaves an uneven last micro-batch (5, 5, 5, 1)
        part = _prompt_after(tiny_trial(train={**steps, "micro_batch_size": micro}, optim=optim),
                             tmp_path / f"m{micro}", 4)
        # The two sum the same float32 terms in another order, and four optimiser steps carry the rounding on;
        # how far depends on the CPU's kernels (AVX2, 1 or 2 threads: 1e-6 of a 2.4 move; an AVX-512 machine:
        # ~1e-5). An element-wise relative tolerance fails on the components near 0, so the bound is relative to
        # how far the prompt moved: 1e-4 of it, 100x the AVX2 spread, still 1,000x below what dropping the
        # per-micro-batch weights costs (the gradient test below).
        assert np.abs(part - full).max() <= 1e-4 * moved


def _setup(cfg):
    bb = T5.backbone(cfg.model)
    data = prepare_data(cfg, get_task(cfg.task), bb)
    model = PromptedT5(bb.model, initial_prompt(cfg.prompt, bb.model.get_input_embeddings().weight, seed=0))
    return bb, data, model


def _grad(model, loss, batches, data, weights):
    model.prompt.grad = None
    for b, w in zip(batches, weights):
        (loss(model, b, data.labels, 0) * w).backward()
    return model.prompt.grad.clone()


@pytest.mark.parametrize("loss_name", ["sequence", "label"])
def test_unit_weights_make_the_accumulated_gradient_exact_and_equal_weights_do_not(loss_name, variable_targets):
    cfg = tiny_trial(train={"loss": loss_name})
    bb, data, model = _setup(cfg)
    data = variable_targets(cfg, get_task(cfg.task), bb)
    loss = LOSSES.get(loss_name)
    idx = batch_indices(len(data.train), 16, seed=0, step=0)
    full = _grad(model, loss, [make_batch(data.train, idx, 0, bb.device)], data, [1.0])
    parts = [make_batch(data.train, idx[i : i + 5], 0, bb.device) for i in range(0, 16, 5)]
    units = [loss.units(b, 0) for b in parts]
    weighted = _grad(model, loss, parts, data, [n / sum(units) for n in units])
    naive = _grad(model, loss, parts, data, [1 / len(parts)] * len(parts))
    scale = full.abs().max()
    # float32 rounding of one backward pass: 2e-7 to 1e-6 of the largest component with AVX2 or without SIMD, 1 or 2
    # threads; a margin of 100x for other kernels, still 3,000x below what equal weights cost
    assert (weighted - full).abs().max() <= 1e-4 * scale
    assert (naive - full).abs().max() > 1e-2 * scale


def test_activation_checkpointing_gives_the_same_gradient_with_dropout():
    cfg = tiny_trial(model=DROPOUT_MODEL, train={"loss": "sequence"})
    bb, data, model = _setup(cfg)
    bb.model.train()
    batch = make_batch(data.train, batch_indices(len(data.train), 8, seed=0, step=0), 0, bb.device)
    grads = {}
    try:
        for on in (False, True, False):
            set_activation_checkpointing(bb.model, on)
            torch.manual_seed(5)  # the same dropout masks in both passes
            grads.setdefault(on, []).append(_grad(model, LOSSES.get("sequence"), [batch], data, [1.0]))
    finally:
        set_activation_checkpointing(bb.model, False)
        bb.model.eval()
    assert torch.equal(grads[False][0], grads[False][1])  # dropout is seeded: the plain pass is repeatable
    torch.testing.assert_close(grads[True][0], grads[False][0], rtol=1e-5, atol=1e-7)
    assert grads[True][0].abs().sum() > 0


def test_a_checkpointed_trial_trains_like_a_plain_one_and_leaves_the_backbone_plain(tmp_path):
    steps = {"max_steps": 3, "eval_every": 3, "save_every": 3, "max_eval_examples": 8}
    plain = _prompt_after(tiny_trial(model=DROPOUT_MODEL, train=steps), tmp_path / "a", 3)
    ckpt = _prompt_after(tiny_trial(model=DROPOUT_MODEL, train={**steps, "activation_checkpointing": True}),
                         tmp_path / "b", 3)
    np.testing.assert_allclose(ckpt, plain, rtol=1e-5, atol=1e-6)
    assert not T5.backbone(tiny_trial(model=DROPOUT_MODEL).model).model.is_activation_checkpointing


class Interrupt(Exception):
    pass


def test_resume_stays_exact_with_micro_batches_and_checkpointing(tmp_path):
    cfg = tiny_trial(model=DROPOUT_MODEL, train={"max_steps": 4, "eval_every": 2, "save_every": 2,
                                                 "micro_batch_size": 6, "activation_checkpointing": True,
                                                 "max_eval_examples": 8})
    T5.run_trial(cfg, tmp_path / "full")

    def crash(metrics, checkpointed):
        if metrics["step"] == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        T5.run_trial(cfg, tmp_path / "part", report=crash)
    T5.run_trial(cfg, tmp_path / "part")
    for step in (2, 4):
        assert np.array_equal(load_prompt(TrialFiles(tmp_path / "full").snapshot(step)),
                              load_prompt(TrialFiles(tmp_path / "part").snapshot(step)))


@pytest.mark.parametrize("precision, recorded", [("auto", "fp32"), ("fp32", "fp32"), ("bf16", "bf16")])
def test_precision_is_chosen_and_recorded(precision, recorded, tmp_path):
    result = T5.run_trial(tiny_trial(train={"max_steps": 2, "eval_every": 2, "precision": precision}), tmp_path)
    assert read_json(TrialFiles(tmp_path).result)["precision"] == recorded
    assert np.isfinite(result.best_score)


def test_logits_stay_fp32_under_bf16_autocast():
    cfg = tiny_trial()
    bb, data, model = _setup(cfg)
    ids = torch.tensor([[5, 6, 7, 1]])
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        enc, mask = model.encode(ids, torch.ones_like(ids))
        logits = model.decode_logits(enc, mask, torch.zeros(1, 2, dtype=torch.long))
        plain = model.backbone(encoder_outputs=(enc,), attention_mask=mask,
                               decoder_input_ids=torch.zeros(1, 2, dtype=torch.long)).logits
    assert logits.dtype == torch.float32 and plain.dtype == torch.bfloat16


def test_a_folder_written_before_the_new_options_existed_still_resumes(tmp_path):
    import json

    cfg = tiny_trial(train={"max_steps": 4, "eval_every": 2, "save_every": 2, "max_eval_examples": 8})

    def crash(metrics, checkpointed):
        raise Interrupt

    with pytest.raises(Interrupt):
        T5.run_trial(cfg, tmp_path, report=crash)
    files = TrialFiles(tmp_path)
    record = json.loads(files.config.read_text())
    for section, keys in (("train", ("micro_batch_size", "activation_checkpointing", "precision")),
                          ("prompt", ("sample_with_replacement",))):
        for key in keys:
            del record["config"][section][key]
    files.config.write_text(json.dumps(record))
    assert T5.run_trial(cfg, tmp_path).steps == 4
