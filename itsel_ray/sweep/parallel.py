"""The analysis' Ray adapter: a drop-in for the builtin `map` that fans a function out as Ray tasks.

The function (with everything it closes over, e.g. the analysis context and its prompt arrays) goes to the object
store once with `ray.put`; each task receives the reference, so nothing large is shipped per task. Items are
grouped into chunks so that many tiny cells do not each pay Ray's per-task overhead.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, Callable, Iterable, Iterator, Sequence

import ray

from itsel_ray.sweep.cluster import check_job_ships, plugin_runtime_env, start_local


@ray.remote
def _apply_chunk(fn: Callable, chunk: Sequence) -> list:
    # `fn` arrives already resolved: Ray dereferences ObjectRef arguments before the call.
    return [fn(item) for item in chunk]


def chunked(items: Sequence, chunksize: int) -> list[Sequence]:
    return [items[i:i + chunksize] for i in range(0, len(items), chunksize)]


def ray_map(fn: Callable, items: Iterable, *, chunksize: int | None = None, num_cpus: float = 1,
            num_gpus: float = 0) -> list:
    """`list(map(fn, items))`, computed by Ray tasks; results keep the order of `items`.

    Args:
        fn: a picklable callable (e.g. `CellRunner`); put in the object store once.
        chunksize: items per task (default: about 4 tasks per CPU of the cluster).
        num_cpus: CPUs reserved per task.
        num_gpus: GPU share reserved per task (model work such as zero-shot probes on a GPU cluster).
    Needs a running Ray instance (see `local_ray`).
    """
    if not ray.is_initialized():
        raise RuntimeError("ray_map needs a running Ray instance: call ray.init(...) or use local_ray()")
    items = list(items)
    if not items:
        return []
    if chunksize is None:
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        chunksize = max(1, math.ceil(len(items) / (4 * cpus)))
    fn_ref = ray.put(fn)
    task = _apply_chunk.options(num_cpus=num_cpus, num_gpus=num_gpus)
    futures = [task.remote(fn_ref, chunk) for chunk in chunked(items, chunksize)]
    try:
        return [result for chunk in ray.get(futures) for result in chunk]
    except Exception:
        _settle(futures)
        raise


def _settle(futures: list, timeout_s: float = 60.0) -> None:
    """After the first failure: collect the other tasks' outcomes (cancelling those still running after
    `timeout_s`), so that Ray does not print each further failure later as an "unhandled error" traceback."""
    done, pending = ray.wait(futures, num_returns=len(futures), timeout=timeout_s)
    for ref in pending:
        ray.cancel(ref, force=True)
    for ref in [*done, *pending]:
        try:
            ray.get(ref, timeout=5)
        except Exception:
            pass


def make_ray_map(**options: Any) -> Callable[[Callable, Iterable], list]:
    """A two-argument map function with `ray_map` options bound (for `run_analysis(map_fn=...)`)."""
    return lambda fn, items: ray_map(fn, items, **options)


@contextlib.contextmanager
def local_ray(num_cpus: int | None = None, *, object_store_memory: int = 256 * 1024**2,
              plugins=None) -> Iterator[None]:
    """Start the private local Ray instance (loopback only, no dashboard) and always shut it down; its workers
    load `plugins` (an `itsel_ray.plugins.PluginSet`).

    Reuses an instance that is already initialised in this process and leaves it running.
    """
    if ray.is_initialized():
        check_job_ships(plugins)
        yield
        return
    start_local(num_cpus, object_store_memory=object_store_memory, runtime_env=plugin_runtime_env(plugins))
    try:
        yield
    finally:
        ray.shutdown()
