"""The sweep's storage root (<storage>/<sweep>): a local or NFS folder, or a URI (s3://, gs://, file://).

Local folders are used in place: trials train directly in their stable folder. For a URI, trials train in a
node-local scratch folder and their folder is uploaded when they end (Tune's checkpoints carry the state in between).
Every write is atomic (temp + rename locally; a single object put remotely), so a reader never sees half a file.
No Ray here.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

from itsel_ray.artifacts import atomic_write_bytes, write_json


def is_uri(path: str) -> bool:
    return "://" in str(path)


class Storage:
    """Paths under one sweep's root; relative keys use '/' whatever the backend."""

    def __init__(self, root: str | os.PathLike):
        root = str(root)
        self.remote = is_uri(root)
        self.root = root.rstrip("/") if self.remote else str(Path(root).expanduser().resolve())
        self._fs = None

    # ------------------------------------------------------------------ addressing
    def path(self, key: str = "") -> str:
        """The full path or URI of `key` (what tables and Tune see)."""
        if not key:
            return self.root
        return f"{self.root}/{key}" if self.remote else str(Path(self.root, key))

    def local(self, key: str = "") -> Path:
        if self.remote:
            raise ValueError(f"{self.root} is remote; no local path")
        return Path(self.path(key))

    @property
    def fs(self):
        """(pyarrow filesystem, path inside it) for the root; remote backends only."""
        if self._fs is None:
            import pyarrow.fs

            self._fs = pyarrow.fs.FileSystem.from_uri(self.root)
        return self._fs

    def _fs_path(self, key: str) -> str:
        fs, base = self.fs
        return str(PurePosixPath(base, key)) if key else base

    # ------------------------------------------------------------------ reading
    def exists(self, key: str) -> bool:
        if not self.remote:
            return self.local(key).exists()
        import pyarrow.fs

        return self.fs[0].get_file_info(self._fs_path(key)).type != pyarrow.fs.FileType.NotFound

    def read_bytes(self, key: str) -> bytes | None:
        try:
            if not self.remote:
                return self.local(key).read_bytes()
            with self.fs[0].open_input_stream(self._fs_path(key)) as f:
                return f.read()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None
        except OSError as err:  # pyarrow reports a missing object as OSError
            if "not found" in str(err).lower() or "no such file" in str(err).lower():
                return None
            raise

    def read_json(self, key: str) -> Any | None:
        """The parsed file, or None when it does not exist or is not valid JSON."""
        data = self.read_bytes(key)
        if data is None:
            return None
        try:
            return json.loads(data)
        except ValueError:
            return None

    def list_files(self, key: str) -> list[str]:
        """Keys of the files directly inside folder `key` (sorted); empty when it does not exist."""
        if not self.remote:
            folder = self.local(key)
            return sorted(f"{key}/{p.name}" for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []
        import pyarrow.fs

        sel = pyarrow.fs.FileSelector(self._fs_path(key), allow_not_found=True)
        return sorted(f"{key}/{PurePosixPath(i.path).name}" for i in self.fs[0].get_file_info(sel)
                      if i.type == pyarrow.fs.FileType.File)

    # ------------------------------------------------------------------ writing
    def write_bytes(self, key: str, data: bytes) -> str:
        if not self.remote:
            atomic_write_bytes(self.local(key), data)
        else:
            fs, _ = self.fs
            fs.create_dir(str(PurePosixPath(self._fs_path(key)).parent), recursive=True)
            with fs.open_output_stream(self._fs_path(key)) as f:
                f.write(data)
        return self.path(key)

    def write_json(self, key: str, obj: Any) -> str:
        if not self.remote:
            write_json(self.local(key), obj)
            return self.path(key)
        return self.write_bytes(key, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())

    def upload_dir(self, local_dir: str | os.PathLike, key: str) -> None:
        """Copy a local folder to `key` (remote backends; local ones train in place)."""
        import pyarrow.fs

        fs, _ = self.fs
        fs.create_dir(self._fs_path(key), recursive=True)
        pyarrow.fs.copy_files(str(local_dir), self._fs_path(key), source_filesystem=pyarrow.fs.LocalFileSystem(),
                              destination_filesystem=fs)

    def download_dir(self, key: str, local_dir: str | os.PathLike) -> bool:
        """Copy folder `key` to a local folder; False when it does not exist."""
        import pyarrow.fs

        if not self.exists(key):
            return False
        Path(local_dir).mkdir(parents=True, exist_ok=True)
        pyarrow.fs.copy_files(self._fs_path(key), str(local_dir), source_filesystem=self.fs[0],
                              destination_filesystem=pyarrow.fs.LocalFileSystem())
        return True


def scratch_dir(sweep: str, key: str) -> Path:
    """A node-local folder for a trial whose storage is remote."""
    return Path(tempfile.gettempdir(), "itsel_ray_scratch", sweep, key)
