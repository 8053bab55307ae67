"""Typed configuration of one prompt-tuning trial, and the strict dict -> dataclass parser every config uses.

A trial is fully described by a `TrialConfig`; the sweep builds one per grid point and the engine needs nothing
else. `from_dict` rejects unknown keys and wrong types with the dotted key path (and the file, when given), so a
typo in a YAML file fails before any compute is spent.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Mapping, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A bad key, type or value in a configuration; the message names the key (and file)."""


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
    train, so selection and reporting use different data). data_dir holds local files (CxC, CR).
    """

    label_style: str = "text"
    eval_split: str = "validation"
    heldout_size: int = 1000
    data_dir: str | None = None


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


# --------------------------------------------------------------------------------------------- strict parsing


def from_dict(cls: type[T], data: Mapping[str, Any], *, where: str = "", path: str = "") -> T:
    """Build dataclass `cls` from `data`, recursing into nested dataclasses.

    Unknown keys, wrong types and failing `__post_init__` checks raise ConfigError naming `path.key` and `where`
    (usually the YAML file).
    """
    suffix = f" in {where}" if where else ""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path or cls.__name__} must be a mapping, got {type(data).__name__}{suffix}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        key = f"{path}.{unknown[0]}" if path else unknown[0]
        raise ConfigError(f"unknown key {key!r}{suffix}; valid keys: {', '.join(sorted(fields))}")
    kwargs = {}
    for name, value in data.items():
        key = f"{path}.{name}" if path else name
        kwargs[name] = _coerce(hints[name], value, key=key, where=where)
    try:
        return cls(**kwargs)
    except ConfigError as err:
        raise ConfigError(f"{err}{suffix}") from None
    except TypeError as err:  # a missing required field
        raise ConfigError(f"{path or cls.__name__}: {err}{suffix}") from None


def _coerce(hint: Any, value: Any, *, key: str, where: str) -> Any:
    suffix = f" in {where}" if where else ""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, key=key, where=where)
            except ConfigError as err:
                errors.append(err)
        raise errors[0]
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where=where, path=key)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} must be a list, got {type(value).__name__}{suffix}")
        (item,) = typing.get_args(hint)[:1] or (Any,)
        items = [_coerce(item, v, key=f"{key}[{i}]", where=where) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict or hint is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key} must be a mapping, got {type(value).__name__}{suffix}")
        return dict(value)
    if hint is Any:
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool):
        if isinstance(value, bool) and hint is not bool:
            raise ConfigError(f"{key} must be {hint.__name__}, got bool{suffix}")
        if not isinstance(value, hint):
            raise ConfigError(f"{key} must be {hint.__name__}, got {type(value).__name__} {value!r}{suffix}")
        return value
    return value


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict:
    """Deep-merge two plain dicts (override wins); used for defaults + overrides layers."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out
