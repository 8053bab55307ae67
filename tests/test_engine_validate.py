"""`validate_config` and the trial config refuse, before any training, what would fail inside a trial.

Every task x label style x loss x eval mode combination is enumerated: validate_config rejects it (naming the task
and the option) exactly when a training step, a prediction pass and scoring on fixture rows fail.
"""

import itertools
import math

import numpy as np
import pytest
import torch

from itsel_ray.artifacts import save_prompt
from itsel_ray.engine.batching import batch_indices
from itsel_ray.engine.objectives import EVAL_MODES, LOSSES
from itsel_ray.engine.prompt import initial_prompt
from itsel_ray.engine.t5.model import PromptedT5
from itsel_ray.engine.trial import TrialError, evaluate, make_batch, prepare_data
from itsel_ray.schema import ConfigError, merge
from itsel_ray.tasks import SOURCE_TASKS, TARGET_TASKS, get_task
from itsel_ray.tasks.spec import LABEL_STYLES
from itsel_ray.trial_config import TrialConfig
from itsel_ray.engine.t5 import T5
from tests.conftest import tiny_trial
from tests.test_engine_tasks import _cfg, fixture_rows  # noqa: F401  (the fixture rows and a fixture-vocab model)

TASK_STYLES = list(itertools.product([*SOURCE_TASKS, *TARGET_TASKS], LABEL_STYLES))


def _setup(cfg: TrialConfig):
    task = get_task(cfg.task)
    bb = T5.backbone(cfg.model, cfg.train.device)
    data = prepare_data(cfg, task, bb)
    model = PromptedT5(bb.model, initial_prompt(cfg.prompt, bb.model.get_input_embeddings().weight, seed=0))
    return task, bb, data, model


def _loss_runs(cfg: TrialConfig) -> bool:
    """Whether a training step's loss computes on fixture rows, as a trial computes it."""
    task, bb, data, model = _setup(cfg)
    batch = make_batch(data.train, batch_indices(len(data.train), 2, seed=0, step=0), 0, bb.device)
    try:
        with torch.no_grad():
            LOSSES.get(cfg.train.loss)(model, batch, data.labels, 0)
    except (ValueError, TrialError):
        return False
    return True


def _evaluation_runs(cfg: TrialConfig) -> bool:
    """Whether predicting and scoring the eval rows works."""
    task, bb, data, model = _setup(cfg)
    try:
        return "score" in evaluate(model, cfg, task, data, bb)
    except (ValueError, TrialError):
        return False


def _verdict(cfg: TrialConfig) -> tuple[bool, str]:
    try:
        T5.validate_config(cfg)
    except TrialError as err:
        return False, str(err)
    return True, ""


@pytest.mark.parametrize("task, style", TASK_STYLES)
def test_validate_config_rejects_exactly_the_combinations_that_fail(task, style, fixture_rows):  # noqa: F811
    """All losses x eval modes of one task and style: accepted iff the loss and the evaluation both run."""
    def cfg(loss: str, mode: str) -> TrialConfig:
        base = _cfg(task, loss, mode).to_dict()
        return TrialConfig.from_dict(merge(base, {"data": {"label_style": style}, "train": {"max_new_tokens": 2}}))

    loss_ok = {loss: _loss_runs(cfg(loss, "generate")) for loss in LOSSES.names()}
    mode_ok = {mode: _evaluation_runs(cfg("sequence", mode)) for mode in EVAL_MODES.names()}
    assert loss_ok["sequence"] and mode_ok["generate"]  # every task trains and evaluates the paper's way
    for loss, mode in itertools.product(LOSSES.names(), EVAL_MODES.names()):
        accepted, message = _verdict(cfg(loss, mode))
        assert accepted == (loss_ok[loss] and mode_ok[mode]), (loss, mode, message)
        if not accepted:
            assert f"task {task}" in message
            assert ("train.loss" in message) if not loss_ok[loss] else ("train.eval_mode" in message)


def test_cosmosqa_text_labels_are_refused_for_rank_and_the_label_loss():
    for train in ({"eval_mode": "rank", "loss": "sequence"}, {"eval_mode": "generate", "loss": "label"}):
        cfg = tiny_trial(task="cosmosqa", train=train)
        with pytest.raises(TrialError, match="task cosmosqa has free-text targets in the 'text' label style.*"
                                             "data.label_style 'abstract'"):
            T5.validate_config(cfg)
    T5.validate_config(tiny_trial(task="cosmosqa", train={"eval_mode": "rank"}, data={"label_style": "abstract"}))


# ------------------------------------------------------------------------------------------------ bad inputs


