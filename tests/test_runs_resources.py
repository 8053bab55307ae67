"""Trial resources come from the cluster's resources; a request that can never fit fails at once."""

import pytest

from itsel_ray.runs.resources import ClusterInfo, ResourceError, concurrency, trial_resources
from itsel_ray.runs.sweep_file import default_sweep
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


def test_default_sweep_follows_the_gpus():
    assert default_sweep(0)[0] == "demo" and default_sweep(4)[0] == "paper"
    assert "no GPU" in default_sweep(0)[1]
