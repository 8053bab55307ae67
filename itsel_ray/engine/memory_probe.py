"""Measured memory of one prompt-tuning step, to check and calibrate an engine's pure memory model
(`engine/t5/memory.py`, `engine/causal/memory.py`). Each engine's `memory_probe` builds its frozen, randomly
initialised model with a trainable prompt and a batch; `measure` takes three numbers of one sequence-loss step:
- saved: bytes autograd keeps for the backward pass, from `torch.autograd.graph.saved_tensors_hooks` (each storage
  once, the frozen weights and buffers left out; autocast's weight copies included);
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


def measure(model, data, *, precision: str, activation_checkpointing: bool = False,
            device: str = "cpu") -> StepMemory:
    """Memory of one `model.sequence_loss(data)` step with its backward pass (model: a prompted engine model whose
    `backbone` is frozen)."""
    from itsel_ray.engine.backbone import set_activation_checkpointing
    from itsel_ray.engine.precision import PRECISIONS

    dev = torch.device(device)
    set_activation_checkpointing(model.backbone, activation_checkpointing)
    frozen = {p.untyped_storage().data_ptr() for p in model.backbone.parameters()}
    frozen |= {b.untyped_storage().data_ptr() for b in model.backbone.buffers()}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        st = t.untyped_storage()
        if st.data_ptr() not in frozen:
            saved.setdefault(st.data_ptr(), st.nbytes())
        return t

    cuda = dev.type == "cuda"
    tracker = contextlib.nullcontext() if cuda else LiveBytes(frozen)
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
