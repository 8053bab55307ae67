"""Typed configuration of one prompt-tuning trial.

A trial is fully described by a `TrialConfig`; the sweep builds one per grid point and the engine needs nothing
else. Every part is parsed with the strict `from_dict` of `itsel_ray.schema`.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from itsel_ray.schema import ConfigError, from_dict

SEED_LIMIT = 2**32  # numpy's and most RNGs' seed range: [0, 2**32)
# Larger than any T5-family vocabulary (mT5: 250,112): a population beyond it is a typo, not a choice.
MAX_VOCABULARY = 1_000_000
PRECISIONS = ("auto", "bf16", "fp32")
DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?|mps")
# How a trial is run rather than what it computes: CPU threads change its speed (and floating-point reduction
# order, within the tolerance the numerical tests allow), so changing them must not retrain finished trials.
NOT_IDENTITY = {"train": ("threads",)}
BATCHINGS = ("random", "bucketed")


def check_seed(key: str, value: int) -> None:
    if not 0 <= value < SEED_LIMIT:
        raise ConfigError(f"{key} must be in [0, 2**32), got {value}")


def check_finite(key: str, value: float, *, low: float | None = None, strict: bool = True) -> None:
    """`value` is a finite number above `low` (or at least `low` when not strict)."""
    if not math.isfinite(value):
        raise ConfigError(f"{key} must be a finite number, got {value}")
    if low is not None and (value <= low if strict else value < low):
        raise ConfigError(f"{key} must be {'>' if strict else '>='} {low:g}, got {value}")


def check_at_least(key: str, value: int | None, low: int = 1) -> None:
    if value is not None and value < low:
        raise ConfigError(f"{key} must be >= {low}, got {value}")


@dataclass(frozen=True)
class ModelConfig:
    """The frozen backbone; the engine checks that it can run it (`Engine.validate_config`).

    `name` is a hub id or local folder of a checkpoint of the engine's model family (the t5 engine: any T5-family
    model), loaded with `from_pretrained`; its shape is read from its config.json. When `config` is given instead,
    a randomly initialised backbone is built from those fields of the family's config class (the t5 engine:
    `T5Config`) under `init_seed` (offline demo, tests). `tokenizer` is a hub id or folder (default: `name`), or
    "vocab:<name>": a word-level tokenizer over a registered vocabulary, built offline (e.g. "vocab:synthetic").
    """

    name: str = "t5-base"
    config: dict | None = None
    tokenizer: str | None = None
    init_seed: int = 0

    def __post_init__(self):
        if self.config is None and (self.tokenizer or "").startswith("vocab:"):
            raise ConfigError("model.tokenizer 'vocab:...' needs model.config (a randomly initialised backbone)")
        check_seed("model.init_seed", self.init_seed)


@dataclass(frozen=True)
class PromptConfig:
    """The soft prompt: `length` tokens prepended to the encoder input.

    init strategies: `vocab_sample` (`length` distinct token ids drawn from the `population` ids starting at
    `population_start`, under the trial seed; the Lester/SPoT "top-5K" init, which samples without replacement;
    `sample_with_replacement: true` restores the draw with replacement that runs before this option existed used),
    `random` (N(0, init_std)), `first_ids` (rows 0..length-1, the authors' code), `from_file` (`path`, a
    .safetensors or .npy prompt: transfer).
    """

    length: int = 100
    init: str = "vocab_sample"
    population: int = 5000
    population_start: int = 0
    init_std: float = 1.0
    path: str | None = None
    sample_with_replacement: bool = False

    def __post_init__(self):
        if self.length < 1:
            raise ConfigError(f"prompt.length must be >= 1, got {self.length}")
        if self.init == "from_file" and not self.path:
            raise ConfigError("prompt.init 'from_file' needs prompt.path")
        check_at_least("prompt.population", self.population)
        check_at_least("prompt.population_start", self.population_start, 0)
        for key in ("population", "population_start"):
            if getattr(self, key) >= MAX_VOCABULARY:
                raise ConfigError(f"prompt.{key} is {getattr(self, key)}, beyond any vocabulary "
                                  f"(limit {MAX_VOCABULARY:,})")
        if self.init == "vocab_sample" and not self.sample_with_replacement and self.population < self.length:
            raise ConfigError(f"prompt.population {self.population} < prompt.length {self.length}: too few ids to "
                              "sample distinct ones (lower prompt.length or set prompt.sample_with_replacement)")
        check_finite("prompt.init_std", self.init_std, low=0.0)


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
        check_finite("optim.lr", self.lr, low=0.0)
        check_finite("optim.weight_decay", self.weight_decay, low=0.0, strict=False)
        check_at_least("optim.warmup_steps", self.warmup_steps, 0)
        if self.max_grad_norm is not None:
            check_finite("optim.max_grad_norm", self.max_grad_norm, low=0.0)


@dataclass(frozen=True)
class TrainConfig:
    """Steps, batches, evaluation and checkpointing.

    loss: `sequence` (cross-entropy over the whole target, the paper) or `label` (cross-entropy over the label
    words' scores, closed label sets only). eval_mode: `generate` (greedy decoding then parsing, the paper) or `rank`
    (score each label word in one decoder pass). The resume state is written at every evaluation; `save_every`
    keeps a prompt snapshot for the analysis. max_new_tokens caps greedy decoding (default: the task's max target
    length). threads sets torch's CPU threads (default: leave torch / Ray's OMP_NUM_THREADS alone).

    micro_batch_size splits each batch into micro-batches whose gradients are accumulated into one update equal to
    the full batch's (default: the whole batch at once); only one micro-batch's activations are alive at a time.
    activation_checkpointing recomputes each T5 block's activations in the backward pass instead of keeping them.
    precision: `auto` (bf16 autocast on a CUDA device that supports it, else fp32), `bf16` or `fp32`; the frozen
    weights stay fp32 and label scores are computed in fp32 either way (the authors trained in fp32).

    early_stop_patience (opt-in, default off: the paper trains every trial for max_steps) ends a trial once that
    many evaluations in a row have not beaten the best score so far by more than early_stop_min_delta; the best
    prompt is still the best evaluation's, and the record says where it stopped. The learning-rate schedule is
    not shortened: a stopped trial ends where its LR still is.

    batching: `random` (each batch a slice of a per-epoch permutation, padded to its longest row, as the authors)
    or `bucketed` (the same stream pooled 64 batches at a time and sorted by length, so rows of similar length
    share a batch and padding shrinks; itsel_ray/engine/batching.py). Both are pure functions of (seed, step).
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
    micro_batch_size: int | None = None
    activation_checkpointing: bool = False
    precision: str = "auto"
    early_stop_patience: int | None = None
    early_stop_min_delta: float = 0.0
    batching: str = "random"

    def __post_init__(self):
        for key in ("max_steps", "batch_size", "eval_every", "save_every", "eval_batch_size", "max_train_examples",
                    "max_eval_examples", "max_new_tokens", "threads", "micro_batch_size", "early_stop_patience"):
            check_at_least(f"train.{key}", getattr(self, key))
        check_finite("train.early_stop_min_delta", self.early_stop_min_delta, low=0.0, strict=False)
        if self.early_stop_min_delta and self.early_stop_patience is None:
            raise ConfigError("train.early_stop_min_delta needs train.early_stop_patience (early stopping is off)")
        if self.micro_batch_size is not None and self.micro_batch_size > self.batch_size:
            raise ConfigError(f"train.micro_batch_size {self.micro_batch_size} exceeds train.batch_size "
                              f"{self.batch_size}")
        if self.batching not in BATCHINGS:
            raise ConfigError(f"train.batching must be one of {', '.join(BATCHINGS)}, got {self.batching!r}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"train.precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if not DEVICE_PATTERN.fullmatch(self.device):
            raise ConfigError(f"train.device must be auto, cpu, cuda, cuda:N or mps, got {self.device!r}")

    @property
    def micro_batch(self) -> int:
        return self.micro_batch_size or self.batch_size


DATA_LOCATIONS = ("data_dir", "mirror", "task_mirrors", "cache_dir")  # where the data is, not what it is
# train options left out of a trial's identity while off, so trials from before they existed keep their fingerprint
OPT_IN = {"early_stop_patience": None, "early_stop_min_delta": 0.0, "batching": "random"}


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
        check_at_least("data.heldout_size", self.heldout_size)
        for task, folder in (self.task_mirrors or {}).items():
            if not isinstance(task, str) or not isinstance(folder, str):
                raise ConfigError(f"data.task_mirrors maps task names to folders, got {task!r}: {folder!r}")


def check_schedule(optim: "OptimConfig", train: "TrainConfig") -> None:
    """Settings that are fine alone but not together: a warmup longer than the run never reaches its peak LR."""
    if optim.warmup_steps > train.max_steps:
        raise ConfigError(f"optim.warmup_steps {optim.warmup_steps} exceeds train.max_steps {train.max_steps}: the "
                          "learning rate would never reach its peak")


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

    def __post_init__(self):
        check_seed("seed", self.seed)
        check_schedule(self.optim, self.train)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def identity(self) -> dict:
        """What determines the trial's outcome: to_dict() without where the data is read from, so the same trial
        resumes (and the sweep recognises it) when its data moves to a mirror, a cache or another folder, and
        without train.threads (NOT_IDENTITY: a finished trial is not retrained when only they change)."""
        out = self.to_dict()
        for key in DATA_LOCATIONS:
            out["data"].pop(key, None)
        for part, keys in NOT_IDENTITY.items():  # kept as null, so that trials run with the default keep their identity
            for key in keys:
                out[part][key] = None
        for key, default in OPT_IN.items():  # off: the identity of a trial from before the option existed
            if out["train"].get(key) == default:
                out["train"].pop(key)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "") -> "TrialConfig":
        return from_dict(cls, data, where=where)
