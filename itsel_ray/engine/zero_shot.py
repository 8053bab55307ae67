"""Zero-shot probing: how well does each source prompt already do on the target, before any target training?

A transfer trial trains for thousands of steps; a probe is one forward pass per source prompt over a small sample of
the target's *training* examples (never the validation rows the ground truth is measured on). The score is minus
the mean training loss of the target run's objective, so higher means the source prompt fits the target better.
It needs the frozen backbone and the target's data, unlike the weight-similarity selectors.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch

from itsel_ray.trial_config import TrialConfig
from itsel_ray.engine.backbone import load_backbone
from itsel_ray.engine.batching import batch_indices
from itsel_ray.engine.objectives import LOSSES
from itsel_ray.engine.prompt import PromptedT5, initial_prompt
from itsel_ray.engine.precision import autocast
from itsel_ray.engine.trial import make_batch, prepare_data, validate_config
from itsel_ray.tasks import get_task


def probe_prompts(
    cfg: TrialConfig, prompts: Mapping[str, np.ndarray], *, max_examples: int = 256, batch_size: int = 64
) -> tuple[dict[str, float], int]:
    """({source: -mean loss}, rows used) of each [P, H] prompt on up to `max_examples` training rows of `cfg.task`.

    The rows are a fixed sample (the first batches of the seed-0 order), identical for every prompt, and the loss
    is `cfg.train.loss` as the target's runs train with it; dropout is off.
    """
    validate_config(cfg)
    task = get_task(cfg.task)
    bb = load_backbone(cfg.model, cfg.train.device)
    data = prepare_data(cfg, task, bb)
    n = min(max_examples, len(data.train))
    order = batch_indices(len(data.train), n, seed=0, step=0)
    loss_fn, pad_id = LOSSES.get(cfg.train.loss), bb.tokenizer.pad_token_id
    batches = [make_batch(data.train, order[i : i + batch_size], pad_id, bb.device) for i in range(0, n, batch_size)]
    emb = bb.model.get_input_embeddings().weight
    was_training = bb.model.training
    bb.model.eval()
    scores = {}
    try:
        with torch.no_grad(), autocast(cfg.train.precision, bb.device):
            for name, arr in prompts.items():
                model = PromptedT5(bb.model, initial_prompt(cfg.prompt, emb, seed=0, init_prompt=arr).to(bb.device))
                total = sum(float(loss_fn(model, b, data.labels, pad_id)) * b.input_ids.shape[0] for b in batches)
                scores[name] = -total / n
    finally:
        bb.model.train(was_training)
    return scores, n
