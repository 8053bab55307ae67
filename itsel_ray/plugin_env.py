"""Shipping a user's plugins and task files to every Ray worker, on every node, with the job's runtime environment.

- each plugin file or folder is a `py_modules` entry: Ray uploads it and puts its copy on the workers' path under the
  same module name, so objects pickled in the driver unpickle there;
- the task files and the local rows they read relative to themselves travel as one more `py_modules` folder (a
  package named for its content);
- $ITSEL_RAY_PLUGINS lists what to load, and a `worker_process_setup_hook` loads it when a worker process starts,
  before it runs anything. An installed dotted module (site-packages) is not shipped: it must be installed on every
  node, as the package is.

Ray merges a job-level runtime_env given to `ray.init` with the one `ray job submit --working-dir/--runtime-env-json`
set, per top-level key, and refuses a key (or an environment variable) set by both (Ray 2.60, `_merge_runtime_env`);
`runtime_env` below extends the job's own `py_modules` and `env_vars` instead of clashing with them. No Ray here: the
sweep's Ray adapter (`sweep/cluster.py`) passes the dict to `ray.init`.
"""

from __future__ import annotations

import atexit
import hashlib
import importlib
import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Mapping

from itsel_ray.plugins import PluginError, PluginSet, TaskFile

PLUGINS_ENV = "ITSEL_RAY_PLUGINS"
SETUP_HOOK = "itsel_ray.plugin_env.setup_worker"
BUNDLE_PREFIX = "itsel_ray_tasks_"
SHIP_LIMIT = 200 * 1024**2  # well under what Ray uploads in one package; data that large belongs on shared storage
_STAGING: dict[str, str] = {}  # bundle name -> its folder, made once per process


def runtime_env(plugins: PluginSet, job_env: Mapping | None = None) -> dict:
    """The `runtime_env` for `ray.init`, extending `job_env` (what `ray job submit` set, if anything): its
    py_modules are kept ahead of ours, its env vars beside ours. Empty when there is nothing to ship."""
    if not plugins:
        return {}
    job_env = dict(job_env or {})
    hook = job_env.get("worker_process_setup_hook")
    if hook and hook != SETUP_HOOK:
        raise PluginError(f"the job already sets worker_process_setup_hook {hook!r}; plugins need "
                          f"{SETUP_HOOK!r} (drop the job's hook, or import your code as a plugin)")
    modules = [m.ship for m in plugins.modules if m.ship]
    bundle = make_bundle(plugins)
    if bundle:
        modules.append(bundle)
    env_vars = {**(job_env.get("env_vars") or {}), PLUGINS_ENV: json.dumps(worker_spec(plugins), sort_keys=True)}
    out = {"env_vars": env_vars, "worker_process_setup_hook": SETUP_HOOK}
    if modules:
        out["py_modules"] = [*(job_env.get("py_modules") or []), *modules]
    return out


def worker_spec(plugins: PluginSet) -> dict:
    """What a worker loads: module names in order, then each task file from the shipped bundle, with the training
    sizes the driver counted (so no worker reads the rows again to count them)."""
    return {
        "fingerprint": fingerprint(plugins),
        "modules": [m.name for m in plugins.modules],
        "task_files": [{"bundle": bundle_name(plugins), "file": _bundle_path(i, f.path), "origin": f.path,
                        "sizes": f.tasks} for i, f in enumerate(plugins.task_files)],
    }


def fingerprint(plugins: PluginSet) -> str:
    """A digest of everything shipped: module names and sources, the bundle's content."""
    h = hashlib.sha256()
    for m in plugins.modules:
        h.update(f"{m.name}\0{m.ship}\0".encode())
        for path in _files_of(m.ship):
            h.update(path.read_bytes())
    h.update(bundle_name(plugins).encode())
    return h.hexdigest()[:16]


