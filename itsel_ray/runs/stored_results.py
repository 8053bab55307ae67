"""A sweep's results on an object store, read and written by the analysis through a managed node-local copy.

`local_results(uri)` returns a local folder that reads like the stored results folder: its tables, and the prompt
files they name that the analysis reads (the tune runs' step snapshots and best prompts; not the transfer runs'),
laid out as on the store so the tables' relative paths (`../tune/...`) resolve. Each call lists the store once and
fetches only the files whose size or modification time changed since the last call (runs/node_cache.py), so a
second analysis of the same sweep fetches the tables and nothing else. `upload_folder` puts a finished local
output folder back, one object per file, the report last, then removes stored files the new output does not have.
`local_file(uri)` fetches one file (a prompt handed to `rank`). No Ray here.
"""

from __future__ import annotations

import posixpath
from pathlib import Path

from itsel_ray.runs import node_cache
from itsel_ray.runs.storage import Storage, StorageError

TABLE_STEMS = ("results", "prompts", "probe", "logme")
SUFFIXES = (".parquet", ".csv")


def _split(uri: str) -> tuple[Storage, str]:
    """(the Storage of the folder above, the folder's name) of a stored folder URI."""
    uri = uri.rstrip("/")
    parent, name = uri.rsplit("/", 1)
    if "://" not in parent or parent.endswith(":/") or not name:
        raise StorageError(f"{uri}: not a folder inside a bucket (expected SCHEME://BUCKET/.../results)")
    return Storage(parent), name


def _listing(store: Storage, key: str) -> dict[str, tuple[int, int]]:
    try:
        return store.list_tree(key)
    except OSError as err:
        raise StorageError(f"cannot list {store.path(key)}: {str(err).strip().splitlines()[0]}") from None


def local_results(uri: str) -> Path:
    """A node-local copy of the results folder at `uri` with the prompt files the analysis reads."""
    from itsel_ray.analysis.inputs import InputError, find_table, load_prompts, load_results

    store, name = _split(uri)
    dest = node_cache.location(store.root, "results")
    listing = _listing(store, name)
    tables = [f"{name}/{stem}{suffix}" for stem in TABLE_STEMS for suffix in SUFFIXES]
    if not any(f"{name}/results{suffix}" in listing for suffix in SUFFIXES):
        raise InputError(f"{uri}: no results.parquet or results.csv (is this a sweep's results folder?)")
    for key in tables:  # a table gone from the store must not be read from an old copy
        if key not in listing:
            (dest / key).unlink(missing_ok=True)
    node_cache.sync_files(store, tables, dest, listing)
    folder = dest / name
    results, prompts = load_results(folder), load_prompts(folder)
    tune = results["stage"] == "tune"
    wanted = list(results.loc[tune, "best_prompt"]) + list(prompts.loc[prompts["stage"] == "tune", "path"])
    keys = set()
    for path in wanted:
        key = posixpath.normpath(posixpath.join(name, path)) if path and not posixpath.isabs(path) else None
        if key and not key.startswith("../") and key != "..":
            keys.add(key)
    prefixes = sorted({k.split("/", 1)[0] for k in keys})
    files = {k: v for prefix in prefixes for k, v in _listing(store, prefix).items()}
    node_cache.sync_files(store, keys, dest, files)
    try:
        find_table(folder, "results")
    except InputError:
        raise InputError(f"{uri}: the results table could not be fetched") from None
    return folder


def stored_names(uri: str) -> set[str]:
    """Names of the files directly inside the stored folder `uri`."""
    store, name = _split(uri)
    try:
        return {key.rsplit("/", 1)[-1] for key in store.list_files(name)}
    except OSError as err:
        raise StorageError(f"cannot list {uri}: {str(err).strip().splitlines()[0]}") from None


def local_files(uri: str, names: list[str]) -> Path:
    """A node-local folder holding exactly the files `names` of the stored folder `uri` (fetched when changed)."""
    store = Storage(uri)
    dest = node_cache.location(store.root, "files")
    listing = _listing(store, "")
    node_cache.sync_files(store, names, dest, listing)
    for stale in dest.iterdir() if dest.is_dir() else ():
        if stale.is_file() and not stale.name.startswith(".") and stale.name not in names:
            stale.unlink()
    return dest


def local_file(uri: str) -> Path:
    """A node-local copy of one stored file (fetched when its size or modification time changed)."""
    store, name = _split(uri)
    dest = node_cache.location(store.root, "files")
    try:
        info = store.fs[0].get_file_info(store._fs_path(name))
    except OSError as err:
        raise StorageError(f"cannot read {uri}: {str(err).strip().splitlines()[0]}") from None
    if info.type.name != "File":
        raise FileNotFoundError(f"{uri}: no such file")
    listing = {name: (int(info.size or 0), int(info.mtime_ns or 0))}
    node_cache.sync_files(store, [name], dest, listing)
    return dest / name


def check_output(storage: Storage, key: str, marker: str) -> None:
    """Refuse to replace stored folder `key` unless it is empty or an output folder (it holds `marker`): the
    upload removes what the new output does not have."""
    from itsel_ray.analysis.inputs import InputError

    stored = _listing(storage, key)
    if stored and f"{key}/{marker}".lstrip("/") not in stored:
        raise InputError(f"{storage.path(key)}: holds other files (no {marker}, so not an analysis output); the "
                         "analysis replaces its output folder whole, so choose an empty or new --out")


def upload_folder(local: Path, storage: Storage, key: str, *, last: str = "report.md") -> None:
    """Put every file of `local` under `key` (one object each, `last` at the end), then remove the stored files
    under `key` that `local` does not have. A reader sees each file whole; the folder as a whole is the new one
    once `last` is there."""
    prefix = f"{key}/" if key else ""
    files = sorted(p for p in local.rglob("*") if p.is_file())
    names = {p.relative_to(local).as_posix() for p in files}
    for p in sorted(files, key=lambda p: p.relative_to(local).as_posix() == last):
        storage.upload_file(p, f"{prefix}{p.relative_to(local).as_posix()}")
    for stored in storage.list_tree(key):
        if stored[len(prefix):] not in names:
            storage.remove(stored)
