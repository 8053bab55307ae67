"""One engine contract: every registered engine implements it, `torch` stays the T5 engine's name in older sweep
files, and nothing outside the engine needs to know which engine a sweep runs."""

import inspect

import numpy as np
import pytest

from itsel_ray.engine import ENGINES, Engine, TrialError, get_engine
from itsel_ray.engine.base import MemoryEstimate, ModelInfo
from itsel_ray.registry import UnknownNameError
from itsel_ray.runs.sweep_file import load_sweep
from itsel_ray.schema import ConfigError
from tests.conftest import tiny_causal_trial, tiny_trial

CONTRACT = ("validate_config", "run_trial", "recover_record", "describe_model", "predict_memory", "readout")


@pytest.mark.parametrize("name", ENGINES.names())
def test_every_registered_engine_implements_the_contract(name):
    engine = get_engine(name)
    assert isinstance(engine, Engine) and not inspect.isabstract(type(engine))
    assert engine.name in ENGINES and get_engine(engine.name) is engine
    for method in CONTRACT:
        assert callable(getattr(engine, method)), method
    run = inspect.signature(engine.run_trial).parameters
    assert list(run)[:2] == ["cfg", "work_dir"] and {"report", "init_prompt"} <= set(run)
    assert all(run[k].kind is inspect.Parameter.KEYWORD_ONLY for k in ("report", "init_prompt"))
    cfg = tiny_causal_trial() if name == "causal" else tiny_trial()  # each engine's own tiny model
    info = engine.describe_model(cfg.model)
    assert isinstance(info, ModelInfo) and info.d_model > 0 and info.line()


def test_torch_is_the_t5_engines_older_name_and_an_unknown_engine_lists_the_valid_ones():
    assert get_engine("torch") is get_engine("t5")
    assert load_sweep("smoke", overrides=["engine=torch"]).spec.engine == "torch"
    with pytest.raises(UnknownNameError, match="valid names: causal, fake, t5, torch"):
        get_engine("t6")
    with pytest.raises(ConfigError, match="engine must be one of causal, fake, t5, torch"):
        load_sweep("smoke", overrides=["engine=t6"])


def test_the_t5_engine_describes_and_sizes_a_random_t5_without_building_it():
    t5, cfg = get_engine("t5"), tiny_trial()
    info = t5.describe_model(cfg.model)
    assert (info.family, info.d_model, info.vocab_size) == ("t5", 128, 277)  # the synthetic word vocabulary
    assert info.source.startswith("model.config")
    estimate = t5.predict_memory(cfg, device="cpu")
    assert isinstance(estimate, MemoryEstimate) and estimate.weights == 4 * info.parameters
    built = t5.backbone(cfg.model)
    assert sum(p.numel() for p in built.model.parameters()) == info.parameters
    assert (built.d_model, built.vocab_size) == (info.d_model, info.vocab_size)


def test_the_stand_in_engine_holds_no_model(tmp_path):
    fake = get_engine("fake")
    cfg = tiny_trial(train={"max_steps": 4, "eval_every": 2, "save_every": 2})
    assert not fake.has_model and fake.predict_memory(cfg) is None
    assert fake.describe_model(cfg.model).parameters == 0
    with pytest.raises(TrialError, match="engine 'fake' holds no model"):
        fake.readout(cfg, {"a": np.zeros((10, 8), np.float32)}, max_examples=8)
    result = fake.run_trial(cfg, tmp_path)
    assert result.status == "done" and fake.recover_record(cfg, tmp_path)["steps"] == 4


def test_an_engine_registered_outside_the_package_runs_a_sweeps_trials(tmp_path, monkeypatch):
    """A plugin engine is one registry entry: the sweep file names it and the planner asks it, by the contract."""
    from itsel_ray.engine import fake as fake_module
    from itsel_ray.runs.resources import model_lines

    class Echo(fake_module.FakeEngine):
        name = "echo"

        def describe_model(self, model):
            return ModelInfo(name="echo", family="echo", d_model=8, vocab_size=None, parameters=1, source="a test")

    monkeypatch.setitem(ENGINES._items, "echo", Echo())
    sweep = load_sweep("smoke", overrides=["engine=echo"])
    assert model_lines(sweep) == ["model: none (engine 'echo' trains no model)"]
    cfg = sweep.trial_config("source", task=sweep.grid.sources[0], seed=42)
    assert get_engine(sweep.spec.engine).run_trial(cfg, tmp_path).status == "done"
