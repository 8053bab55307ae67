"""Trial engines as registry entries: `ENGINES` maps a sweep's `engine:` name to an `Engine` object, the one
contract in `engine/base.py` (run a trial, validate a config, recover a record, describe the model, predict memory,
read the model out for model-backed selector inputs).

`t5` (engine/t5/) prompt-tunes a frozen T5-family model; `torch` is its older name, kept so existing sweep files
work. `causal` (engine/causal/) prompt-tunes a frozen decoder-only language model (GPT-2, Llama, Mistral, Qwen). `fake` (engine/fake.py) is a stand-in with the same contract and file layout that trains nothing, so the
sweep's scheduling, resume and fault handling can be tested and benchmarked in seconds. Importing this package loads
no torch: an engine imports its model code when a method runs. Another engine registers with `ENGINES.add(name,
engine)` (e.g. from a plugin module).
"""

from __future__ import annotations

from itsel_ray.engine.base import Engine, MemoryEstimate, ModelInfo, TrialError
from itsel_ray.engine.causal import CAUSAL
from itsel_ray.engine.fake import FAKE
from itsel_ray.engine.t5 import T5
from itsel_ray.registry import Registry

ENGINES: Registry[Engine] = Registry("engine")
ENGINES.add("t5", T5)
ENGINES.add("torch", T5)  # the T5 engine's name before there was a second model family
ENGINES.add("causal", CAUSAL)
ENGINES.add("fake", FAKE)


def get_engine(name: str) -> Engine:
    """The engine registered as `name`; an unknown name lists the valid ones."""
    return ENGINES.get(name)


__all__ = ["ENGINES", "Engine", "MemoryEstimate", "ModelInfo", "TrialError", "get_engine"]