def bundle_name(plugins: PluginSet) -> str:
    if not plugins.task_files:
        return ""
    h = hashlib.sha256()
    for i, f in enumerate(plugins.task_files):
        for src, rel in _bundle_files(i, f):
            h.update(rel.encode() + b"\0" + src.read_bytes() + b"\0")
    return BUNDLE_PREFIX + h.hexdigest()[:12]


def make_bundle(plugins: PluginSet) -> str | None:
    """A folder holding every task file and the files it reads, laid out as beside the file; made once per
    content, removed when this process exits (Ray has uploaded it by then)."""
    if not plugins.task_files:
        return None
    name = bundle_name(plugins)
    if name in _STAGING:
        return _STAGING[name]
    files = [(src, rel) for i, f in enumerate(plugins.task_files) for src, rel in _bundle_files(i, f)]
    size = sum(src.stat().st_size for src, _ in files)
    if size > SHIP_LIMIT:
        raise PluginError(f"the task files and their local rows come to {size / 1024**2:.0f} MiB, more than the "
                          f"{SHIP_LIMIT // 1024**2} MiB shipped to the workers; put the rows on storage every node "
                          "mounts and give the task an absolute data.path (or a mirror)")
    staging = tempfile.mkdtemp(prefix="itsel-ray-plugins-")
    atexit.register(shutil.rmtree, staging, True)
    root = Path(staging) / name
    root.mkdir()
    (root / "__init__.py").write_text("")
    for src, rel in files:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, root / rel)
    _STAGING[name] = str(root)
    return str(root)


def _bundle_path(index: int, path: str) -> str:
    return f"f{index}/{Path(path).name}"


def _bundle_files(index: int, f: TaskFile) -> list[tuple[Path, str]]:
    folder = Path(f.path).parent
    out = [(Path(f.path), _bundle_path(index, f.path))]
    out += [(p, f"f{index}/{p.relative_to(folder).as_posix()}") for p in f.files]
    return out


def _files_of(ship: str | None) -> list[Path]:
    if not ship:
        return []
    p = Path(ship)
    if p.is_file():
        return [p]
    return sorted(x for x in p.rglob("*.py") if x.is_file())


# ------------------------------------------------------------------------------------------------ a worker


def setup_worker() -> None:
    """Ray's worker_process_setup_hook: load what the driver listed in $ITSEL_RAY_PLUGINS, from the shipped copies
    (modules by name from the runtime env's py_modules, task files from the bundle)."""
    raw = os.environ.get(PLUGINS_ENV)
    if raw:
        load_worker_spec(json.loads(raw))


def load_worker_spec(spec: Mapping) -> list[str]:
    """Import the listed modules and declare the listed task files; returns the task names declared."""
    for name in spec.get("modules", ()):
        importlib.import_module(name)
    declared: list[str] = []
    if spec.get("task_files"):
        from itsel_ray.tasks.declare import load_task_file

        for entry in spec["task_files"]:
            path = bundle_root(entry["bundle"]) / entry["file"]
            declared += [s.name for s in load_task_file(path, sizes=entry.get("sizes"))]
    return declared


def bundle_root(name: str) -> Path:
    """Where this worker's runtime environment unpacked the task-file bundle `name`."""
    found = importlib.util.find_spec(name)
    if found is None or not found.submodule_search_locations:
        raise PluginError(f"the shipped task files ({name}) are not on this worker's path; was the sweep's "
                          "runtime_env given to ray.init?")
    return Path(list(found.submodule_search_locations)[0])


def current_job_has(plugins: PluginSet, job_env: Mapping | None) -> bool:
    """Whether a running job's runtime env (`ray.get_runtime_context().runtime_env`) ships `plugins`."""
    raw = ((job_env or {}).get("env_vars") or {}).get(PLUGINS_ENV)
    try:
        return bool(raw) and json.loads(raw).get("fingerprint") == fingerprint(plugins)
    except (TypeError, ValueError, AttributeError):
        return False
