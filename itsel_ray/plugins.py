"""A user's own modules and task files, loaded in this process (the driver, a command, a notebook).

A sweep names them (`plugins:` and `tasks:`), the standalone commands take `--include PATH`:

- a plugin is a `.py` file, a package folder (with `__init__.py`) or a dotted module name; importing it registers
  whatever it declares (tasks, formatters, metrics, selectors, vocabularies, engines: every registry is filled by
  import), exactly as the package's own modules do;
- a task file (or a folder of them) declares tasks as data (`itsel_ray/tasks/declare.py`).

The driver imports them before it checks the sweep, so a wrong name fails there; `itsel_ray/plugin_env.py` ships
them to every Ray worker. No Ray here.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import sysconfig
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from itsel_ray.schema import ConfigError

TASK_SUFFIXES = (".yaml", ".yml")


class PluginError(ConfigError):
    """A plugin that cannot be found, imported or shipped; the message names it."""


# ------------------------------------------------------------------------------------------------ entries


def is_path(entry: str) -> bool:
    """A path (a file or folder) rather than a dotted module name."""
    return os.sep in entry or "/" in entry or entry.endswith((".py", *TASK_SUFFIXES)) or entry.startswith((".", "~"))


def resolve(entries: Iterable[str], base: str | os.PathLike | None) -> list[str]:
    """Paths made absolute against `base` (a sweep file's folder, or the current folder); names kept."""
    out = []
    for entry in entries:
        if not isinstance(entry, str) or not entry.strip():
            raise PluginError(f"plugin and task entries are paths or module names, got {entry!r}")
        entry = entry.strip()
        if is_path(entry):
            p = Path(entry).expanduser()
            entry = str((Path(base or ".") / p).resolve() if not p.is_absolute() else p.resolve())
        out.append(entry)
    return out


def split_includes(entries: Iterable[str]) -> tuple[list[str], list[str]]:
    """`--include` entries -> (plugins, task files): .yaml/.yml files and folders holding no __init__.py are task
    files, the rest plugins."""
    plugins, tasks = [], []
    for entry in entries:
        p = Path(entry)
        if p.suffix in TASK_SUFFIXES or (p.is_dir() and not (p / "__init__.py").is_file()):
            tasks.append(entry)
        else:
            plugins.append(entry)
    return plugins, tasks


# ------------------------------------------------------------------------------------------------ the driver


@dataclass
class Module:
    """One imported plugin: its module name and what ships it (None: installed on every node, not shipped)."""

    entry: str
    name: str
    ship: str | None


@dataclass
class TaskFile:
    """One loaded task file: its path, the tasks it declared (with their training sizes) and the files it needs."""

    path: str
    tasks: dict[str, int]
    files: list[Path] = field(default_factory=list)


_MODULES: dict[str, Module] = {}


def import_plugin(entry: str) -> Module:
    """Import one plugin (idempotent); a failure is a PluginError naming the entry."""
    if entry in _MODULES:
        return _MODULES[entry]
    if is_path(entry):
        path = Path(entry)
        if path.is_dir():
            init = path / "__init__.py"
            if not init.is_file():
                raise PluginError(f"plugin {entry}: a folder must be a package (with __init__.py); name its .py "
                                  "files instead, or list it under `tasks:` if it holds task files")
            name, origin, ship = path.name, init, str(path)
        elif path.suffix == ".py" and path.is_file():
            name, origin, ship = path.stem, path, str(path)
        else:
            raise PluginError(f"plugin {entry}: no such .py file or package folder")
        _check_name_free(entry, name, origin)
        module = sys.modules.get(name)
        if module is None or Path(getattr(module, "__file__", "") or "").resolve() != origin.resolve():
            spec = importlib.util.spec_from_file_location(
                name, origin, submodule_search_locations=[str(path)] if path.is_dir() else None)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            try:
                spec.loader.exec_module(module)
            except Exception as err:
                del sys.modules[name]
                raise PluginError(f"plugin {entry} failed to import: {_where(err)}") from err
    else:
        try:
            module = importlib.import_module(entry)
        except Exception as err:
            raise PluginError(f"plugin {entry!r} failed to import: {_where(err)} (name a .py file or a package "
                              "folder, or install the module)") from err
        name, ship = entry, _shippable(entry)
    found = Module(entry, name, ship)
    _MODULES[entry] = found
    return found


def _check_name_free(entry: str, name: str, origin: Path) -> None:
    """A plugin must not shadow (or be shadowed by) another module of the same name in the workers."""
    if not name.isidentifier():
        raise PluginError(f"plugin {entry}: {name!r} is not a valid module name (letters, digits, '_'); rename it")
    loaded = sys.modules.get(name)
    if loaded is not None and Path(getattr(loaded, "__file__", "") or "").resolve() != origin.resolve():
        raise PluginError(f"plugin {entry}: the module name {name!r} is already taken by {loaded.__file__ or name}; "
                          "rename the plugin")
    try:
        found = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        found = None
    if found is not None and found.origin and Path(found.origin).resolve() != origin.resolve():
        raise PluginError(f"plugin {entry}: the module name {name!r} is already taken by {found.origin}; rename "
                          "the plugin")


def _shippable(name: str) -> str | None:
    """The folder or file of a dotted module's top-level package, unless it is installed (site-packages)."""
    top = sys.modules.get(name.split(".")[0])
    where = getattr(top, "__file__", None)
    if not where:
        return None
    where = Path(where).resolve()
    installed = {Path(p).resolve() for p in (sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"])}
    if any(part in ("site-packages", "dist-packages") for part in where.parts) or any(
            i in where.parents for i in installed):
        return None
    return str(where.parent if where.name == "__init__.py" else where)


def _where(err: BaseException) -> str:
    frames = traceback.extract_tb(err.__traceback__)
    user = [f for f in frames if "importlib" not in f.filename]
    at = f" at {user[-1].filename}:{user[-1].lineno}" if user else ""
    return f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}{at}"


def load_task_files(entry: str, *, sizes: Mapping[str, Mapping[str, int]] | None = None) -> list[TaskFile]:
    """Declare the tasks of a task file or folder (idempotent); returns what each file declared."""
    from itsel_ray.tasks.declare import load_task_file, task_files_in

    out = []
    for path in task_files_in(entry):
        specs = load_task_file(path, sizes=(sizes or {}).get(str(path)))
        out.append(TaskFile(str(Path(path).resolve()), {s.name: s.train_size for s in specs},
                            _local_files(path, specs)))
    return out


def _local_files(path: Path, specs) -> list[Path]:
    """The files a task file's tasks read relative to it (local rows, a declared mirror), all inside its folder."""
    folder = Path(path).resolve().parent
    files: list[Path] = []
    for spec in specs:
        places = []
        if spec.data.kind == "local":
            places += [Path(spec.data.path) / name for name in spec.data.splits.values()]
        if spec.data.mirror:
            places.append(Path(spec.data.mirror))
        for place in places:
            if place.expanduser().is_absolute():
                continue  # an absolute path is not shipped: it must exist on every node (shared storage)
            target = (folder / place).resolve()
            if folder not in target.parents:
                raise PluginError(f"{path}: task {spec.name} reads {place}, outside the task file's folder; only "
                                  "that folder is shipped to the workers: move it beside the file, or give an "
                                  "absolute path on storage every node mounts")
            if target.is_dir():
                files += sorted(p for p in target.rglob("*") if p.is_file())
            elif target.is_file():
                files.append(target)
    return files


@dataclass
class PluginSet:
    """The plugins and task files of a sweep or a command, loaded in this process (`plugin_env.runtime_env` ships
    them to the Ray workers)."""

    modules: list[Module] = field(default_factory=list)
    task_files: list[TaskFile] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.modules or self.task_files)

    @property
    def task_names(self) -> list[str]:
        return [name for f in self.task_files for name in f.tasks]


def load_plugins(plugins: Sequence[str] = (), tasks: Sequence[str] = ()) -> PluginSet:
    """Import `plugins` (in order), then declare `tasks` (files or folders): modules first, since a task file may
    name a formatter, loader or metric a plugin registers. Entries are absolute paths or module names (`resolve`)."""
    found = PluginSet()
    for entry in plugins:
        module = import_plugin(entry)
        if module not in found.modules:
            found.modules.append(module)
    for entry in tasks:
        for task_file in load_task_files(entry):
            if task_file.path not in [f.path for f in found.task_files]:
                found.task_files.append(task_file)
    return found


def forget_loaded() -> None:
    """Forget which plugins this process imported (tests that write a plugin afresh)."""
    _MODULES.clear()
