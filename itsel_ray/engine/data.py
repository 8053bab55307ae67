"""A trial's data: its train and eval splits as token ids, the golds scoring needs, and the label set.

When the prepare step has cached the task (`itsel_ray.data`), the splits are memory-mapped from that cache and
nothing is loaded or tokenised; otherwise the trial loads and tokenises them itself, as before. Either way the
result is cached per process, so trials that share a Ray actor share it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np
import torch

from itsel_ray.data.cache import cache_root_for, task_folder, trial_splits
from itsel_ray.data.encoded import Encoded, encode_examples, scoring_examples
from itsel_ray.tasks.mirror import Mirror
from itsel_ray.engine.backbone import Backbone
from itsel_ray.engine.batching import pad
from itsel_ray.engine.labels import label_set
from itsel_ray.engine.objectives import Batch, LabelSet
from itsel_ray.examples import Example
from itsel_ray.tasks import TaskSpec, get_task
from itsel_ray.trial_config import DataConfig, TrialConfig


@dataclass(frozen=True, eq=False)
class TrialData:
    """train / eval: token ids. eval_examples: what scoring reads of each eval example (target, label, answers,
    group; no input text). source: "prepared <folder>" or "loaded in the trial"."""

    train: Encoded
    eval: Encoded
    eval_examples: list[Example]
    labels: LabelSet | None
    source: str = "loaded in the trial"


_CACHE: dict[str, TrialData] = {}
CACHE_SIZE = 8


def prepare_data(cfg: TrialConfig, task: TaskSpec, bb: Backbone) -> TrialData:
    """The trial's data tokenised by `bb`'s tokenizer (the backbone `cfg.model` loads), cached per process."""
    carves = cfg.data.eval_split == "heldout" or task.data.carve_validation
    root = cache_root_for(cfg.data.cache_dir)
    key = json.dumps({"task": task.name, "data": asdict(cfg.data), "model": asdict(cfg.model),
                      "seed": cfg.seed if carves else None, "cache": str(root) if root else None,
                      "ntrain": cfg.train.max_train_examples, "neval": cfg.train.max_eval_examples,
                      "device": str(bb.device)}, sort_keys=True)
    if key not in _CACHE:
        if len(_CACHE) >= CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = _prepare(json.loads(key), bb)
    return _CACHE[key]


def clear_cache() -> None:
    _CACHE.clear()


def _prepare(spec: dict, bb: Backbone) -> TrialData:
    task = get_task(spec["task"])
    d, seed = DataConfig(**spec["data"]), spec["seed"] or 0
    prepared = None
    if spec["cache"]:
        prepared = trial_splits(task_folder(spec["cache"], task, bb.tokenizer, d.label_style), task,
                                eval_split=d.eval_split, heldout_size=d.heldout_size, seed=seed,
                                max_train=spec["ntrain"], max_eval=spec["neval"])
    labels = label_set(task, bb.tokenizer, d.label_style, bb.device)  # checked: no truncated or colliding label
    if prepared is not None:
        return TrialData(prepared.train, prepared.eval, prepared.eval_examples, labels, f"prepared {prepared.folder}")
    mirror = Mirror.of(d.mirror, d.task_mirrors)
    load = lambda split, limit: task.load(  # noqa: E731
        split, label_style=d.label_style, data_dir=d.data_dir, eval_split=d.eval_split,
        heldout_size=d.heldout_size, seed=seed, limit=limit, mirror=mirror)
    train_ex, eval_ex = load("train", spec["ntrain"]), load("validation", spec["neval"])
    lengths = dict(max_source=task.max_source_length, max_target=task.max_target_length)
    return TrialData(encode_examples(bb.tokenizer, train_ex, **lengths),
                     encode_examples(bb.tokenizer, eval_ex, **lengths), scoring_examples(eval_ex), labels)


def make_batch(data: Encoded, idx: list[int], pad_id: int, device) -> Batch:
    ids, mask = pad([data.inputs[i] for i in idx], pad_id)
    tgt, tmask = pad([data.targets[i] for i in idx], pad_id)
    labels = data.labels[np.asarray(idx, dtype=np.int64)]
    lab = torch.from_numpy(labels.astype(np.int64)).to(device) if (labels >= 0).all() else None
    return Batch(ids.to(device), mask.to(device), tgt.to(device), lab, tmask.to(device))
