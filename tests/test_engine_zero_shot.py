"""Zero-shot readouts and PROBE's input: a prompt trained on a related source fits the target better than a random
one, and the probe score is exactly minus the target's label loss on its training sample."""

import numpy as np
import pytest
import torch

from itsel_ray.artifacts import TrialFiles, load_prompt
from itsel_ray.engine.batching import batch_indices
from itsel_ray.engine.objectives import LOSSES
from itsel_ray.engine.prompt import initial_prompt
from itsel_ray.engine.t5 import T5
from itsel_ray.engine.t5.model import PromptedT5
from itsel_ray.engine.trial import make_batch, prepare_data
from itsel_ray.selection import MODEL_INPUTS
from itsel_ray.tasks import get_task

from .conftest import tiny_trial


def probe_prompts(cfg, prompts, *, max_examples=256, batch_size=64):
    readout = T5.readout(cfg, prompts, max_examples=max_examples, batch_size=batch_size)
    return MODEL_INPUTS.get("probe").scores(readout), readout.rows


@pytest.fixture(scope="module")
def prompts(tmp_path_factory):
    """{related: a prompt tuned 80 steps on syn_has0 (syn_and01 reads group 0), random<i>: untrained initial
    prompts of three seeds}, all [10, 128]. (Measured on 520 rows: related -0.669, random -0.714 to -0.722.)"""
    work = tmp_path_factory.mktemp("has0")
    T5.run_trial(tiny_trial(train={"max_steps": 80, "eval_every": 80, "save_every": 80}), work)
    bb = T5.backbone(tiny_trial().model, "cpu")
    emb = bb.model.get_input_embeddings().weight
    randoms = {f"random{s}": initial_prompt(tiny_trial().prompt, emb, seed=s).numpy() for s in (1, 2, 3)}
    return {"related": load_prompt(TrialFiles(work).best_prompt), **randoms}


def test_a_related_source_prompt_probes_better_than_a_random_one(prompts):
    scores, n = probe_prompts(tiny_trial(task="syn_and01"), prompts, max_examples=520)
    # only training rows are read: the validation split has 500 rows, so a validation sample could not reach 520
    assert n == min(520, get_task("syn_and01").train_size) and n != 500
    assert scores["related"] > max(v for k, v in scores.items() if k.startswith("random"))
    assert all(np.isfinite(v) and v < 0 for v in scores.values())  # minus a cross-entropy


def test_the_score_is_minus_the_label_loss_on_the_training_sample(prompts):
    # 40 rows in batches of 16, 16, 8: the score must be the row-weighted mean, which one batch of all 40 rows
    # gives directly (a plain mean of the three batch means would weight the last 8 rows double).
    cfg = tiny_trial(task="syn_and01")
    scores, n = probe_prompts(cfg, prompts, max_examples=40, batch_size=16)
    assert n == 40
    bb = T5.backbone(cfg.model, "cpu")
    data = prepare_data(cfg, get_task(cfg.task), bb)
    rows = batch_indices(len(data.train), 40, seed=0, step=0)
    assert len(set(rows)) == 40
    batch = make_batch(data.train, rows, bb.tokenizer.pad_token_id, bb.device)
    emb = bb.model.get_input_embeddings().weight
    bb.model.eval()
    try:
        with torch.no_grad():
            for name, arr in prompts.items():
                model = PromptedT5(bb.model, initial_prompt(cfg.prompt, emb, seed=0, init_prompt=arr))
                loss = float(LOSSES.get("label")(model, batch, data.labels, bb.tokenizer.pad_token_id))
                assert scores[name] == pytest.approx(-loss, rel=1e-5, abs=1e-6)
    finally:
        bb.model.train()


def test_a_readout_computes_each_part_once_and_leaves_the_model_as_it_was(prompts, monkeypatch):
    cfg = tiny_trial(task="syn_and01")
    readout = T5.readout(cfg, prompts, max_examples=24, batch_size=16)
    bb = readout.sample.backbone
    bb.model.train()
    calls = []
    original = PromptedT5.features
    monkeypatch.setattr(PromptedT5, "features", lambda self, *a: calls.append(1) or original(self, *a))
    first = readout.features()
    assert readout.features() is first and len(calls) == len(prompts) * 2  # 24 rows = batches of 16 and 8
    assert {k: v.shape for k, v in first.items()} == {k: (24, 128) for k in prompts}
    assert readout.losses() is readout.losses()
    assert bb.model.training  # dropout state restored after the no-grad passes
    assert (readout.target, readout.rows, readout.objective) == ("syn_and01", 24, "label")
