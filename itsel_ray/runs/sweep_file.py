"""Sweep files (sweeps/*.yaml, or any YAML path) plus `--set` overrides -> one validated, frozen `Sweep`.

The one loader of sweep definitions. A sweep file lists only what it changes; it is merged over sweeps/defaults.yaml,
then the command line's `--set key=value` overrides are merged over it, and the result is parsed with the strict
`from_dict` of itsel_ray/schema.py. So an unknown key, a bad type, an unknown task, a bad analysis definition or an
engine option the engine refuses fails with the key and the file before anything starts, whether it came from the
file or from `--set`. No Ray here: `--dry-run`, `status` and the tests use it without a cluster.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Mapping

import yaml

from itsel_ray.definitions import definitions_dir, shipped
from itsel_ray.engine import get_engine
from itsel_ray.plugins import PluginSet, load_plugins, resolve, split_includes
from itsel_ray.runs.plan import check_testing_keys
from itsel_ray.runs.sweep_spec import NAME_PATTERN, ROLES, Sweep, SweepFile, TrialSettings
from itsel_ray.schema import ConfigError, from_dict, merge, read_yaml


def sweeps_dir() -> Path:
    """The shipped sweep definitions (the checkout's sweeps/, or the installed package's copy)."""
    return definitions_dir("sweeps")


def resolve_sweep_path(name_or_path: str) -> Path:
    """A sweep NAME (a shipped sweeps/NAME.yaml) or a PATH to a YAML file."""
    p = Path(name_or_path).expanduser()
    if p.suffix in (".yaml", ".yml") or os.sep in name_or_path:
        if not p.is_file():
            raise ConfigError(f"sweep file not found: {p}")
        return p.resolve()
    candidate = sweeps_dir() / f"{name_or_path}.yaml"
    if name_or_path == "defaults" or not candidate.is_file():
        raise ConfigError(f"unknown sweep {name_or_path!r}; known sweeps: {', '.join(shipped('sweeps')) or '(none)'}"
                          " (or give a .yaml path)")
    return candidate


def parse_overrides(items: Iterable[str]) -> dict:
    """`key.path=value` strings -> one nested dict; values are YAML scalars or flow collections ([28], {a: 1})."""
    out: dict = {}
    for item in items:
        key, sep, text = item.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(parts):
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE with a dotted key, e.g. trial.train.max_steps=2000")
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as err:
            raise ConfigError(f"--set {item!r}: the value is not valid YAML ({err})") from None
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {part!r} is given a value and sub-keys at once")
        node[parts[-1]] = value
    return out


def load_sweep(name_or_path: str, *, overrides: Iterable[str] = (), check_tasks: bool = True,
               check_engine: bool = True, include: Iterable[str] = ()) -> Sweep:
    """Parse defaults.yaml, the sweep file over it and `overrides` over both; errors name the key and the file.

    The sweep's plugins and task files (plus `include`: paths from the command line, .yaml ones being task files)
    are imported first, so everything they declare is checked like the package's own. Their paths are made
    absolute: relative to the sweep file when it names them, to the current folder on the command line.
    """
    path = resolve_sweep_path(name_or_path)
    defaults_path = sweeps_dir() / "defaults.yaml"
    defaults = read_yaml(defaults_path, what="sweep defaults layer") if defaults_path.is_file() else {}
    if defaults_path.is_file() and path.resolve() == defaults_path.resolve():
        raise ConfigError(f"{path} is the defaults layer, not a sweep; pick a sweep file")
    # Resolve the defaults alone first: from then on every error comes from the sweep file, so it can be named.
    _resolve(_with_placeholder_grid(defaults), where=str(defaults_path))
    if (defaults.get("name") is not None) or (defaults.get("grid") or {}).get("sources"):
        raise ConfigError(f"{defaults_path}: 'name' and the grid's tasks belong in a sweep file, not the defaults")
    overrides = list(overrides)
    where = str(path) + (f" (with --set {' '.join(overrides)})" if overrides else "")
    layer = _absolute_includes(read_yaml(path, what="sweep file"), path.parent, where=str(path))
    raw = merge(merge(defaults, layer), _absolute_includes(parse_overrides(overrides), Path.cwd(), where=where))
    extra_plugins, extra_tasks = split_includes(resolve(include, Path.cwd()))
    for key, extra in (("plugins", extra_plugins), ("tasks", extra_tasks)):
        raw[key] = list(dict.fromkeys([*(raw.get(key) or []), *extra]))
    try:  # before the tasks, the engine and the analysis are checked: they may name what a plugin declares
        load_plugins(raw.get("plugins") or [], raw.get("tasks") or [])
    except ConfigError as err:
        raise ConfigError(f"{err} (named by {where})") from None
    spec, settings = _resolve(raw, where=where)
    name = spec.name or path.stem
    sweep = Sweep(name=name, path=str(path), spec=spec, settings=settings, raw={**raw, "name": name})
    if spec.name is None and not NAME_PATTERN.fullmatch(name):
        raise ConfigError(f"{path}: the file name {path.stem!r} cannot name a sweep folder; set `name:`")
    _check_transfer_shape(sweep)
    check_analysis(sweep)
    check_testing_keys(sweep)
    if check_tasks:
        check_task_names(sweep)
    if check_engine:
        check_engine_options(sweep)
    return sweep


def _absolute_includes(layer: Mapping, base: Path, *, where: str) -> dict:
    """The layer with its `plugins` and `tasks` paths, and an analysis definition given as a path, made absolute
    against `base`: the copy stored beside the results (`status` reads it) then names the same files."""
    layer = dict(layer)
    analysis = layer.get("analysis")
    if isinstance(analysis, str) and (analysis.endswith((".yaml", ".yml")) or os.sep in analysis):
        path = Path(analysis).expanduser()
        layer["analysis"] = str(path if path.is_absolute() else (base / path).resolve())
    for key in ("plugins", "tasks"):
        if layer.get(key) is None:
            continue
        if not isinstance(layer[key], list):
            raise ConfigError(f"{key} must be a list of paths or module names, got "
                              f"{type(layer[key]).__name__} in {where}")
        try:
            layer[key] = resolve(layer[key], base)
        except ConfigError as err:
            raise ConfigError(f"{key}: {err} in {where}") from None
    return layer


def sweep_plugins(sweep: Sweep) -> PluginSet:
    """The sweep's plugins and task files, as loaded in this process (what the workers are sent)."""
    return load_plugins(sweep.spec.plugins, sweep.spec.tasks)


