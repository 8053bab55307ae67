"""Zero-shot passes: each source prompt in front of the frozen model, over a fixed sample of the target's training
rows, before any target training. PROBE scores them by the target's loss; LOGME (engine/features.py) by its
encoder features.

A transfer trial trains for thousands of steps; a zero-shot pass is one forward pass per source prompt over a small
sample of the target's *training* examples (never the validation rows the ground truth is measured on). The probe's
score is minus the mean training loss of the target run's objective, so higher means the source prompt fits the
target better. Both need the frozen backbone and the target's data, unlike the weight-similarity selectors.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator, Mapping

import numpy as np
import torch

from itsel_ray.engine.backbone import Backbone, load_backbone
from itsel_ray.engine.batching import batch_indices
from itsel_ray.engine.objectives import LOSSES, Batch
from itsel_ray.engine.precision import autocast
from itsel_ray.engine.prompt import PromptedT5, initial_prompt
from itsel_ray.engine.trial import TrialData, make_batch, prepare_data, validate_config
from itsel_ray.tasks import get_task
from itsel_ray.trial_config import TrialConfig


@dataclass(frozen=True)
class TrainingSample:
    """The rows every prompt is passed over: the first `len(order)` of the seed-0 training order, batched."""

    backbone: Backbone
    data: TrialData
    order: list[int]
    batches: list[Batch]


def training_sample(cfg: TrialConfig, *, max_examples: int, batch_size: int) -> TrainingSample:
    validate_config(cfg)
    bb = load_backbone(cfg.model, cfg.train.device)
    data = prepare_data(cfg, get_task(cfg.task), bb)
    n = min(max_examples, len(data.train))
    order = batch_indices(len(data.train), n, seed=0, step=0)
    pad_id = bb.tokenizer.pad_token_id
    batches = [make_batch(data.train, order[i : i + batch_size], pad_id, bb.device) for i in range(0, n, batch_size)]
    return TrainingSample(bb, data, order, batches)


@contextlib.contextmanager
def prompted_models(cfg: TrialConfig, sample: TrainingSample,
                    prompts: Mapping[str, np.ndarray]) -> Iterator[Iterator[tuple[str, PromptedT5]]]:
    """(source, the frozen model with that source's [P, H] prompt) for every prompt: dropout off, no gradients,
    the trial's precision."""
    bb = sample.backbone
    emb = bb.model.get_input_embeddings().weight
    was_training = bb.model.training
    bb.model.eval()
    try:
        with torch.no_grad(), autocast(cfg.train.precision, bb.device):
            yield ((name, PromptedT5(bb.model, initial_prompt(cfg.prompt, emb, seed=0, init_prompt=arr)
                                     .to(bb.device))) for name, arr in prompts.items())
    finally:
        bb.model.train(was_training)


def probe_prompts(
    cfg: TrialConfig, prompts: Mapping[str, np.ndarray], *, max_examples: int = 256, batch_size: int = 64
) -> tuple[dict[str, float], int]:
    """({source: -mean loss}, rows used) of each [P, H] prompt on up to `max_examples` training rows of `cfg.task`.

    The rows are a fixed sample (the first batches of the seed-0 order), identical for every prompt, and the loss
    is `cfg.train.loss` as the target's runs train with it; dropout is off.
    """
    sample = training_sample(cfg, max_examples=max_examples, batch_size=batch_size)
    loss_fn, pad_id = LOSSES.get(cfg.train.loss), sample.backbone.tokenizer.pad_token_id
    n = len(sample.order)
    with prompted_models(cfg, sample, prompts) as models:
        scores = {name: -sum(float(loss_fn(model, b, sample.data.labels, pad_id)) * b.input_ids.shape[0]
                             for b in sample.batches) / n for name, model in models}
    return scores, n
