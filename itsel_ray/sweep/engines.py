"""Which trial runner a sweep uses: the prompt-tuning engine, or a stand-in that trains nothing.

Both expose `run_trial(cfg, work_dir, *, report, init_prompt)` and `validate_config(cfg)` with the same contract;
the stand-in lets the sweep's scheduling, resume and fault handling be tested and benchmarked in seconds.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from itsel_ray.config import ConfigError

ENGINE_MODULES = {"torch": "itsel_ray.engine", "fake": "itsel_ray.sweep.testing"}


def get_engine(name: str) -> ModuleType:
    try:
        module = ENGINE_MODULES[name]
    except KeyError:
        raise ConfigError(f"unknown engine {name!r}; valid: {', '.join(ENGINE_MODULES)}") from None
    return importlib.import_module(module)
