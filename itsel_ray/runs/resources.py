"""Sizing trials to what the cluster has: the per-trial request, how many fit, and impossible requests refused.

Trial resources come from the cluster's own resources (what Ray reports, or what a local instance would have), and
a request no node can ever hold fails at once, instead of leaving trials PENDING forever (Ray does not error on an
impossible request). On GPUs each trial's memory is predicted by the sweep's engine (`Engine.predict_memory`; the T5
engine's model is calibrated on measured saved activations) for every (role, task), from the model's own config:
`gpu_per_trial: auto` asks each task for the share of a GPU it needs;
a fixed share that a task cannot fit in is refused before anything starts, naming the task, what it needs and what
the share holds. Pure: the Ray adapter (itsel_ray/sweep/cluster.py) fills in ClusterInfo.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from itsel_ray.engine import get_engine
from itsel_ray.runs.sweep_spec import Resources

GIB = 2**30


class ResourceError(RuntimeError):
    """The sweep asks for resources the cluster cannot provide."""


@dataclass(frozen=True)
class ClusterInfo:
    """Total resources and per-node resources ({"CPU": 2.0, "GPU": 1.0, ...})."""

    total: dict
    nodes: list = field(default_factory=list)
    address: str | None = None
    dashboard_url: str | None = None
    gpu_memory: int | None = None  # bytes of one GPU (the smallest), when known

    @property
    def gpus(self) -> float:
        return float(self.total.get("GPU", 0))

    @property
    def cpus(self) -> float:
        return float(self.total.get("CPU", 0))

    def describe(self) -> str:
        where = "local Ray instance" if self.address is None else f"Ray cluster at {self.address}"
        memory = f" ({self.gpu_memory / GIB:.0f} GiB each)" if self.gpu_memory and self.gpus else ""
        return f"{where}: {len(self.nodes)} node(s), {self.cpus:g} CPU, {self.gpus:g} GPU{memory}"


def local_resources(num_cpus: int | None = None) -> ClusterInfo:
    """What a local instance would get, detected without starting Ray (for --dry-run)."""
    cpus = float(num_cpus or os.cpu_count() or 1)
    gpus, memory = 0.0, None
    try:
        import torch

        if torch.cuda.is_available():
            gpus = float(torch.cuda.device_count())
            memory = min(torch.cuda.get_device_properties(i).total_memory for i in range(int(gpus)))
    except Exception:  # no torch or a broken driver: assume no GPU
        gpus = 0.0
    node = {"CPU": cpus, "GPU": gpus}
    return ClusterInfo(total=dict(node), nodes=[node], gpu_memory=memory)


def trial_resources(res: Resources, cluster: ClusterInfo, *, sweep_name: str = "") -> dict:
    """Ray resources per trial: a GPU share when GPUs are used, CPUs otherwise; impossible requests raise."""
    label = f"sweep {sweep_name!r}" if sweep_name else "the sweep"
    use_gpu = res.use_gpu == "always" or (res.use_gpu == "auto" and cluster.gpus > 0)
    if res.use_gpu == "always" and cluster.gpus == 0:
        raise ResourceError(
            f"{label} asks for GPUs (resources.use_gpu: always) but the {cluster.describe()}. Its trials would "
            "wait forever. Run it on a GPU cluster (docs/cluster.md), or pick a CPU sweep (--sweep demo)."
        )
    share = 0.25 if res.gpu_per_trial == "auto" else float(res.gpu_per_trial)  # "auto": checked per task below
    request = {"cpu": float(res.cpu_per_trial), "gpu": share if use_gpu else 0.0}
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


def slots(plan: "ResourcePlan", cluster: ClusterInfo, cap: int | None = None) -> int:
    """The most trials of the plan that run at once on `cluster` (its smallest request), at most `cap`."""
    shares = [m.share or 0.0 for m in plan.tasks.values()] or [0.0]
    fit = concurrency({"cpu": plan.cpu, "gpu": min(shares)}, cluster)
    return max(1, min(fit, cap) if cap else fit)


# ------------------------------------------------------------------------------------------------ GPU memory


@dataclass(frozen=True)
class TaskMemory:
    """One (role, task)'s predicted memory per trial and the GPU share it gets (None: not on GPUs)."""

    role: str
    task: str
    predicted: int | None  # bytes; None when the engine has no memory model (the stand-in engine)
    share: float | None


@dataclass(frozen=True)
class ResourcePlan:
    """The request of every trial: CPUs, and a GPU share per (role, task)."""

    cpu: float
    tasks: dict  # (role, task) -> TaskMemory

    def request(self, role: str, task: str) -> dict:
        share = self.tasks[(role, task)].share
        return {"cpu": self.cpu, "gpu": share or 0.0}



def role_tasks(sweep) -> list[tuple[str, str]]:
    g = sweep.grid
    return [("source", t) for t in g.sources] + [(r, t) for r in ("target", "transfer") for t in g.targets]


