"""The Hugging Face Hub at the edge: whether it may and can be reached, and a model's config.json read from a local
folder, the local cache or (only when allowed and reachable) the Hub.

Pure I/O with no torch and no transformers import (transformers imports torch), so the sweep's planner can read a
checkpoint's shape on the driver. Engines turn a `ModelNotFound` into their one-line error naming `model.name`.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

CONFIG = "config.json"


class ModelNotFound(LookupError):
    """No config.json for a model name: the message says where it was looked for."""


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co")


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the Hub opens within `timeout` seconds (one attempt, no retries)."""
    url = urlparse(hub_endpoint())
    try:
        socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)), timeout).close()
        return True
    except (OSError, TypeError):
        return False


def cached_file(repo_id: str, filename: str) -> Path | None:
    """`filename` of Hub repo `repo_id` in the local Hugging Face cache, or None (not there, or not a repo id)."""
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(repo_id, filename)
    except Exception:  # not a valid repo id (a path, spaces, ...)
        return None
    return Path(found) if isinstance(found, str) else None


def looks_like_path(name: str) -> bool:
    """A name meant as a folder: absolute, home- or dot-relative (a Hub id is `owner/name` or `name`)."""
    return name.startswith(("/", "~", "./", "../")) or name in (".", "..")


def read_config(name: str) -> tuple[dict, str]:
    """(config.json of model `name` as a dict, where it was read from).

    Looks in the folder `name` when it is one; else in the local Hugging Face cache; else, unless HF_HUB_OFFLINE is
    set or the Hub cannot be reached, downloads config.json alone (a few KB; it lands in the cache). Raises
    ModelNotFound saying where it looked.
    """
    folder = Path(name).expanduser()
    if folder.is_dir():
        return _parse(folder / CONFIG, f"{CONFIG} in {folder}")
    if looks_like_path(name):
        raise ModelNotFound(f"{name!r} is not a folder")
    cached = cached_file(name, CONFIG)
    if cached is not None:
        return _parse(cached, "the local Hugging Face cache")
    if hub_offline():
        raise ModelNotFound("not a local folder, and not in the local Hugging Face cache (HF_HUB_OFFLINE is set)")
    if not hub_reachable():
        raise ModelNotFound(f"not a local folder, not in the local Hugging Face cache, and the Hub ({hub_endpoint()})"
                            " cannot be reached")
    from huggingface_hub import hf_hub_download

    try:
        path = hf_hub_download(name, CONFIG)
    except Exception as err:  # no such repo, gated, no config.json
        raise ModelNotFound(f"not a local folder, and the Hub has no {CONFIG} for it ({type(err).__name__})") from None
    return _parse(Path(path), f"the Hub ({hub_endpoint()})")


def _parse(path: Path, where: str) -> tuple[dict, str]:
    if not path.is_file():
        raise ModelNotFound(f"no {CONFIG} in {path.parent}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ModelNotFound(f"{path} is not readable JSON ({type(err).__name__}: {err})") from None
    if not isinstance(data, dict):
        raise ModelNotFound(f"{path} does not hold a JSON object")
    return data, where
