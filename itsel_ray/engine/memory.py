"""What every engine's memory model shares, whatever the model family: the bookkeeping of kept bytes, the
prompt's optimiser state, the checks on a batch's sizes, and how the parts add up to a `MemoryEstimate`.

A family's model (`engine/t5/memory.py`, `engine/causal/memory.py`) counts what its layers keep for the backward
pass and what its evaluation holds; the rest is the same for any frozen backbone with a trainable [P, H] prompt,
so it lives here once. Pure arithmetic, no torch import: the sweep's planner and `--dry-run` call it on the driver.
"""

from __future__ import annotations

from itsel_ray.engine.base import MemoryEstimate

# bytes of optimiser state per prompt element beyond the prompt and its gradient (Adafactor's factored rows and
# columns are added separately: they depend on the prompt's shape, not its size)
STATE_PER_ELEMENT = {"adafactor": 0, "adam": 8, "adamw": 8}


class KeptBytes:
    """Kept bytes by kind (attention, norms, ...), for the estimate's total and its details."""

    def __init__(self):
        self.by_kind: dict[str, float] = {}

    def add(self, kind: str, nbytes: float) -> None:
        self.by_kind[kind] = self.by_kind.get(kind, 0.0) + nbytes

    @property
    def total(self) -> float:
        return sum(self.by_kind.values())


def resolve_precision(precision: str, device: str, bf16_capable: bool) -> str:
    """`auto` as the engines resolve it: bf16 autocast on a bf16-capable CUDA device, else fp32."""
    if precision != "auto":
        return precision
    return "bf16" if device == "cuda" and bf16_capable else "fp32"


def check_inputs(precision: str, device: str, **sizes: int) -> None:
    """Refuse a precision other than bf16/fp32 (resolve `auto` first), a device other than cpu/cuda, or a size < 1,
    naming it."""
    if precision not in ("bf16", "fp32") or device not in ("cpu", "cuda"):
        raise ValueError(f"precision must be bf16 or fp32 and device cpu or cuda, got {precision!r} / {device!r}")
    for key, value in sizes.items():
        if value < 1:
            raise ValueError(f"{key} must be >= 1, got {value}")


def prompt_state_bytes(optimizer: str, prompt_tokens: int, width: int) -> int:
    """The fp32 prompt, its gradient and the optimiser's state: Adam's two moments, or Adafactor's factored row and
    column statistics."""
    if optimizer not in STATE_PER_ELEMENT:
        raise ValueError(f"unknown optimizer {optimizer!r}; valid names: {', '.join(sorted(STATE_PER_ELEMENT))}")
    elements = prompt_tokens * width
    factored = (prompt_tokens + width) * 4 if optimizer == "adafactor" else 0
    return 2 * elements * 4 + factored + STATE_PER_ELEMENT[optimizer] * elements


def estimate(*, weights: float, optimizer_state: float, kept: KeptBytes, workspace: float, eval_peak: float,
             scale: float) -> MemoryEstimate:
    """The trial's peak: weights and optimiser state, plus the larger of training (kept activations and the
    backward's workspace) and evaluation; the modelled activation terms times the device's calibration `scale`."""
    activations, workspace, eval_peak = kept.total * scale, workspace * scale, eval_peak * scale
    total = weights + optimizer_state + max(activations + workspace, eval_peak)
    return MemoryEstimate(weights=int(weights), activations=int(activations), optimizer_state=int(optimizer_state),
                          workspace=int(workspace), eval_peak=int(eval_peak), total=int(total),
                          details={k: int(v * scale) for k, v in kept.by_kind.items()})
