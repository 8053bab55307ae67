"""Sizing trials to what the cluster has: the per-trial request, how many fit, and impossible requests refused.

Trial resources come from the cluster's own resources (what Ray reports, or what a local instance would have), and
a request no node can ever hold fails at once, instead of leaving trials PENDING forever (Ray does not error on an
impossible request). Pure: the Ray adapter (itsel_ray/sweep/cluster.py) fills in ClusterInfo.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from itsel_ray.runs.sweep_spec import Resources


class ResourceError(RuntimeError):
    """The sweep asks for resources the cluster cannot provide."""


@dataclass(frozen=True)
class ClusterInfo:
    """Total resources and per-node resources ({"CPU": 2.0, "GPU": 1.0, ...})."""

    total: dict
    nodes: list = field(default_factory=list)
    address: str | None = None
    dashboard_url: str | None = None

    @property
    def gpus(self) -> float:
        return float(self.total.get("GPU", 0))

    @property
    def cpus(self) -> float:
        return float(self.total.get("CPU", 0))

    def describe(self) -> str:
        where = "local Ray instance" if self.address is None else f"Ray cluster at {self.address}"
        return f"{where}: {len(self.nodes)} node(s), {self.cpus:g} CPU, {self.gpus:g} GPU"


def local_resources(num_cpus: int | None = None) -> ClusterInfo:
    """What a local instance would get, detected without starting Ray (for --dry-run)."""
    cpus = float(num_cpus or os.cpu_count() or 1)
    gpus = 0.0
    try:
        import torch

        gpus = float(torch.cuda.device_count()) if torch.cuda.is_available() else 0.0
    except Exception:  # no torch or a broken driver: assume no GPU
        gpus = 0.0
    node = {"CPU": cpus, "GPU": gpus}
    return ClusterInfo(total=dict(node), nodes=[node])


def trial_resources(res: Resources, cluster: ClusterInfo, *, sweep_name: str = "") -> dict:
    """Ray resources per trial: a GPU share when GPUs are used, CPUs otherwise; impossible requests raise."""
    label = f"sweep {sweep_name!r}" if sweep_name else "the sweep"
    use_gpu = res.use_gpu == "always" or (res.use_gpu == "auto" and cluster.gpus > 0)
    if res.use_gpu == "always" and cluster.gpus == 0:
        raise ResourceError(
            f"{label} asks for GPUs (resources.use_gpu: always) but the {cluster.describe()}. Its trials would "
            "wait forever. Run it on a GPU cluster (docs/cluster.md), or pick a CPU sweep (--sweep demo)."
        )
    request = {"cpu": float(res.cpu_per_trial), "gpu": float(res.gpu_per_trial) if use_gpu else 0.0}
    nodes = cluster.nodes or [cluster.total]
    if not any(n.get("CPU", 0) >= request["cpu"] and n.get("GPU", 0) >= request["gpu"] for n in nodes):
        biggest = max(nodes, key=lambda n: (n.get("GPU", 0), n.get("CPU", 0)))
        raise ResourceError(
            f"{label}: a trial needs {request['cpu']:g} CPU and {request['gpu']:g} GPU, but no node of the "
            f"{cluster.describe()} has that much (largest node: {biggest.get('CPU', 0):g} CPU, "
            f"{biggest.get('GPU', 0):g} GPU). Lower resources.cpu_per_trial / gpu_per_trial or add bigger nodes."
        )
    return request


def concurrency(request: dict, cluster: ClusterInfo) -> int:
    """How many trials fit at once (for the dry-run summary)."""
    total = 0
    for n in cluster.nodes or [cluster.total]:
        fits = [n.get("CPU", 0) // request["cpu"]] if request["cpu"] else []
        if request["gpu"]:
            fits.append(n.get("GPU", 0) // request["gpu"])
        total += int(min(fits)) if fits else 0
    return total
