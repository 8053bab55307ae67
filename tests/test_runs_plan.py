"""The trial plan: stable folder names, Tune-safe names, and a queue that hands Tune exactly the plan, one trial at a
time."""

import pytest

from itsel_ray.runs.sweep_file import load_sweep
from itsel_ray.runs.plan import PlannedTrial, plan_stage, trial_from_config, trial_point


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
def test_tune_creates_exactly_the_plan_in_order(name, tmp_path):
    """Tune's own trial creation from our queue gives the planned trials, in plan order, then stops (no cluster
    needed)."""
    from ray.tune.experiment import Experiment
    from ray.tune.search.search_generator import SearchGenerator

    from itsel_ray.sweep.scheduling import PlanQueue

    sweep = load_sweep(name)
    for stage in ("tune", "transfer"):
        trials = plan_stage(sweep, stage)
        search = SearchGenerator(PlanQueue(trials))
        search.add_configurations([Experiment(stage, lambda config: None, num_samples=len(trials),
                                              storage_path=str(tmp_path))])
        created = []
        while (trial := search.next_trial()) is not None:
            created.append(trial_from_config(sweep, stage, trial.config))
        assert created == trials and search.is_finished()


def test_a_trial_point_maps_back_to_its_trial():
    sweep = load_sweep("demo")
    for stage in ("tune", "transfer"):
        for t in plan_stage(sweep, stage):
            assert trial_from_config(sweep, stage, trial_point(t)) == t
