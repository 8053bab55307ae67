"""A local mirror of Hub datasets: which parquet files hold one (dataset, config, split), in the Hub's own layouts.

A mirror root holds one folder per dataset id (`<root>/nyu-mll/glue/...`), each laid out as the Hub repository
or its parquet export, so `huggingface_hub.snapshot_download(repo_type="dataset", local_dir=<root>/<id>)` makes
one. A per-task mirror names that dataset folder directly. Reading needs only pyarrow: no network, no `datasets`
cache written next to a read-only shared mirror.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

MIRROR_ENV = "ITSEL_RAY_DATA_MIRROR"

# Relative to the dataset folder and tried in this order; {config} is the config folder (see `config_folders`).
LAYOUTS = (
    "{config}/{split}-*.parquet",  # the repo itself (push_to_hub): nyu-mll/glue/mnli/train-00000-of-00001.parquet
    "{config}/{split}/*.parquet",  # the refs/convert/parquet export: allenai/cosmos_qa/default/train/0000.parquet
    "{config}/{split}.parquet",  # one file per split, named for it
    "{config}/*-{split}.parquet",  # the export's older names: duorc/ParaphraseRC/duorc-train.parquet
)


class MirrorError(FileNotFoundError):
    """No (or ambiguous) parquet files for a split in a mirror; the message names the folder and the patterns."""


@dataclass(frozen=True)
class Mirror:
    """Where local copies of Hub datasets live: `root` (`<root>/<dataset id>/...`) and/or one folder per task.

    A per-task folder wins over the root. Neither given: no mirror, datasets come from the Hub.
    """

    root: str | None = None
    tasks: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, mirror: "Mirror | str | os.PathLike | None" = None, tasks: Mapping[str, str] | None = None) -> "Mirror":
        """A Mirror from a root path (or a Mirror), per-task folders, and $ITSEL_RAY_DATA_MIRROR for a missing root."""
        if isinstance(mirror, Mirror):
            return cls(mirror.root, {**mirror.tasks, **(tasks or {})})
        root = str(mirror) if mirror else os.environ.get(MIRROR_ENV) or None
        return cls(root, dict(tasks or {}))

    def folder(self, task: str, dataset: str) -> Path | None:
        """The folder holding `dataset` for `task`, or None when this mirror does not cover it."""
        if task in self.tasks:
            return Path(self.tasks[task]).expanduser()
        if self.root:
            return Path(self.root).expanduser() / dataset
        return None

    def __bool__(self) -> bool:
        return bool(self.root or self.tasks)


def config_folders(folder: Path, config: str | None) -> list[str]:
    """Config folders to look in: the declared config; without one, the dataset folder itself and each of its
    visible subfolders (`default`, `data`, `plain_text`, ... whichever the repo uses)."""
    if config:
        return [config]
    if not folder.is_dir():
        return [""]
    return ["", *sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))]


def split_files(folder: Path, config: str | None, split: str) -> list[Path]:
    """The parquet files of `split`, in shard order, by the first layout that matches.

    Raises MirrorError when none matches, or when several config folders do (declare the config then).
    """
    found: dict[str, list[Path]] = {}
    for cfg in config_folders(folder, config):
        for layout in LAYOUTS:
            pattern = layout.format(config=cfg, split=split).lstrip("/")
            files = sorted(p for p in folder.glob(pattern) if p.is_file())
            if files:
                found[cfg] = files
                break
    if len(found) > 1:
        raise MirrorError(
            f"split {split!r} matches files in several config folders of {folder} ({', '.join(sorted(found))}); "
            "declare the dataset's config"
        )
    if not found:
        tried = ", ".join(layout.format(config=config or "<config>", split=split).lstrip("/") for layout in LAYOUTS)
        state = "" if folder.is_dir() else " (the folder does not exist)"
        raise MirrorError(f"no parquet files for split {split!r} in {folder}{state}; looked for {tried}")
    return next(iter(found.values()))


def file_stamps(files) -> tuple[tuple[str, int, int], ...]:
    """(path, size, mtime in ns) of each file: enough to notice a replaced or edited mirror file without reading it."""
    out = []
    for f in files:
        st = Path(f).stat()
        out.append((str(Path(f).resolve()), st.st_size, st.st_mtime_ns))
    return tuple(out)


def read_parquet(files):
    """One pyarrow Table of the files, concatenated in order (shards must share a schema). An empty file, a Git LFS
    pointer or a file without parquet's markers raises RowFileError naming it, before pyarrow reads it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from itsel_ray.tasks.rows import check_data_file

    for f in files:
        check_data_file(f, kind="parquet")
    tables = [pq.read_table(f) for f in files]
    return tables[0] if len(tables) == 1 else pa.concat_tables(tables)