def _resolve(data: Mapping, *, where: str) -> tuple[SweepFile, dict[str, TrialSettings]]:
    spec = from_dict(SweepFile, data, where=where)
    trial = data.get("trial") or {}
    settings = {
        role: from_dict(TrialSettings, merge(trial, getattr(spec.stages, role)), where=where, path=f"stages.{role}")
        for role in ROLES
    }
    return spec, settings


def _with_placeholder_grid(defaults: Mapping) -> dict:
    """The defaults layer names no tasks; stand-ins let it be checked on its own."""
    grid = dict(defaults.get("grid") or {})
    for key in ("sources", "targets"):
        grid[key] = grid.get(key) or [f"<{key}>"]
    return merge(defaults, {"grid": grid})


def _check_transfer_shape(sweep: Sweep) -> None:
    """A transfer run starts from a source prompt, so both stages must agree on its shape and backbone."""
    src, tr = sweep.settings["source"], sweep.settings["transfer"]
    if src.prompt.length != tr.prompt.length or src.model != tr.model:
        raise ConfigError(
            f"stages.source and stages.transfer must use the same model and prompt.length (a transfer starts from "
            f"the source prompt) in {sweep.path}"
        )


def analysis_config_path(sweep: Sweep) -> Path:
    """The shipped analysis/<name>.yaml, or a path (relative paths are read from the sweep file's folder)."""
    value = sweep.spec.analysis
    if value.endswith((".yaml", ".yml")) or os.sep in value:
        p = Path(value).expanduser()
        return p if p.is_absolute() else Path(sweep.path).parent / p
    return definitions_dir("analysis") / f"{value}.yaml"


def check_analysis(sweep: Sweep) -> None:
    """The analysis definition is parsed now, not after the whole sweep: a bad selector fails at planning."""
    from itsel_ray.analysis.analysis_file import load_analysis_config

    path = analysis_config_path(sweep)
    if not path.is_file():
        raise ConfigError(f"analysis: no analysis definition {str(path)!r} (from {sweep.spec.analysis!r}) in "
                          f"{sweep.path}")
    try:
        load_analysis_config(path)
    except ValueError as err:  # ConfigError and the registries' UnknownNameError
        raise ConfigError(f"analysis {sweep.spec.analysis!r} of {sweep.path}: {err}") from None


def check_task_names(sweep: Sweep) -> None:
    from itsel_ray.tasks import TASKS

    for key in ("sources", "targets"):
        for i, name in enumerate(getattr(sweep.grid, key)):
            if name not in TASKS:
                raise ConfigError(
                    f"grid.{key}[{i}]: unknown task {name!r} in {sweep.path}; valid tasks: {', '.join(TASKS.names())}"
                )


def check_engine_options(sweep: Sweep) -> None:
    """Let the engine check every option (cheap, no model load) for one trial per task and role."""
    engine = get_engine(sweep.spec.engine)
    grid = sweep.grid
    probes = [("source", t, None) for t in grid.sources] + [("target", t, None) for t in grid.targets]
    probes += [("transfer", t, grid.sources[0]) for t in grid.targets]
    for role, task, source in probes:
        cfg = sweep.trial_config(role, task=task, seed=0, source=source)
        try:
            engine.validate_config(cfg)
        except (ValueError, RuntimeError, OSError) as err:
            raise ConfigError(f"{sweep.path}: stage {role!r}, task {task!r}: {err}") from None


DEFAULT_SWEEP = "demo"


def pick_sweep(name_or_path: str | None, *, overrides: Iterable[str] = (), include: Iterable[str] = ()
               ) -> tuple[Sweep, str]:
    """The named sweep, or the offline demo on any machine (the paper's sweep is always asked for by name: it
    needs GPUs and the datasets); and a line saying which, when it was not named."""
    if name_or_path:
        return load_sweep(name_or_path, overrides=overrides, include=include), ""
    why = f"sweep: {DEFAULT_SWEEP} (no --sweep given; the paper's study is --sweep paper, on GPUs)"
    return load_sweep(DEFAULT_SWEEP, overrides=overrides, include=include), why
