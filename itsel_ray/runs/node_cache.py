"""Node-local copies of what an object store holds: fetched once per node, read by every process there.

A remote sweep's prepared data and an analysis of its results need local files (the trials memory-map the token
arrays; the analysis reads prompt files). `fetch_folder` makes a local folder a complete copy of a stored one at a
given version: one process per node fetches it, under a file lock, into a temporary folder that is renamed into
place, so concurrent trials on a node never fetch it twice and never read a half-fetched copy; a newer version
replaces the copy the same way (processes that mapped the old files keep reading them). `sync_files` keeps a
local mirror of chosen files current by size and modification time (one listing, then a GET per changed file).

The copies live under $ITSEL_RAY_NODE_CACHE, else <tmp>/itsel_ray_node_cache, one folder per store location. No
Ray here.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

NODE_CACHE_ENV = "ITSEL_RAY_NODE_CACHE"
VERSION_FILE = ".fetched"  # inside a fetched folder: the version it is a copy of


def base() -> Path:
    return Path(os.environ.get(NODE_CACHE_ENV) or Path(tempfile.gettempdir(), "itsel_ray_node_cache"))


def location(uri: str, kind: str) -> Path:
    """The node-local folder for stored location `uri` (one per URI, so two sweeps never share copies)."""
    digest = hashlib.sha256(uri.rstrip("/").encode()).hexdigest()[:16]
    name = uri.rstrip("/").rsplit("/", 1)[-1] or "root"
    return base() / kind / f"{name}-{digest}"


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock between the processes of this node (flock on `path`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _version_of(folder: Path) -> str | None:
    try:
        return (folder / VERSION_FILE).read_text()
    except OSError:
        return None


def fetch_folder(storage, key: str, dest: Path, version: str) -> Path:
    """Make `dest` a complete local copy of stored folder `key` at `version` (e.g. the digest of its manifest);
    returns `dest`. Raises FileNotFoundError when the store has no such folder."""
    if _version_of(dest) == version:  # the common case: fetched already, no lock taken
        return dest
    with file_lock(dest.parent / f".{dest.name}.lock"):
        if _version_of(dest) == version:  # another process fetched it while this one waited
            return dest
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.fetch-", dir=dest.parent))
        try:
            if not storage.download_dir(key, tmp):
                raise FileNotFoundError(f"{storage.path(key)} does not exist")
            (tmp / VERSION_FILE).write_text(version)
            if dest.exists():
                old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
                os.replace(dest, old)
                shutil.rmtree(old, ignore_errors=True)
            os.replace(tmp, dest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return dest


def sync_files(storage, keys: Iterable[str], dest: Path, listing: dict[str, tuple[int, int]]) -> int:
    """Bring each stored file of `keys` to `dest/<key>` unless the local copy has the size and modification time
    that `listing` ({key: (size, mtime_ns)}, from Storage.list_tree) gives; keys absent from the listing are
    skipped. Returns the number of files fetched. The state is kept in `dest/.synced.json`."""
    state_path = dest / ".synced.json"
    with file_lock(dest / ".sync.lock"):
        try:
            state = json.loads(state_path.read_text())
        except (OSError, ValueError):
            state = {}
        fetched = 0
        for key in sorted(set(keys)):
            if key not in listing:
                continue
            stamp = list(listing[key])
            if state.get(key) == stamp and (dest / key).is_file():
                continue
            if storage.download_file(key, dest / key):
                state[key] = stamp
                fetched += 1
        state_path.write_text(json.dumps(state))
    return fetched
