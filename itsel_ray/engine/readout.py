"""Zero-shot readouts: each source prompt in front of the frozen model, over a fixed sample of the target's training
rows, before any target training: what model-backed selector inputs are computed from (PROBE from the losses, LOGME
from the features; `itsel_ray.selection.model_inputs`).

A transfer trial trains for thousands of steps; a readout is one forward pass per source prompt over a small sample
of the target's *training* examples (never the validation rows the ground truth is measured on). The sample is the
first rows of the seed-0 training order, identical for every prompt; dropout is off, there are no gradients, and
the precision is the trial's. The model-specific parts (the loss, the pooled features) come from the engine's
`PromptedModel`, so every engine that implements it gets readouts for free.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Iterator, Mapping

import numpy as np
import torch

from itsel_ray.data.encoded import Encoded
from itsel_ray.engine.backbone import Backbone
from itsel_ray.engine.base import TrialError
from itsel_ray.engine.batching import batch_indices
from itsel_ray.engine.data import TrialData, make_batch, prepare_data
from itsel_ray.engine.objectives import LOSSES, Batch
from itsel_ray.engine.precision import autocast
from itsel_ray.engine.prompt import PromptedModel, initial_prompt
from itsel_ray.numbers import parse_number
from itsel_ray.tasks import get_task
from itsel_ray.trial_config import TrialConfig


@dataclass(frozen=True)
class TrainingSample:
    """The rows every prompt is passed over: the first `len(order)` of the seed-0 training order, batched."""

    backbone: Backbone
    data: TrialData
    order: list[int]
    batches: list[Batch]


def training_sample(engine, cfg: TrialConfig, *, max_examples: int, batch_size: int) -> TrainingSample:
    engine.validate_config(cfg)
    bb = engine.backbone(cfg.model, cfg.train.device)
    data = prepare_data(cfg, get_task(cfg.task), bb)
    n = min(max_examples, len(data.train))
    order = batch_indices(len(data.train), n, seed=0, step=0)
    pad_id = bb.tokenizer.pad_token_id
    batches = [make_batch(data.train, order[i : i + batch_size], pad_id, bb.device) for i in range(0, n, batch_size)]
    return TrainingSample(bb, data, order, batches)


class PromptReadout:
    """The `Readout` (itsel_ray.selection.model_inputs) of one target under each source prompt: computed lazily,
    each part once."""

    def __init__(self, engine, cfg: TrialConfig, prompts: Mapping[str, np.ndarray], *, max_examples: int,
                 batch_size: int = 64):
        self.engine, self.cfg, self.prompts = engine, cfg, dict(prompts)
        self.sample = training_sample(engine, cfg, max_examples=max_examples, batch_size=batch_size)
        self.target, self.rows, self.objective = cfg.task, len(self.sample.order), cfg.train.loss
        self._losses: dict[str, float] | None = None
        self._features: dict[str, np.ndarray] | None = None

    def losses(self) -> dict[str, float]:
        """{source: the mean loss of the target runs' objective (`train.loss`) over the sample}: the batch means
        weighted by their rows."""
        if self._losses is None:
            loss_fn, pad_id = LOSSES.get(self.cfg.train.loss), self.sample.backbone.tokenizer.pad_token_id
            labels = self.sample.data.labels
            with self._models() as models:
                self._losses = {name: sum(float(loss_fn(model, b, labels, pad_id)) * b.input_ids.shape[0]
                                          for b in self.sample.batches) / self.rows for name, model in models}
        return self._losses

    def features(self) -> dict[str, np.ndarray]:
        """{source: [rows, H] float32}: the prompted model's pooled features of each sampled row."""
        if self._features is None:
            with self._models() as models:
                self._features = {
                    name: torch.cat([model.features(b.input_ids, b.attention_mask) for b in self.sample.batches])
                    .cpu().numpy() for name, model in models}
        return self._features

    def targets(self) -> tuple[np.ndarray, bool]:
        """([rows] targets of the sample, regression?): class indices where every row has one, else the numbers the
        target texts spell (STS-B-like: "three point eight" -> 3.8). ValueError naming the task for free text."""
        return sample_targets(self.sample.data.train, self.sample.order, self.sample.backbone.tokenizer,
                              self.cfg.task)

    @contextlib.contextmanager
    def _models(self) -> Iterator[Iterator[tuple[str, PromptedModel]]]:
        """(source, the frozen model with that source's [P, H] prompt) for every prompt: dropout off, no gradients,
        the trial's precision."""
        bb = self.sample.backbone
        emb = bb.model.get_input_embeddings().weight
        was_training = bb.model.training
        bb.model.eval()
        try:
            with torch.no_grad(), autocast(self.cfg.train.precision, bb.device):
                yield ((name, self.engine.prompted(
                    bb.model, initial_prompt(self.cfg.prompt, emb, seed=0, init_prompt=arr).to(bb.device)))
                    for name, arr in self.prompts.items())
        finally:
            bb.model.train(was_training)


def sample_targets(train: Encoded, rows: list[int], tokenizer, task: str) -> tuple[np.ndarray, bool]:
    """([n] targets of `rows`, regression?): class indices where every row has one (Encoded marks a row without one
    by -1), else the parsed numbers."""
    labels = np.asarray([train.labels[i] for i in rows], dtype=np.int64)
    if (labels >= 0).all():
        return labels, False
    texts = [tokenizer.decode(train.targets[i], skip_special_tokens=True) for i in rows]
    values = np.array([parse_number(t, default=math.nan) for t in texts], dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise TrialError(f"task {task}: its targets are neither class labels nor numbers (training row "
                         f"{rows[bad[0]]}: {texts[bad[0]]!r}); this input needs one or the other")
    return values, True
