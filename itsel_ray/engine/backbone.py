"""The frozen T5 backbone and its tokenizer, built once per process.

Trials that share a Ray actor (`reuse_actors`) or a test session reuse the same frozen model: only the soft prompt
trains, so the backbone is never modified and loading it once saves seconds per trial.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache

import torch

from itsel_ray.trial_config import ModelConfig

PAD, EOS, UNK = "<pad>", "</s>", "<unk>"


@dataclass(frozen=True)
class Backbone:
    model: "torch.nn.Module"  # a frozen T5ForConditionalGeneration
    tokenizer: object  # a transformers PreTrainedTokenizerFast
    device: torch.device

    @property
    def d_model(self) -> int:
        return int(self.model.config.d_model)

    @property
    def vocab_size(self) -> int:
        return int(self.model.get_input_embeddings().weight.shape[0])


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"train.device is {name!r} but no CUDA device is available")
    return torch.device(name)


def load_backbone(cfg: ModelConfig, device: str = "auto") -> Backbone:
    """The frozen backbone for `cfg` on `device`, cached per process."""
    dev = resolve_device(device)
    key = json.dumps({"name": cfg.name, "config": cfg.config, "tok": cfg.tokenizer, "seed": cfg.init_seed}, sort_keys=True)
    return _load_cached(key, str(dev))


@lru_cache(maxsize=2)
def _load_cached(key: str, device: str) -> Backbone:
    spec = json.loads(key)
    tokenizer = build_tokenizer(spec["tok"] or spec["name"])
    model = build_model(spec["name"], spec["config"], spec["seed"], vocab_size=len(tokenizer))
    model.requires_grad_(False)
    model.to(device)
    model.eval()
    return Backbone(model=model, tokenizer=tokenizer, device=torch.device(device))


def build_model(name: str, config: dict | None, init_seed: int, *, vocab_size: int):
    """A T5 from hub weights (`name`), or randomly initialised from `config` fields under `init_seed`."""
    from transformers import T5Config, T5ForConditionalGeneration

    if config is None:
        return T5ForConditionalGeneration.from_pretrained(name)
    fields = {"decoder_start_token_id": 0, "pad_token_id": 0, "eos_token_id": 1, **config}
    fields["vocab_size"] = max(int(fields.get("vocab_size", 0)), vocab_size)
    fork_devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=fork_devices):  # the trial's own RNG stream stays untouched
        torch.manual_seed(init_seed)
        return T5ForConditionalGeneration(T5Config(**fields))


def build_tokenizer(spec: str):
    """A hub/folder tokenizer, or "vocab:<name>": a word-level tokenizer over a registered vocabulary."""
    if spec.startswith("vocab:"):
        from itsel_ray.tasks.synthetic import VOCABULARIES

        return word_tokenizer(VOCABULARIES.get(spec.split(":", 1)[1])())
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(spec)


def word_tokenizer(words: list[str]):
    """A word-level tokenizer (pad=0, eos=1, unk=2, then `words`) that appends EOS, built fully offline."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {PAD: 0, EOS: 1, UNK: 2}
    for w in words:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins word tokens with single spaces
    tok.post_processor = processors.TemplateProcessing(single=f"$A {EOS}", special_tokens=[(EOS, 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD, eos_token=EOS, unk_token=UNK)


def set_activation_checkpointing(model, enabled: bool) -> None:
    """Recompute each T5 block in the backward pass (`enabled`) or keep its activations.

    Set at every trial start, since trials in one process share the cached backbone. Non-reentrant checkpointing
    carries the gradient through the frozen blocks to the prompt (the reentrant form needs an input that requires
    grad) and replays the RNG state, so dropout masks and gradients match the plain pass.
    """
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x renamed the gradient_* methods
        if enabled:
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            model.activation_checkpointing_disable()
    elif enabled:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_disable()
