"""The strict dict -> dataclass parser every configuration goes through, and the deep merge of override layers.

`from_dict` rejects unknown keys and wrong types with the dotted key path (and the file, when given), so a typo in a
YAML file fails before any compute is spent.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Mapping, TypeVar

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
            raise ConfigError(f"{key} must be a list, got {type(value).__name__}{suffix}")
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
            raise ConfigError(f"{key} must be {hint.__name__}, got {type(value).__name__} {value!r}{suffix}")
        return value
    return value


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict:
    """Deep-merge two plain dicts (override wins); used for defaults + overrides layers."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out
