"""Optimisers and LR schedules for the prompt, as registry entries."""

from __future__ import annotations

from typing import Callable

import torch

from itsel_ray.trial_config import OptimConfig
from itsel_ray.registry import Registry

OPTIMIZERS: Registry[Callable[[list[torch.nn.Parameter], OptimConfig], torch.optim.Optimizer]] = Registry("optimizer")
SCHEDULES: Registry[Callable[[int, int, int], float]] = Registry("LR schedule")


@OPTIMIZERS.register("adafactor")
def _adafactor(params, cfg: OptimConfig) -> torch.optim.Optimizer:
    """Adafactor with an absolute LR: no relative step, no parameter scaling (Lester et al.; the authors)."""
    from transformers.optimization import Adafactor

    return Adafactor(
        params, lr=cfg.lr, weight_decay=cfg.weight_decay, scale_parameter=False, relative_step=False, warmup_init=False
    )


@OPTIMIZERS.register("adam")
def _adam(params, cfg: OptimConfig) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


@OPTIMIZERS.register("adamw")
def _adamw(params, cfg: OptimConfig) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


@SCHEDULES.register("linear")
def _linear(step: int, warmup: int, total: int) -> float:
    """Linear warmup, then linear decay to 0 at `total` (the Hugging Face linear schedule)."""
    if step < warmup:
        return step / max(1, warmup)
    return max(0.0, (total - step) / max(1, total - warmup))


@SCHEDULES.register("constant")
def _constant(step: int, warmup: int, total: int) -> float:
    return min(1.0, step / max(1, warmup)) if warmup else 1.0


def build_optimizer(params, cfg: OptimConfig, *, max_steps: int):
    """(optimizer, scheduler) for the prompt parameters."""
    opt = OPTIMIZERS.get(cfg.name)(params, cfg)
    fn = SCHEDULES.get(cfg.schedule)
    # A plain closure, not a callable object: LambdaLR's state_dict then holds only numbers (safe to reload).
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: fn(step, cfg.warmup_steps, max_steps))
    return opt, sched
