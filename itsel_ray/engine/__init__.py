"""Trial engines: `run_trial(cfg, work_dir, *, report, init_prompt)` and `validate_config(cfg)` with one contract.

`torch` (engine/trial.py) prompt-tunes a frozen T5 (no Ray); `fake` (engine/fake.py) is a stand-in with the same
contract and file layout that trains nothing, so the sweep's scheduling, resume and fault handling can be tested
and benchmarked in seconds. A sweep picks one with `engine:`. Importing this package loads neither.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from itsel_ray.registry import Registry

ENGINES: Registry[str] = Registry("engine")
ENGINES.add("torch", "itsel_ray.engine.trial")
ENGINES.add("fake", "itsel_ray.engine.fake")


def get_engine(name: str) -> ModuleType:
    """The engine module registered as `name` (imported on first use: the stand-in never loads torch)."""
    return importlib.import_module(ENGINES.get(name))
