"""Connecting to Ray: a private local instance on loopback, or a running cluster with token auth, checked first.

No address: start a private instance (`address="local"`, auth off) whose every service (GCS, raylet, workers,
dashboard and its agents) listens on 127.0.0.1 only, so no other machine can reach it: Ray binds its servers to the
node's IP, and RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 makes that IP the loopback address (Ray's single-machine mode).
It is checked after start, and a start that is not on loopback stops with an error.

`auto` or HOST:PORT: join a running cluster (`ray up`, `ray job submit`) with token auth. Before Ray is touched, a
missing token, an unreachable address or an `auto` with no cluster on this node is a one-line error, instead of
Ray's C++ abort or a minute of retries.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import sys
from pathlib import Path

from itsel_ray.plugin_env import runtime_env
from itsel_ray.plugins import PluginSet
from itsel_ray.runs.resources import ClusterInfo

MiB = 1024**2
OBJECT_STORE_ENV = "ITSEL_RAY_OBJECT_STORE_MB"
LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}  # read by Ray at import: node IP = loopback


class ClusterError(RuntimeError):
    """The cluster cannot be joined (no token, unreachable, none running) or a local start is not private."""


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


# ------------------------------------------------------------------------------------------------ checks first


def token_available(env: dict | None = None) -> bool:
    """Ray's token sources: $RAY_AUTH_TOKEN, the file $RAY_AUTH_TOKEN_PATH, or ~/.ray/auth_token."""
    env = os.environ if env is None else env
    if env.get("RAY_AUTH_TOKEN", "").strip():
        return True
    path = Path(env.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token").expanduser()
    try:
        return bool(path.read_text().strip())
    except OSError:
        return False


def bootstrap_address(address: str, env: dict | None = None) -> str | None:
    """HOST:PORT of the GCS behind `address` ("auto": $RAY_ADDRESS or the cluster started on this node)."""
    env = os.environ if env is None else env
    if address != "auto":
        return address.split("://", 1)[-1]
    if env.get("RAY_ADDRESS") and env["RAY_ADDRESS"] != "auto":
        return env["RAY_ADDRESS"].split("://", 1)[-1]
    tmp = Path(env.get("RAY_TMPDIR") or "/tmp") / "ray" / "ray_current_cluster"
    try:
        return tmp.read_text().strip() or None
    except OSError:
        return None


def check_cluster(address: str, *, timeout_s: float = 5.0) -> None:
    """One-line errors for the mistakes that otherwise end in a C++ abort or a long hang."""
    mode = os.environ.get("RAY_AUTH_MODE", "token")
    if mode == "token" and not token_available():
        raise ClusterError("token auth is on (RAY_AUTH_MODE=token) but no token was found: set RAY_AUTH_TOKEN, "
                           "or put the cluster's token in ~/.ray/auth_token (`ray get-auth-token` on the head), "
                           "or RAY_AUTH_TOKEN_PATH; see docs/cluster.md")
    target = bootstrap_address(address)
    if target is None:
        raise ClusterError("--address auto: no Ray cluster is running on this node (no $RAY_ADDRESS, no "
                           "/tmp/ray/ray_current_cluster); start one (`ray up cluster.yaml`) or pass HOST:PORT")
    if target.startswith("http"):
        return  # a Ray Client / dashboard URL: ray.init reports its own errors
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise ClusterError(f"--address {address!r}: expected 'auto' or HOST:PORT, got {target!r}")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            pass
    except OSError as err:
        raise ClusterError(f"--address {address}: cannot reach the Ray cluster at {target} "
                           f"({err.strerror or err}); is the head running and the port open?") from None


# ------------------------------------------------------------------------------------------------ starting


JOB_CONFIG_ENV = "RAY_JOB_CONFIG_JSON_ENV_VAR"  # set by `ray job submit` for its driver: the job's runtime_env
OVERRIDE_JOB_ENV = "RAY_OVERRIDE_JOB_RUNTIME_ENV"


def job_runtime_env() -> dict:
    """The runtime_env `ray job submit` gave this driver's job (--working-dir, --runtime-env-json), else {}."""
    try:
        return dict(json.loads(os.environ.get(JOB_CONFIG_ENV, "{}")).get("runtime_env") or {})
    except (TypeError, ValueError, AttributeError):
        return {}


def plugin_runtime_env(plugins: PluginSet | None) -> dict:
    """The runtime_env that ships `plugins` to every worker, extending a submitted job's own ({} without plugins)."""
    return runtime_env(plugins, job_runtime_env()) if plugins else {}


def _init(runtime_env: dict | None, **kwargs):
    """ray.init with `runtime_env`. Ray refuses a key that both the job and ray.init set (per key, env vars per
    variable) unless told to let the driver's win; ours already holds the job's py_modules and env vars, so letting
    it win loses nothing of the job's (its working_dir, for one, is kept)."""
    import ray

    if not runtime_env:
        return ray.init(**kwargs)
    override = JOB_CONFIG_ENV in os.environ and os.environ.get(OVERRIDE_JOB_ENV) is None
    if override:
        os.environ[OVERRIDE_JOB_ENV] = "1"
    try:
        return ray.init(runtime_env=runtime_env, **kwargs)
    finally:
        if override:
            os.environ.pop(OVERRIDE_JOB_ENV, None)


def loopback_first() -> None:
    """Set the private instance's settings before anything can import Ray (a user's plugin may): Ray reads them at
    import, so setting them later, in `start_local`, would come too late."""
    for key, value in LOOPBACK_ENV.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # nothing but this machine's own processes can reach it


def job_config(metadata: dict | None):
    """The driver's job: its metadata (strings) is what the dashboard's Jobs page shows, `job_name` as the Name.
    Under `ray job submit` the submission's own metadata wins key by key (Ray merges it in)."""
    import ray

    return ray.job_config.JobConfig(metadata={k: str(v) for k, v in (metadata or {}).items()})


def start_local(num_cpus: int | None = None, *, dashboard: bool = False, log_to_driver: bool = False,
                object_store_memory: int | None = None, num_gpus: float | None = None,
                runtime_env: dict | None = None, metadata: dict | None = None) -> str | None:
    """Start the private loopback-only instance; returns the dashboard URL (None without a dashboard)."""
    loopback_first()
    import ray

    kwargs = {} if num_gpus is None else {"num_gpus": num_gpus}
    try:
        ctx = _init(runtime_env, address="local", num_cpus=num_cpus or os.cpu_count(), include_dashboard=dashboard,
                    dashboard_host="127.0.0.1", object_store_memory=object_store_memory or object_store_bytes(),
                    log_to_driver=log_to_driver, job_config=job_config(metadata), **kwargs)
    except Exception as err:  # Ray raises bare Exception, TimeoutError or RuntimeError when its processes are slow
        raise ClusterError(start_failure(err)) from None
    node_ip = ray.util.get_node_ip_address()
    if not ipaddress.ip_address(node_ip).is_loopback:
        ray.shutdown()
        raise ClusterError(f"the local Ray instance would listen on {node_ip}, not on loopback only (Ray was imported "
                           f"before {', '.join(LOOPBACK_ENV)} could be set); run the command in a fresh process")
    url = getattr(ctx, "dashboard_url", None) or None
    return f"http://{url}" if url and not url.startswith("http") else url


def start_failure(err: BaseException) -> str:
    """One line for a private instance that did not start (its processes too slow on a loaded machine, or dead)."""
    import ray

    try:
        ray.shutdown()  # whatever part of it started
    except Exception:
        pass
    first = str(err).splitlines()[0][:300] if str(err) else type(err).__name__
    try:
        load = f" (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)"
    except OSError:
        load = ""
    return (f"the private Ray instance did not start: {first}{load}. The machine may be too busy: retry when it is "
            "quieter, or start fewer processes (--num-cpus N, --no-dashboard)")


def connect(address: str | None, *, num_cpus: int | None = None, dashboard: bool = True,
            log_to_driver: bool = False, plugins: PluginSet | None = None,
            metadata: dict | None = None) -> ClusterInfo:
    """Start or join Ray; the job's runtime_env ships `plugins` to every worker of every node; `metadata`: the
    job's, shown on the dashboard's Jobs page (job_name, sweep, command, storage)."""
    runtime_env = plugin_runtime_env(plugins)
    if address is None:
        return cluster_info(None, dashboard_url=start_local(num_cpus, dashboard=dashboard,
                                                            log_to_driver=log_to_driver, runtime_env=runtime_env,
                                                            metadata=metadata))
    os.environ.setdefault("RAY_AUTH_MODE", "token")  # a shared cluster: every client authenticates
    check_cluster(address)

    try:
        ctx = _init(runtime_env, address=address, log_to_driver=log_to_driver, job_config=job_config(metadata))
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise ClusterError(f"--address {address}: {str(err).splitlines()[0] if str(err) else type(err).__name__}") \
            from None
    url = getattr(ctx, "dashboard_url", None) or None
    return cluster_info(address, dashboard_url=f"http://{url}" if url and not url.startswith("http") else url)


def metrics_url() -> str | None:
    """This node's Prometheus endpoint, where Ray's metrics and the sweep's (itsel_ray/sweep/sweep_metrics.py) are
    exported; None when the node exports none."""
    import ray

    node = ray._private.worker.global_worker.node
    port = getattr(node, "metrics_export_port", None)
    return f"http://{node.node_ip_address}:{port}/metrics" if port and port > 0 else None


AGENT_PORT = 52365  # the dashboard agent's fixed port (Ray's default; a private instance cannot change it)


def dashboard_problems(dashboard_url: str | None) -> list[str]:
    """What of the private instance's dashboard does not work, in words (empty: all of it works).

    The dashboard picks a free port, but its agent on each node listens on a fixed one: with another Ray instance
    on the machine, the agent of the second cannot bind it, stays up without its HTTP service (the port it records
    is -1), and every log view of that dashboard fails without a word on the console."""
    import ray

    if dashboard_url is None:
        return ["the Ray dashboard did not start (see the full log)"]
    problems = []
    port = getattr(ray._private.worker.global_worker.node, "dashboard_agent_listen_port", None)
    if port is not None and port < 0:
        holder = _listener(AGENT_PORT)
        problems.append(f"the Ray dashboard's agent could not listen on port {AGENT_PORT} (held by "
                        f"{holder or 'another process'}: another Ray instance on this machine?), so the "
                        "dashboard's log views and this node's metrics will not load")
    try:
        import urllib.request

        with urllib.request.urlopen(f"{dashboard_url}/api/version", timeout=5):
            pass
    except OSError as err:
        problems.append(f"the Ray dashboard at {dashboard_url} does not answer ({err})")
    return problems


def _listener(port: int) -> str | None:
    """Who listens on `port`: "ours" for a descendant of this process, else "process PID (NAME)" (None: nobody
    this user may see)."""
    import psutil

    ours = {p.pid for p in psutil.Process().children(recursive=True)}
    try:
        connections = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, OSError):  # not allowed to see every process: look at ours only
        connections = []
        for pid in ours:
            try:
                connections += [c._replace(pid=pid) for c in psutil.Process(pid).net_connections(kind="tcp")]
            except psutil.Error:
                continue
    for c in connections:
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port:
            if c.pid in ours:
                return "ours"
            try:
                return f"process {c.pid} ({psutil.Process(c.pid).name()})" if c.pid else "another process"
            except psutil.Error:
                return f"process {c.pid}"
    return None


