"""The LOGME selector's input: each source prompt's frozen-encoder features of the target's training rows, scored by
LogME against the target's labels (`itsel_ray.selection.logme`).

Like the zero-shot probe (`zero_shot.probe_prompts`), one encoder pass per source prompt over the same fixed sample
of the target's *training* rows (never the validation rows the ground truth is measured on), no decoder and no
target training. A row's feature is the mean of the encoder's output states over the row's own input tokens (EOS
included, padding excluded), computed with the source prompt in front; the prompt positions are left out of the
mean. The prompt still shapes every input state through self-attention, which is what is measured; its own
positions would add a nearly constant block, the same for every row whatever its label (100 positions against
a few dozen input tokens in the paper's setting), which dilutes the features and, since LogME's linear model has
no intercept, acts as a large bias feature rather than information about the labels.

Labels: `Example.label` for closed label sets (classification: one-hot per class); for targets without one the
number the target text spells (STS-B-like: "three point eight" -> 3.8, through `itsel_ray.numbers`), as a
regression. A task with free-text targets (QA) has neither, and is refused naming the task.
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np
import torch

from itsel_ray.data.encoded import Encoded
from itsel_ray.engine.prompt import PromptedT5
from itsel_ray.engine.trial import TrialError
from itsel_ray.engine.zero_shot import prompted_models, training_sample
from itsel_ray.numbers import parse_number
from itsel_ray.selection.logme import logme
from itsel_ray.trial_config import TrialConfig


def logme_targets(train: Encoded, rows: list[int], tokenizer, task: str) -> tuple[np.ndarray, bool]:
    """([n] labels of `rows`, regression?): class indices where every row has one, else the parsed numbers."""
    labels = np.asarray([train.labels[i] for i in rows], dtype=np.int64)
    if (labels >= 0).all():  # every row has a class (Encoded marks a row without one by -1)
        return labels, False
    texts = [tokenizer.decode(train.targets[i], skip_special_tokens=True) for i in rows]
    values = np.array([parse_number(t, default=math.nan) for t in texts], dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise TrialError(f"LogME on task {task}: its targets are neither class labels nor numbers (training row "
                         f"{rows[bad[0]]}: {texts[bad[0]]!r}); LogME needs one or the other")
    return values, True


def pooled_features(model: PromptedT5, batch, prompt_length: int) -> torch.Tensor:
    """[B, H] float32: the mean encoder state over each row's input tokens (prompt positions and padding out)."""
    states, _ = model.encode(batch.input_ids, batch.attention_mask)
    mask = batch.attention_mask.to(states.dtype).unsqueeze(-1)
    summed = (states[:, prompt_length:, :] * mask).sum(dim=1)
    return (summed / mask.sum(dim=1).clamp(min=1)).float()


def logme_prompts(
    cfg: TrialConfig, prompts: Mapping[str, np.ndarray], *, max_examples: int = 256, batch_size: int = 64
) -> tuple[dict[str, float], int]:
    """({source: LogME}, rows used) of each [P, H] prompt's pooled encoder features of up to `max_examples`
    training rows of `cfg.task` against their labels. The rows are the probe's fixed sample (the first batches of
    the seed-0 order), identical for every prompt; dropout is off."""
    sample = training_sample(cfg, max_examples=max_examples, batch_size=batch_size)
    labels, regression = logme_targets(sample.data.train, sample.order, sample.backbone.tokenizer, cfg.task)
    scores = {}
    with prompted_models(cfg, sample, prompts) as models:
        for name, model in models:
            length = model.prompt.shape[0]
            feats = torch.cat([pooled_features(model, b, length) for b in sample.batches]).cpu().numpy()
            scores[name] = logme(feats, labels, regression=regression)
    return scores, len(sample.order)