def gpu_fraction(predicted: int, gpu_bytes: int, *, margin: float = 0.15, context_bytes: int = 600 * 2**20,
                 max_per_gpu: int = 8) -> float:
    """The share of one GPU to request for a trial predicted to need `predicted` bytes: 1/k for the largest
    k <= max_per_gpu whose trials fit.

    Each trial needs its predicted total plus `margin` (the caching allocator's rounding and fragmentation) plus
    `context_bytes` (its CUDA context and libraries, outside torch's allocator). Raises when even one trial does
    not fit, naming what it needs (lower the micro-batch, turn on activation checkpointing, or use bigger GPUs).
    """
    need = int(predicted) * (1 + margin) + context_bytes
    k = min(max_per_gpu, int(gpu_bytes // need))
    if k < 1:
        raise ValueError(f"a trial needs about {need / GIB:.1f} GiB ({int(predicted) / GIB:.1f} GiB predicted + "
                         f"{margin:.0%} margin + {context_bytes / GIB:.1f} GiB CUDA context) but a GPU has "
                         f"{gpu_bytes / GIB:.1f} GiB: lower train.micro_batch_size or set "
                         "train.activation_checkpointing")
    return 1.0 / k


def resource_plan(sweep, cluster: ClusterInfo) -> ResourcePlan:
    """Every trial's request; raises ResourceError when a trial can never fit (CPUs, GPUs or GPU memory)."""
    res = sweep.spec.resources
    base = trial_resources(res, cluster, sweep_name=sweep.name)
    if res.gpu_memory_gb:
        cluster = ClusterInfo(cluster.total, cluster.nodes, cluster.address, cluster.dashboard_url,
                              gpu_memory=int(res.gpu_memory_gb * GIB))
    tasks = {}
    for role, task in role_tasks(sweep):
        predicted = _predict(sweep, role, task) if base["gpu"] else None
        share = base["gpu"] or None
        if share and predicted is not None and cluster.gpu_memory:
            try:
                fits = gpu_fraction(predicted, cluster.gpu_memory)
            except ValueError as err:
                raise ResourceError(f"sweep {sweep.name!r}, {role} task {task!r}: {err}") from None
            if res.gpu_per_trial == "auto":
                share = fits
            elif share < fits:
                raise ResourceError(
                    f"sweep {sweep.name!r}, {role} task {task!r}: a trial needs about {predicted / GIB:.1f} GiB "
                    f"(predicted), but a {share:g} share of a {cluster.gpu_memory / GIB:.0f} GiB GPU holds "
                    f"{share * cluster.gpu_memory / GIB:.1f} GiB; the largest share it fits is {fits:g}. Set "
                    "resources.gpu_per_trial: auto (or a share of at least that), or lower "
                    "train.micro_batch_size / set train.activation_checkpointing")
        elif share and res.gpu_per_trial == "auto" and not cluster.gpu_memory:
            raise ResourceError(f"sweep {sweep.name!r}: gpu_per_trial auto needs the GPUs' memory, which the "
                                f"{cluster.describe()} does not report; set resources.gpu_memory_gb")
        tasks[(role, task)] = TaskMemory(role, task, predicted, share)
    return ResourcePlan(cpu=base["cpu"], tasks=tasks)


def _predict(sweep, role: str, task: str) -> int | None:
    """Predicted bytes of one trial of (role, task) on a CUDA GPU; None for an engine without a model."""
    source = sweep.grid.sources[0] if role == "transfer" else None
    estimate = get_engine(sweep.spec.engine).predict_memory(
        sweep.trial_config(role, task=task, seed=0, source=source), device="cuda")
    return None if estimate is None else estimate.total


def model_lines(sweep) -> list[str]:
    """--dry-run's description of each stage's backbone, from the model's own config (where it was read)."""
    engine = get_engine(sweep.spec.engine)
    if not engine.has_model:
        return [f"model: none (engine {sweep.spec.engine!r} trains no model)"]
    roles: dict[str, list[str]] = {}
    for role, settings in sweep.settings.items():
        roles.setdefault(engine.describe_model(settings.model).line(), []).append(role)
    if len(roles) == 1:
        return [f"model: {next(iter(roles))}"]
    return [f"model ({', '.join(r)}): {line}" for line, r in roles.items()]


def memory_lines(sweep, gpu_memory: int | None) -> list[str]:
    """--dry-run's model and memory lines: the backbone (`model_lines`), then each (role, task)'s predicted memory
    per trial and the largest GPU share it fits in (on GPUs of `gpu_memory` bytes, when known)."""
    head = model_lines(sweep)
    res = sweep.spec.resources
    gpu_memory = int(res.gpu_memory_gb * GIB) if res.gpu_memory_gb else gpu_memory
    where = f"a {gpu_memory / GIB:.0f} GiB GPU" if gpu_memory else "GPUs of unknown memory (set resources.gpu_memory_gb)"
    precision = sweep.settings["source"].train.precision
    out = [*head, f"predicted memory per trial (CUDA, {precision} precision) and the largest share of {where} it "
                  "fits in:"]
    for role, task in role_tasks(sweep):
        predicted = _predict(sweep, role, task)
        if predicted is None:
            return head
        try:
            share = f"1/{round(1 / gpu_fraction(predicted, gpu_memory))} GPU" if gpu_memory else "?"
        except ValueError:
            share = "does not fit"
        out.append(f"    {role:<8} {task:<12} {predicted / GIB:6.1f} GiB -> {share}")
    return out
