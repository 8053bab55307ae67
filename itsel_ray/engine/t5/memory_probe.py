"""Measured memory of one prompt-tuning step, to check and calibrate the pure model in `engine/t5/memory.py`.

Three numbers per step on a randomly initialised, frozen T5 with a trainable prompt:
- saved: bytes autograd keeps for the backward pass, from `torch.autograd.graph.saved_tensors_hooks` (each storage
  once, the frozen weights left out; autocast's weight copies included);
- retained: bytes of every tensor alive once the forward pass has returned (saved ones, and what activation
  checkpointing holds outside autograd's saved tensors);
- peak: the most bytes alive at once during forward and backward.
On CPU, retained and peak come from a dispatch mode that tracks every storage an operator creates; on CUDA from
torch.cuda.memory_allocated / max_memory_allocated relative to the weights already on the device.
"""

from __future__ import annotations

import contextlib
import weakref
from dataclasses import dataclass

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


@dataclass(frozen=True)
class StepMemory:
    saved: int
    retained: int
    peak: int


class LiveBytes(TorchDispatchMode):
    """Bytes of the storages that operators create while active: now and at most (CPU tensors included).

    exclude: data pointers of storages not to count (the weights: a transposed weight is a view, not new memory).
    """

    def __init__(self, exclude: set[int] = frozenset()):
        super().__init__()
        self.exclude = exclude
        self.sizes: dict[int, int] = {}
        self.refs: dict[int, weakref.ref] = {}
        self.now = self.peak = 0

    def _track(self, t: torch.Tensor) -> None:
        st = t.untyped_storage()
        key = st._cdata
        if key in self.sizes or st.data_ptr() in self.exclude:
            return
        self.sizes[key] = st.nbytes()
        self.now += self.sizes[key]
        self.peak = max(self.peak, self.now)
        self.refs[key] = weakref.ref(st, lambda _, key=key: self._drop(key))

    def _drop(self, key: int) -> None:
        self.now -= self.sizes.pop(key, 0)
        self.refs.pop(key, None)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t.device.type != "meta":
                self._track(t)
        return out


def build_prompted(model_config: dict, *, prompt_tokens: int, device: str = "cpu", seed: int = 0):
    """A frozen, randomly initialised T5 in training mode with a random [P, H] prompt."""
    from transformers import T5Config, T5ForConditionalGeneration

    from itsel_ray.engine.t5.model import PromptedT5

    torch.manual_seed(seed)
    fields = {"decoder_start_token_id": 0, "pad_token_id": 0, "eos_token_id": 1, **model_config}
    backbone = T5ForConditionalGeneration(T5Config(**fields)).requires_grad_(False).to(device)
    backbone.train()
    prompt = torch.randn(prompt_tokens, backbone.config.d_model) * 0.5
    return PromptedT5(backbone, prompt.to(device))


def step_batch(vocab: int, *, batch: int, text_tokens: int, target_tokens: int, device: str = "cpu", seed: int = 0):
    """Random inputs (the first row padded to half its length, as batches of unequal rows are) and targets."""
    from itsel_ray.engine.objectives import Batch

    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (batch, text_tokens), generator=gen)
    mask = torch.ones_like(ids)
    if batch > 1:
        mask[0, text_tokens // 2 :] = 0
        ids[0, text_tokens // 2 :] = 0
    targets = torch.randint(3, vocab, (batch, target_tokens), generator=gen)
    targets[:, -1] = 1
    return Batch(ids.to(device), mask.to(device), targets.to(device), None)


def measure_step(model_config: dict, *, batch: int, input_tokens: int, target_tokens: int, precision: str,
                 activation_checkpointing: bool = False, prompt_tokens: int = 10, device: str = "cpu") -> StepMemory:
    """Memory of one sequence-loss step at `input_tokens` encoder positions (the prompt's included)."""
    from itsel_ray.engine.backbone import set_activation_checkpointing
    from itsel_ray.engine.precision import PRECISIONS

    dev = torch.device(device)
    model = build_prompted(model_config, prompt_tokens=prompt_tokens, device=device)
    set_activation_checkpointing(model.backbone, activation_checkpointing)
    data = step_batch(model.backbone.config.vocab_size, batch=batch, text_tokens=input_tokens - prompt_tokens,
                      target_tokens=target_tokens, device=device)
    params = {p.untyped_storage().data_ptr() for p in model.backbone.parameters()}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        st = t.untyped_storage()
        if st.data_ptr() not in params:
            saved.setdefault(st.data_ptr(), st.nbytes())
        return t

    cuda = dev.type == "cuda"
    tracker = contextlib.nullcontext() if cuda else LiveBytes(params)
    if cuda:
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev)
    with tracker:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), PRECISIONS.get(precision)(dev):
            loss = model.sequence_loss(data, 0)
        retained = torch.cuda.memory_allocated(dev) - base if cuda else tracker.now
        loss.backward()
        peak = torch.cuda.max_memory_allocated(dev) - base if cuda else tracker.peak
    set_activation_checkpointing(model.backbone, False)
    return StepMemory(saved=sum(saved.values()), retained=int(retained), peak=int(peak))
