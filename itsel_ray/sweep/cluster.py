"""Connecting to Ray and sizing trials to what the cluster has.

No address: start a private local instance (`address="local"`, auth off, dashboard on 127.0.0.1 only, a small object
store). `auto` or host:port: join a running cluster with token auth (`ray up` / `ray job submit`). Trial resources
come from the cluster's own resources, and a request no node can ever hold fails at once, instead of leaving trials
PENDING forever (Ray does not error on an impossible request).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from itsel_ray.sweep.config import Resources

MiB = 1024**2


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


OBJECT_STORE_ENV = "ITSEL_RAY_OBJECT_STORE_MB"


def object_store_bytes() -> int:
    """What this machine can spare for the object store: prompts are tiny, so at most 512 MiB
    ($ITSEL_RAY_OBJECT_STORE_MB overrides, e.g. in tests)."""
    if os.environ.get(OBJECT_STORE_ENV):
        return int(float(os.environ[OBJECT_STORE_ENV]) * MiB)
    try:
        import psutil

        available = psutil.virtual_memory().available
    except Exception:
        available = 4096 * MiB
    return int(max(100 * MiB, min(512 * MiB, 0.1 * available)))


def connect(address: str | None, *, num_cpus: int | None = None, dashboard: bool = True,
            log_to_driver: bool = True) -> ClusterInfo:
    import ray

    if address is None:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # loopback-only private instance
        ctx = ray.init(address="local", num_cpus=num_cpus or os.cpu_count(), include_dashboard=dashboard,
                       dashboard_host="127.0.0.1", object_store_memory=object_store_bytes(),
                       log_to_driver=log_to_driver)
    else:
        os.environ.setdefault("RAY_AUTH_MODE", "token")  # a shared cluster: every client authenticates
        ctx = ray.init(address=address, log_to_driver=log_to_driver)
    url = getattr(ctx, "dashboard_url", None) or None
    if url and not url.startswith("http"):
        url = f"http://{url}"
    return cluster_info(address, dashboard_url=url)


def cluster_info(address: str | None = None, *, dashboard_url: str | None = None) -> ClusterInfo:
    import ray

    nodes = [dict(n.get("Resources", {})) for n in ray.nodes() if n.get("Alive")]
    return ClusterInfo(total=dict(ray.cluster_resources()), nodes=nodes, address=address,
                       dashboard_url=dashboard_url)


def shutdown() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()


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
