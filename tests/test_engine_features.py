"""Pooled features (the LOGME selector's input): encoder states over the input tokens only, the probe's fixed
training sample, class labels or parsed numbers as targets, free-text targets refused."""

from pathlib import Path

import numpy as np
import pytest
import torch

from itsel_ray.data.encoded import encode_examples
from itsel_ray.engine import TrialError
from itsel_ray.engine.batching import batch_indices
from itsel_ray.engine.prompt import initial_prompt
from itsel_ray.engine.readout import sample_targets
from itsel_ray.engine.t5 import T5
from itsel_ray.engine.t5.model import PromptedT5
from itsel_ray.engine.trial import make_batch, prepare_data
from itsel_ray.examples import Example
from itsel_ray.selection import MODEL_INPUTS
from itsel_ray.selection.logme import logme
from itsel_ray.tasks import get_task

from .conftest import tiny_trial
from .test_engine_tasks import fixture_rows  # noqa: F401  (the fixture: paper tasks on their fixture rows)

T5_TOKENIZER = Path(__file__).resolve().parents[2] / "shared" / "anchors" / "t5_tokenizer"


def logme_prompts(cfg, prompts, *, max_examples=256, batch_size=64):
    readout = T5.readout(cfg, prompts, max_examples=max_examples, batch_size=batch_size)
    return MODEL_INPUTS.get("logme").scores(readout), readout.rows


@pytest.fixture(scope="module")
def prompts():
    bb = T5.backbone(tiny_trial().model, "cpu")
    emb = bb.model.get_input_embeddings().weight
    return {f"p{s}": initial_prompt(tiny_trial().prompt, emb, seed=s).numpy() for s in (1, 2)}


def test_pooling_leaves_out_the_prompt_positions_and_the_padding(prompts):
    cfg = tiny_trial(task="syn_and01")
    bb = T5.backbone(cfg.model, "cpu")
    data = prepare_data(cfg, get_task(cfg.task), bb)
    batch = make_batch(data.train, [0, 1, 2], bb.tokenizer.pad_token_id, bb.device)
    assert len({len(data.train.inputs[i]) for i in (0, 1, 2)}) > 1  # rows of different lengths: padding present
    model = PromptedT5(bb.model, torch.from_numpy(prompts["p1"]))
    with torch.no_grad():
        got = model.features(batch.input_ids, batch.attention_mask)
        for row in range(3):
            ids = torch.as_tensor(np.asarray(data.train.inputs[row]))[None]
            states, _ = model.encode(ids, torch.ones_like(ids))  # the row alone, no padding
            np.testing.assert_allclose(got[row].numpy(), states[0, 10:].mean(dim=0).numpy(), rtol=1e-4, atol=1e-5)


def test_scores_are_logme_of_the_fixed_sample(prompts):
    # 40 rows in batches of 16, 16, 8 must give the features of the probe's first 40 rows of the seed-0 order
    cfg = tiny_trial(task="syn_and01")
    scores, n = logme_prompts(cfg, prompts, max_examples=40, batch_size=16)
    assert n == 40 and set(scores) == {"p1", "p2"}
    bb = T5.backbone(cfg.model, "cpu")
    data = prepare_data(cfg, get_task(cfg.task), bb)
    rows = batch_indices(len(data.train), 40, seed=0, step=0)
    batch = make_batch(data.train, rows, bb.tokenizer.pad_token_id, bb.device)
    labels = np.array([data.train.labels[i] for i in rows])
    bb.model.eval()
    with torch.no_grad():
        for name, arr in prompts.items():
            feats = PromptedT5(bb.model, torch.from_numpy(arr)).features(batch.input_ids, batch.attention_mask)
            assert scores[name] == pytest.approx(logme(feats.numpy(), labels), rel=1e-5)
    assert scores["p1"] != scores["p2"]


def test_a_numeric_target_is_a_regression_on_the_parsed_number(fixture_rows):  # noqa: F811
    cfg = tiny_trial(task="stsb", model={"tokenizer": "vocab:fixtures"}, train={"loss": "sequence",
                                                                                  "eval_mode": "generate"})
    bb = T5.backbone(cfg.model, "cpu")
    data = prepare_data(cfg, get_task("stsb"), bb)
    values, regression = sample_targets(data.train, [0, 1, 2], bb.tokenizer, "stsb")
    assert regression and values.tolist() == [5.0, 3.8, 0.0]  # the fixture's 5.0, 3.7999999, 0.0 on the 0.1 grid
    emb = bb.model.get_input_embeddings().weight
    prompt = initial_prompt(cfg.prompt, emb, seed=0).numpy()
    scores, n = logme_prompts(cfg, {"p": prompt})
    assert n == 3 and np.isfinite(scores["p"])


def test_free_text_targets_are_refused_naming_the_task(fixture_rows):  # noqa: F811
    cfg = tiny_trial(task="squad", model={"tokenizer": "vocab:fixtures"}, train={"loss": "sequence",
                                                                                   "eval_mode": "generate"})
    bb = T5.backbone(cfg.model, "cpu")
    emb = bb.model.get_input_embeddings().weight
    with pytest.raises(TrialError, match="task squad: its targets are neither"):
        logme_prompts(cfg, {"p": initial_prompt(cfg.prompt, emb, seed=0).numpy()})


@pytest.mark.skipif(not T5_TOKENIZER.is_dir(), reason="the real T5 tokenizer anchor is not available")
def test_spelled_scores_parse_back_through_the_real_t5_tokenizer():
    from transformers import T5TokenizerFast

    tok = T5TokenizerFast.from_pretrained(str(T5_TOKENIZER))
    targets = ["three point eight", "five point zero", "0.4"]
    enc = encode_examples(tok, [Example("x", t) for t in targets], max_source=8, max_target=8)  # no labels
    values, regression = sample_targets(enc, [2, 0, 1], tok, "stsb")
    assert regression and values.tolist() == [0.4, 3.8, 5.0]
