"""Trial resources come from the cluster's resources; a request that can never fit fails at once."""

import pytest

from itsel_ray.runs.resources import ClusterInfo, ResourceError, concurrency, trial_resources
from itsel_ray.runs.sweep_file import pick_sweep
from itsel_ray.runs.sweep_spec import Resources

CPU_BOX = ClusterInfo(total={"CPU": 2.0}, nodes=[{"CPU": 2.0}])
GPU_NODE = {"CPU": 8.0, "GPU": 1.0}
GPU_CLUSTER = ClusterInfo(total={"CPU": 16.0, "GPU": 2.0}, nodes=[{"CPU": 0.0}, GPU_NODE, GPU_NODE], address="auto")


def test_cpu_only_machine_gets_one_cpu_per_trial():
    req = trial_resources(Resources(), CPU_BOX)
    assert req == {"cpu": 1.0, "gpu": 0.0}
    assert concurrency(req, CPU_BOX) == 2


def test_gpus_are_shared_when_present():
    req = trial_resources(Resources(), GPU_CLUSTER)
    assert req == {"cpu": 1.0, "gpu": 0.25}
    assert concurrency(req, GPU_CLUSTER) == 8  # 4 per GPU node, none on the CPU-less head


def test_never_ignores_gpus():
    assert trial_resources(Resources(use_gpu="never"), GPU_CLUSTER)["gpu"] == 0.0


def test_gpu_sweep_on_a_cpu_box_fails_with_a_message():
    with pytest.raises(ResourceError, match="asks for GPUs.*wait forever"):
        trial_resources(Resources(use_gpu="always"), CPU_BOX, sweep_name="paper")


def test_a_trial_bigger_than_any_node_fails():
    with pytest.raises(ResourceError, match="no node"):
        trial_resources(Resources(cpu_per_trial=4), CPU_BOX)
    with pytest.raises(ResourceError, match="no node"):
        trial_resources(Resources(gpu_per_trial=2), GPU_CLUSTER)


def test_the_default_sweep_is_the_offline_demo_on_any_machine():
    sweep, why = pick_sweep(None)  # no GPU count is even asked for: the paper's sweep is always named
    assert sweep.name == "demo" and "--sweep paper" in why
    assert pick_sweep("paper")[0].name == "paper" and pick_sweep("paper")[1] == ""


# ------------------------------------------------------------------------------------------------ GPU memory

GIB = 2**30


def _paper(**resources):
    from itsel_ray.runs.sweep_file import load_sweep

    return load_sweep("paper", overrides=[f"resources.{k}={v}" for k, v in resources.items()])


def _gpus(memory_gib: float) -> ClusterInfo:
    node = {"CPU": 8.0, "GPU": 1.0}
    return ClusterInfo(total={"CPU": 16.0, "GPU": 2.0}, nodes=[node, node], address="auto",
                       gpu_memory=int(memory_gib * GIB))


def test_auto_shares_follow_each_tasks_predicted_memory():
    from itsel_ray.engine.t5.memory import trial_memory
    from itsel_ray.runs.resources import gpu_fraction, resource_plan

    sweep = _paper()
    plan = resource_plan(sweep, _gpus(80))
    long_task = plan.request("source", "squad")["gpu"]  # 512 input tokens
    short_task = plan.request("source", "mnli")["gpu"]  # 128
    assert long_task > short_task
    cfg = sweep.trial_config("source", task="squad", seed=0)
    assert long_task == gpu_fraction(trial_memory(cfg, device="cuda").total, 80 * GIB)


def test_a_fixed_share_a_task_cannot_fit_in_is_refused_naming_the_task():
    from itsel_ray.runs.resources import resource_plan

    with pytest.raises(ResourceError, match=r"source task 'record'.*needs about .* GiB.*0.125 share of a 80 GiB GPU"):
        resource_plan(_paper(gpu_per_trial=0.125), _gpus(80))
    resource_plan(_paper(gpu_per_trial=0.25), _gpus(80))  # fits
    with pytest.raises(ResourceError, match="does not report; set resources.gpu_memory_gb"):
        resource_plan(_paper(), ClusterInfo(total={"CPU": 8.0, "GPU": 1.0}, nodes=[{"CPU": 8.0, "GPU": 1.0}]))
    with pytest.raises(ResourceError, match="lower train.micro_batch_size"):  # not even a whole small GPU
        resource_plan(_paper(), _gpus(4))
    assert resource_plan(_paper(gpu_memory_gb=40), _gpus(4)).request("source", "mnli")["gpu"] > 0


def test_the_stand_in_engine_has_no_memory_to_predict():
    from itsel_ray.runs.resources import resource_plan
    from itsel_ray.runs.sweep_file import load_sweep

    sweep = load_sweep("smoke", overrides=["engine=fake", "resources.use_gpu=always"])
    plan = resource_plan(sweep, _gpus(80))
    assert all(m.predicted is None and m.share == 0.25 for m in plan.tasks.values())


def test_slots_count_the_smallest_request_and_the_cap():
    from itsel_ray.runs.resources import ResourcePlan, TaskMemory, slots

    plan = ResourcePlan(cpu=1.0, tasks={("source", "a"): TaskMemory("source", "a", None, 0.25),
                                        ("target", "b"): TaskMemory("target", "b", None, 0.5)})
    assert slots(plan, GPU_CLUSTER) == 8  # 4 trials of the 0.25 task per GPU node
    assert slots(plan, GPU_CLUSTER, cap=3) == 3
    cpu = ResourcePlan(cpu=1.0, tasks={("source", "a"): TaskMemory("source", "a", None, None)})
    assert slots(cpu, CPU_BOX) == 2 and slots(cpu, CPU_BOX, cap=8) == 2
