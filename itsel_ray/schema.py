"""The strict dict -> dataclass parser every configuration goes through, the deep merge of override layers, and the
one YAML reader of the project.

`from_dict` rejects unknown keys, wrong types and non-finite numbers with the dotted key path (and the file, when
given), so a typo in a YAML file fails before any compute is spent. `read_yaml` is PyYAML's safe loader with three
bounds a hand-written or hostile file needs: a size cap, no duplicate keys (YAML keeps the last one silently), and a
cap on how many values aliases may expand to (a 1 KB alias bomb otherwise becomes a gigabyte error message).
"""

from __future__ import annotations

import dataclasses
import math
import os
import reprlib
import types
import typing
from pathlib import Path
from typing import Any, Mapping, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A bad key, type or value in a configuration; the message names the key (and file)."""


def from_dict(cls: type[T], data: Mapping[str, Any], *, where: str = "", path: str = "") -> T:
    """Build dataclass `cls` from `data`, recursing into nested dataclasses.

    Unknown keys, wrong types and failing `__post_init__` checks raise ConfigError naming `path.key` and `where`
    (usually the YAML file).
    """
    suffix = f" in {where}" if where else ""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path or cls.__name__} must be a mapping, got {type(data).__name__}{suffix}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        key = f"{path}.{unknown[0]}" if path else unknown[0]
        raise ConfigError(f"unknown key {key!r}{suffix}; valid keys: {', '.join(sorted(fields))}")
    kwargs = {}
    for name, value in data.items():
        key = f"{path}.{name}" if path else name
        kwargs[name] = _coerce(hints[name], value, key=key, where=where)
    try:
        return cls(**kwargs)
    except ConfigError as err:
        raise ConfigError(f"{err}{suffix}") from None
    except TypeError as err:  # a missing required field
        raise ConfigError(f"{path or cls.__name__}: {err}{suffix}") from None


def _coerce(hint: Any, value: Any, *, key: str, where: str) -> Any:
    suffix = f" in {where}" if where else ""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, key=key, where=where)
            except ConfigError as err:
                errors.append(err)
        raise errors[0]
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where=where, path=key)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} must be a list, got {type(value).__name__} {short_repr(value)}{suffix}")
        (item,) = typing.get_args(hint)[:1] or (Any,)
        items = [_coerce(item, v, key=f"{key}[{i}]", where=where) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict or hint is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key} must be a mapping, got {type(value).__name__}{suffix}")
        return dict(value)
    if hint is Any:
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool):
        if isinstance(value, bool) and hint is not bool:
            raise ConfigError(f"{key} must be {hint.__name__}, got bool{suffix}")
        if not isinstance(value, hint):
            raise ConfigError(f"{key} must be {hint.__name__}, got {type(value).__name__} {short_repr(value)}{suffix}")
        if hint is float and not math.isfinite(value):
            raise ConfigError(f"{key} must be a finite number, got {value!r}{suffix}")
        return value
    return value


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 3, 60, 60


def short_repr(value: Any, limit: int = 80) -> str:
    """repr() cut to `limit` characters: error messages quote values, and a value may be huge."""
    text = _REPR.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict:
    """Deep-merge two plain dicts (override wins); used for defaults + overrides layers."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


# --------------------------------------------------------------------------------------------- YAML files

MAX_YAML_BYTES = 1024**2  # definitions are a few KB; anything near this is not a definition
MAX_YAML_VALUES = 100_000  # values after alias expansion


def read_yaml(path: str | os.PathLike, *, what: str = "file") -> dict:
    """A YAML mapping from `path`, safe-loaded and bounded; every problem is a ConfigError naming the file."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_YAML_BYTES:
            raise ConfigError(f"{path}: {size:,} bytes is too large for a {what} (limit {MAX_YAML_BYTES:,})")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot read the {what} ({type(err).__name__}: {err})") from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader subclass)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from None
    _count_values(data, path)
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: a {what} must be a mapping of keys, got {type(data).__name__}")
    return dict(data)


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, typing.Hashable):
                if key in seen:
                    raise ConfigError(f"duplicate key {short_repr(key)} at line {key_node.start_mark.line + 1} "
                                      f"(first at line {seen[key] + 1})")
                seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _StrictLoader.construct_mapping)


def _count_values(data: Any, path: Path) -> None:
    """Walk the loaded value as a reader would (aliases expanded) and stop at MAX_YAML_VALUES."""
    stack, seen = [data], 0
    while stack:
        item = stack.pop()
        seen += 1
        if seen > MAX_YAML_VALUES:
            raise ConfigError(f"{path}: more than {MAX_YAML_VALUES:,} values once its aliases are expanded; "
                              "not a definition file")
        if isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