@pytest.mark.parametrize("overrides, field", [
    ({"optim": {"lr": math.nan}}, "optim.lr"),
    ({"optim": {"lr": math.inf}}, "optim.lr"),
    ({"optim": {"lr": 0.0}}, "optim.lr"),
    ({"optim": {"weight_decay": -1e-5}}, "optim.weight_decay"),
    ({"optim": {"weight_decay": math.nan}}, "optim.weight_decay"),
    ({"optim": {"weight_decay": math.inf}}, "optim.weight_decay"),
    ({"optim": {"max_grad_norm": 0.0}}, "optim.max_grad_norm"),
    ({"optim": {"max_grad_norm": -1.0}}, "optim.max_grad_norm"),
    ({"optim": {"max_grad_norm": math.nan}}, "optim.max_grad_norm"),
    ({"optim": {"warmup_steps": -1}}, "optim.warmup_steps"),
    ({"train": {"max_eval_examples": 0}}, "train.max_eval_examples"),
    ({"train": {"max_eval_examples": -5}}, "train.max_eval_examples"),
    ({"train": {"max_train_examples": 0}}, "train.max_train_examples"),
    ({"train": {"max_new_tokens": 0}}, "train.max_new_tokens"),
    ({"train": {"threads": 0}}, "train.threads"),
    ({"train": {"micro_batch_size": 0}}, "train.micro_batch_size"),
    ({"train": {"micro_batch_size": 17}}, "train.micro_batch_size"),
    ({"train": {"precision": "fp16"}}, "train.precision"),
    ({"seed": -1}, "seed"),
    ({"seed": 2**32}, "seed"),
    ({"seed": 2**70}, "seed"),
    ({"model": {"init_seed": -3}}, "model.init_seed"),
    ({"model": {"init_seed": 2**70}}, "model.init_seed"),
    ({"prompt": {"population": 10**9}}, "prompt.population"),
    ({"prompt": {"population": 0}}, "prompt.population"),
    ({"prompt": {"population_start": 10**9}}, "prompt.population_start"),
    ({"prompt": {"population_start": -1}}, "prompt.population_start"),
    ({"prompt": {"population": 5}}, "prompt.population"),  # fewer ids than the 10 prompt tokens to draw
    ({"prompt": {"init_std": math.inf}}, "prompt.init_std"),
    ({"prompt": {"init_std": math.nan}}, "prompt.init_std"),
    ({"prompt": {"init_std": 0.0}}, "prompt.init_std"),
    ({"data": {"heldout_size": 0}}, "data.heldout_size"),
])
def test_bad_values_are_refused_when_the_config_is_parsed(overrides, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        tiny_trial(**overrides)


def test_a_t5_config_typo_suggests_the_field_when_the_engine_checks_it():
    cfg = tiny_trial(model={"config": {"d_modle": 64}})  # the trial config knows no model family: it parses
    with pytest.raises(ConfigError, match=r"model\.config\.d_modle is not a T5Config field \(did you mean 'd_model'"):
        T5.validate_config(cfg)
    T5.validate_config(tiny_trial(model={"config": {"d_model": 64, "vocab_size": 400, "feed_forward_proj": "relu",
                                                    "decoder_start_token_id": 0, "tie_word_embeddings": True}}))


def test_a_missing_prompt_file_is_refused_before_the_trial(tmp_path):
    cfg = tiny_trial(prompt={"init": "from_file", "path": str(tmp_path / "missing.npy")})
    with pytest.raises(TrialError, match=r"prompt\.path .*missing\.npy.* is not a file"):
        T5.validate_config(cfg)
    path = save_prompt(tmp_path / "there.npy", np.zeros((10, 128), np.float32))
    T5.validate_config(tiny_trial(prompt={"init": "from_file", "path": str(path)}))
    narrow = save_prompt(tmp_path / "narrow.npy", np.ones((10, 64), np.float32))  # d_model 64, the model's is 128
    with pytest.raises(ValueError, match=r"narrow\.npy: prompt has shape \(10, 64\) but the model expects \(10, 128\)"):
        T5.validate_config(tiny_trial(prompt={"init": "from_file", "path": str(narrow)}))


def test_a_population_outside_a_known_vocabulary_is_refused_before_the_trial():
    known = {"task": "syn_has0", "seed": 0, "model": {"name": "t5-base"}, "prompt": {"population_start": 32100}}
    with pytest.raises(TrialError, match=r"prompt\.length 100 distinct ids cannot come from the 28 ids"):
        T5.validate_config(TrialConfig.from_dict(known))
    outside = merge(known, {"prompt": {"population_start": 40000}})
    with pytest.raises(TrialError, match=r"prompt\.population_start 40000 is outside the vocabulary of 32128"):
        T5.validate_config(TrialConfig.from_dict(outside))
    T5.validate_config(TrialConfig.from_dict(merge(known, {"prompt": {"population_start": 0}})))
    with pytest.raises(TrialError, match=r"population_start 500 is outside the vocabulary of 300.*model\.config"):
        T5.validate_config(tiny_trial(model={"config": {"vocab_size": 300}}, prompt={"population_start": 500}))


def test_the_vocabulary_bound_also_holds_at_initialisation():
    cfg = tiny_trial(prompt={"population_start": 5000})  # the synthetic vocabulary has 277 ids
    with pytest.raises(TrialError, match="prompt.population_start 5000 is outside the vocabulary of 277"):
        T5.validate_config(cfg)  # a word-level vocabulary is counted without building the tokenizer
    emb = T5.backbone(cfg.model).model.get_input_embeddings().weight
    with pytest.raises(ValueError, match="prompt.population_start 5000 is outside the vocabulary of 277"):
        initial_prompt(cfg.prompt, emb, seed=0)


def test_seeds_at_the_limits_are_accepted():
    assert tiny_trial(seed=2**32 - 1).seed == 2**32 - 1
    assert torch.Generator().manual_seed(2**32 - 1) is not None