def cluster_info(address: str | None = None, *, dashboard_url: str | None = None) -> ClusterInfo:
    import ray

    nodes = [dict(n.get("Resources", {})) for n in ray.nodes() if n.get("Alive")]
    total = dict(ray.cluster_resources())
    return ClusterInfo(total=total, nodes=nodes, address=address, dashboard_url=dashboard_url,
                       gpu_memory=gpu_memory() if total.get("GPU", 0) > 0 else None)


def gpu_memory(timeout_s: float = 120.0) -> int | None:
    """Bytes of one GPU, read by a tiny task on a GPU node (None when there is no real GPU behind Ray's count)."""
    import ray

    @ray.remote(num_gpus=0.0001, num_cpus=0)
    def read() -> int | None:
        import torch

        return torch.cuda.get_device_properties(0).total_memory if torch.cuda.is_available() else None

    try:
        return ray.get(read.remote(), timeout=timeout_s)
    except Exception:  # no GPU node can take the task in time: unknown, and the plan says so
        return None


def check_job_ships(plugins: PluginSet | None) -> None:
    """In a process that joined Ray before the sweep started (a notebook, a test), the job's runtime_env is fixed:
    refuse plugins it does not ship, rather than fail in the workers with an unknown task or selector."""
    if not plugins:
        return
    import ray

    from itsel_ray.plugin_env import current_job_has

    if not current_job_has(plugins, ray.get_runtime_context().runtime_env):
        raise ClusterError("this process joined Ray before the sweep could ship its plugins and task files to the "
                           "workers: run the command in a fresh process, or start Ray with "
                           "ray.init(runtime_env=itsel_ray.sweep.cluster.plugin_runtime_env(plugins))")


def is_initialized() -> bool:
    return "ray" in sys.modules and sys.modules["ray"].is_initialized()


def shutdown() -> None:
    if is_initialized():
        import ray

        ray.shutdown()
