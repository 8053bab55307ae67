"""Numeric precision of the forward passes, as registry entries: `fp32`, or `bf16` autocast over fp32 weights.

The frozen weights and the prompt stay fp32 either way; autocast runs the matrix products in bf16, which roughly
halves activation memory on a GPU. `auto` (the default) is bf16 on a CUDA device that supports it and fp32
elsewhere (the authors trained in fp32; CPU bf16 is slower than fp32 on most CPUs). The LM head that label scores
and the sequence loss read is computed in fp32 under both (`PromptedT5.decode_logits`).
"""

from __future__ import annotations

import contextlib
from typing import Callable, ContextManager

import torch

from itsel_ray.registry import Registry

PRECISIONS: Registry[Callable[[torch.device], ContextManager]] = Registry("precision")


@PRECISIONS.register("fp32")
def _fp32(device: torch.device) -> ContextManager:
    return contextlib.nullcontext()


@PRECISIONS.register("bf16")
def _bf16(device: torch.device) -> ContextManager:
    return torch.autocast(device.type, dtype=torch.bfloat16)


def resolve_precision(name: str, device: torch.device) -> str:
    """The precision a trial runs at: `auto` becomes bf16 on a bf16-capable CUDA device, else fp32."""
    if name == "auto":
        cuda_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
        return "bf16" if cuda_bf16 else "fp32"
    if name == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise RuntimeError(f"train.precision is 'bf16' but {torch.cuda.get_device_name(device)} has no bf16 support; "
                           "use 'fp32' or 'auto'")
    PRECISIONS.get(name)
    return name


def autocast(name: str, device: torch.device) -> ContextManager:
    """The autocast context of precision `name` ("auto" resolved for `device`)."""
    return PRECISIONS.get(resolve_precision(name, device))(device)
