"""Typed configuration of one prompt-tuning trial.

A trial is fully described by a `TrialConfig`; the sweep builds one per grid point and the engine needs nothing
else. Every part is parsed with the strict `from_dict` of `itsel_ray.schema`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from itsel_ray.schema import ConfigError, from_dict

@dataclass(frozen=True)
class ModelConfig:
    """The frozen backbone.

    `name` is a hub id or local folder loaded with `from_pretrained` (needs the weights); when `config` is given
    instead, a randomly initialised T5 is built from those `T5Config` fields under `init_seed` (offline demo, tests).
    `tokenizer` is a hub id or folder (default: `name`), or "vocab:<name>": a word-level tokenizer over a
    registered vocabulary, built offline (e.g. "vocab:synthetic").
    """

    name: str = "t5-base"
    config: dict | None = None
    tokenizer: str | None = None
    init_seed: int = 0

    def __post_init__(self):
        if self.config is None and (self.tokenizer or "").startswith("vocab:"):
            raise ConfigError("model.tokenizer 'vocab:...' needs model.config (a randomly initialised backbone)")


@dataclass(frozen=True)
class PromptConfig:
    """The soft prompt: `length` tokens prepended to the encoder input.

    init strategies: `vocab_sample` (rows of `population` token ids starting at `population_start`, sampled under
    the trial seed; the Lester/SPoT "top-5K" init), `random` (N(0, init_std)), `first_ids` (rows 0..length-1, the
    authors' code), `from_file` (`path`, a .safetensors or .npy prompt: transfer).
    """

    length: int = 100
    init: str = "vocab_sample"
    population: int = 5000
    population_start: int = 0
    init_std: float = 1.0
    path: str | None = None

    def __post_init__(self):
        if self.length < 1:
            raise ConfigError(f"prompt.length must be >= 1, got {self.length}")
        if self.init == "from_file" and not self.path:
            raise ConfigError("prompt.init 'from_file' needs prompt.path")


@dataclass(frozen=True)
class OptimConfig:
    """Optimiser and schedule. Adafactor uses an absolute LR (no relative step, no parameter scaling).

    max_grad_norm clips the prompt's gradient norm before each step (1.0 = the Hugging Face Trainer default the
    authors ran with); null turns clipping off.
    """

    name: str = "adafactor"
    lr: float = 0.5
    weight_decay: float = 1e-5
    schedule: str = "linear"
    warmup_steps: int = 0
    max_grad_norm: float | None = 1.0

    def __post_init__(self):
        if self.lr <= 0:
            raise ConfigError(f"optim.lr must be > 0, got {self.lr}")


@dataclass(frozen=True)
class TrainConfig:
    """Steps, batches, evaluation and checkpointing.

    loss: `sequence` (cross-entropy over the whole target, the paper) or `label` (cross-entropy over the label
    words' scores, closed label sets only). eval_mode: `generate` (greedy decoding then parsing, the paper) or `rank`
    (score each label word in one decoder pass). The resume state is written at every evaluation; `save_every`
    keeps a prompt snapshot for the analysis. max_new_tokens caps greedy decoding (default: the task's max target
    length). threads sets torch's CPU threads (default: leave torch / Ray's OMP_NUM_THREADS alone).
    """

    max_steps: int = 30000
    batch_size: int = 32
    eval_every: int = 500
    save_every: int = 5000
    loss: str = "sequence"
    eval_mode: str = "generate"
    eval_batch_size: int = 64
    max_train_examples: int | None = None
    max_eval_examples: int | None = None
    max_new_tokens: int | None = None
    device: str = "auto"
    threads: int | None = None

    def __post_init__(self):
        for key in ("max_steps", "batch_size", "eval_every", "save_every", "eval_batch_size"):
            if getattr(self, key) < 1:
                raise ConfigError(f"train.{key} must be >= 1, got {getattr(self, key)}")


@dataclass(frozen=True)
class DataConfig:
    """Where data comes from and how labels are written.

    label_style: `text` (label words, PROMPT-TEXT) or `abstract` (label ids, PROMPT-ABSTRACT). eval_split:
    `validation` (the official validation set, as the authors) or `heldout` (`heldout_size` rows carved from
    train, so selection and reporting use different data). data_dir holds local files (CxC, CR). mirror: the root
    of a local copy of the Hub datasets (`<mirror>/nyu-mll/glue/mnli/train-00000-of-00001.parquet`, docs/data.md),
    read instead of the Hub; null = $ITSEL_RAY_DATA_MIRROR. task_mirrors: task -> that task's dataset folder,
    over `mirror`. cache_dir: the root of the prepared data (`itsel_ray.data.prepare`), which a trial memory-maps
    instead of loading and tokenising; null = $ITSEL_RAY_DATA_CACHE; neither: the trial loads its data itself.
    The locations are not part of what a trial computes: the same data from another place gives the same trial.
    """

    label_style: str = "text"
    eval_split: str = "validation"
    heldout_size: int = 1000
    data_dir: str | None = None
    mirror: str | None = None
    task_mirrors: dict | None = None
    cache_dir: str | None = None

    def __post_init__(self):
        if self.heldout_size < 1:
            raise ConfigError(f"data.heldout_size must be >= 1, got {self.heldout_size}")
        for task, folder in (self.task_mirrors or {}).items():
            if not isinstance(task, str) or not isinstance(folder, str):
                raise ConfigError(f"data.task_mirrors maps task names to folders, got {task!r}: {folder!r}")


@dataclass(frozen=True)
class TrialConfig:
    """One prompt-tuning run: a task, a seed and how to train. `source` is set on transfer runs (provenance)."""

    task: str
    seed: int
    model: ModelConfig = field(default_factory=ModelConfig)
    prompt: PromptConfig = field(default_factory=PromptConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)
    source: str | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "") -> "TrialConfig":
        return from_dict(cls, data, where=where)
