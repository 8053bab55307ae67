"""The trial plan: stable folder names, Tune-safe names, and a param_space that Tune expands to exactly the plan."""

import pytest

from itsel_ray.runs.sweep_file import load_sweep
from itsel_ray.runs.plan import PlannedTrial, expand, param_space, plan_stage, trial_from_config


def test_keys_are_stable_folder_names():
    assert PlannedTrial("tune", "source", "mnli", 42).key == "tune/mnli/seed=42"
    assert PlannedTrial("tune", "target", "rte", 28).key == "tune/rte/seed=28"
    t = PlannedTrial("transfer", "transfer", "rte", 52, source="mnli")
    assert t.key == "transfer/mnli__rte/seed=52" and t.target == "rte"
    assert "/" not in t.name and "/" not in PlannedTrial("tune", "source", "mnli", 42).name


def test_unknown_stage_raises():
    with pytest.raises(ValueError, match="unknown stage"):
        plan_stage(load_sweep("smoke"), "analyze")


def test_source_and_target_seeds_stay_apart():
    sweep = load_sweep("paper")
    tune = plan_stage(sweep, "tune")
    assert {(t.role, t.seed) for t in tune} == {("source", 42), ("source", 150), ("source", 386),
                                                ("target", 28), ("target", 52), ("target", 112)}


@pytest.mark.parametrize("name", ["smoke", "demo", "paper"])
def test_tune_generates_exactly_the_plan(name):
    """Ray's own variant generator expands our param_space to the planned trials (no cluster needed)."""
    from ray.tune.search.variant_generator import generate_variants

    sweep = load_sweep(name)
    for stage in ("tune", "transfer"):
        trials = plan_stage(sweep, stage)
        configs = [cfg for _, cfg in generate_variants(param_space(trials))]
        keys = sorted(trial_from_config(sweep, stage, c).key for c in configs)
        assert keys == sorted(t.key for t in plan_stage(sweep, stage))
        assert len(configs) == len(expand(param_space(trials)))
