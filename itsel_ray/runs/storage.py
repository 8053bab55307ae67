"""The sweep's storage root (<storage>/<sweep>): a local or NFS folder, or a URI (s3://, gs://, file://).

Local folders are used in place: trials train directly in their stable folder. For a URI, trials train in a
node-local scratch folder and upload each file they change as they go. Every write is atomic (temp + rename
locally; a single object put remotely), so a reader never sees half a file, and files are created with the
permissions the umask allows (results on shared storage are meant to be read by the team). Keys are relative,
'/'-separated paths that can never leave the root. No Ray here.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

from itsel_ray.artifacts import atomic_write_bytes, write_json
from itsel_ray.runs.sweep_spec import NAME_PATTERN


class StorageError(RuntimeError):
    """Storage that cannot hold a sweep: missing, a file, read-only, full, or holding an entry that is not a plain
    folder or file (a symlink, FIFO, socket or device); the message names the path."""


# ------------------------------------------------------------------------------------------------ local safety

MAX_JSON_BYTES = 64 * 2**20  # a trial's records are kilobytes; anything near this is not one of them
_KINDS = ((stat.S_ISLNK, "a symlink"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def entry_kind(mode: int) -> str | None:
    """What an entry is when it is not a plain folder or file ("a symlink", "a FIFO", ...), else None."""
    return next((name for test, name in _KINDS if test(mode)), None)


def _refuse(path: Path, kind: str, root: str) -> StorageError:
    target = f" to {os.readlink(path)}" if kind == "a symlink" else ""
    return StorageError(f"storage entry {path} is {kind}{target}; a sweep reads and writes only plain folders and "
                        f"files inside its storage {root}: replace it with a folder or file (or move it out)")


def check_inside(root: str, key: str) -> Path:
    """The local path of `key` under `root`, after checking every part of it that exists: a symlink, FIFO, socket
    or device anywhere on the way is refused, so nothing is ever read or written outside the storage through one
    and no read blocks on a FIFO."""
    path = Path(root)
    for part in check_key(key).split("/") if key else ():
        path = path / part
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            break
        except NotADirectoryError:
            break
        kind = entry_kind(mode)
        if kind:
            raise _refuse(path, kind, root)
    return Path(root, key) if key else Path(root)


def unsafe_entries(root: str | os.PathLike, limit: int = 5) -> tuple[int, list[tuple[Path, str]]]:
    """(how many, the first `limit`) entries under `root` that are not plain folders or files; walks without
    following symlinks."""
    count, shown = 0, []
    for folder, dirs, files in os.walk(root, followlinks=False):
        for name in dirs + files:
            path = Path(folder, name)
            try:
                kind = entry_kind(os.lstat(path).st_mode)
            except FileNotFoundError:
                continue
            if kind:
                count += 1
                if len(shown) < limit:
                    shown.append((path, kind))
    return count, shown


def open_regular(path: Path, root: str):
    """A read-only binary file object for `path` that is a regular file: opened without following a symlink and
    without blocking on a FIFO, then checked."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise _refuse(path, "a symlink", root) from None
        raise
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, "is a folder", str(path))
        raise _refuse(path, entry_kind(mode) or "not a regular file", root)
    return os.fdopen(fd, "rb")


def is_uri(path: str) -> bool:
    return "://" in str(path)


def check_key(key: str) -> str:
    """A key is a relative path inside the root: no absolute paths, no '..', no empty segments."""
    if key.startswith("/") or "\\" in key or any(part in ("", ".", "..") for part in key.split("/")):
        raise ValueError(f"storage key {key!r} is not a relative path inside the sweep's storage")
    return key


class Storage:
    """Paths under one sweep's root; relative keys use '/' whatever the backend."""

    def __init__(self, root: str | os.PathLike):
        root = str(root)
        self.remote = is_uri(root)
        if self.remote:
            from itsel_ray.runs.object_store import uri_problem

            problem = uri_problem(root)
            if problem:
                raise StorageError(problem)
        self.root = root.rstrip("/") if self.remote else str(Path(root).expanduser().resolve())
        self._fs = None

    # ------------------------------------------------------------------ addressing
    def path(self, key: str = "") -> str:
        """The full path or URI of `key` (what Tune and the user see)."""
        if not key:
            return self.root
        check_key(key)
        return f"{self.root}/{key}" if self.remote else str(Path(self.root, key))

    def local(self, key: str = "") -> Path:
        """The local path of `key`; every part of it that exists must be a plain folder or file (`check_inside`)."""
        if self.remote:
            raise ValueError(f"{self.root} is remote; no local path")
        return check_inside(self.root, key)

    def relative(self, path: str) -> str:
        """The key of a full path under this root (how tables store paths, so a copied storage still reads)."""
        prefix = self.root.rstrip("/") + "/"
        if not str(path).startswith(prefix):
            raise ValueError(f"{path} is not inside {self.root}")
        return check_key(str(path)[len(prefix):])

    @property
    def fs(self):
        """(pyarrow filesystem, path inside it) for the root; remote backends only."""
        if self._fs is None:
            import pyarrow.fs

            self._fs = pyarrow.fs.FileSystem.from_uri(self.root + _uri_options(self.root))
        return self._fs

    def _fs_path(self, key: str) -> str:
        fs, base = self.fs
        return str(PurePosixPath(base, check_key(key))) if key else base

    # ------------------------------------------------------------------ reading
    def exists(self, key: str) -> bool:
        if not self.remote:
            return self.local(key).exists()
        import pyarrow.fs

        return self.fs[0].get_file_info(self._fs_path(key)).type != pyarrow.fs.FileType.NotFound

    def size(self, key: str) -> int | None:
        """Bytes of file `key`, None when it does not exist (checked before reading a file whole)."""
        try:
            if not self.remote:
                return self.local(key).stat().st_size
            info = self.fs[0].get_file_info(self._fs_path(key))
            return None if info.size is None or info.type.name == "NotFound" else int(info.size)
        except (FileNotFoundError, NotADirectoryError):
            return None

    def read_bytes(self, key: str, *, max_bytes: int | None = None) -> bytes | None:
        """The file's bytes, None when it does not exist. With `max_bytes`, a larger file raises StorageError
        before anything is read (a record that is gigabytes is not a record)."""
        try:
            if not self.remote:
                path = self.local(key)
                with open_regular(path, self.root) as f:
                    _check_size(path, os.fstat(f.fileno()).st_size, max_bytes)
                    return f.read()
            with self.fs[0].open_input_stream(self._fs_path(key)) as f:
                if max_bytes is not None:
                    size = self.size(key)
                    _check_size(self.path(key), size or 0, max_bytes)
                return f.read()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None
        except OSError as err:  # pyarrow reports a missing object as OSError
            if "not found" in str(err).lower() or "no such file" in str(err).lower():
                return None
            raise

    def read_json(self, key: str) -> Any | None:
        """The parsed file, or None when it does not exist or is not valid JSON (see `read_json_checked`)."""
        return self.read_json_checked(key)[0]

    def read_json_checked(self, key: str) -> tuple[Any | None, bool]:
        """(parsed file or None, damaged): damaged is True when the file exists but is not valid JSON (or is
        larger than MAX_JSON_BYTES)."""
        value, why = self.read_json_why(key)
        return value, why is not None

    def read_json_why(self, key: str, *, max_bytes: int = MAX_JSON_BYTES) -> tuple[Any | None, str | None]:
        """(parsed file or None, why it is damaged or None): a file that is not JSON, or larger than `max_bytes`
        (never read into memory), is damaged."""
        try:
            data = self.read_bytes(key, max_bytes=max_bytes)
        except _TooLarge as err:
            return None, err.reason
        if data is None:
            return None, None
        try:
            return json.loads(data), None
        except ValueError:
            return None, "not valid JSON"

    def list_files(self, key: str) -> list[str]:
        """Keys of the files directly inside folder `key` (sorted); empty when it does not exist. A symlink or
        special file among them is refused (named)."""
        if not self.remote:
            folder = self.local(key)
            if not folder.is_dir():
                return []
            out = []
            with os.scandir(folder) as entries:
                for entry in entries:
                    kind = entry_kind(entry.stat(follow_symlinks=False).st_mode)
                    if kind:
                        raise _refuse(Path(entry.path), kind, self.root)
                    if entry.is_file(follow_symlinks=False):
                        out.append(f"{key}/{entry.name}")
            return sorted(out)
        import pyarrow.fs

        sel = pyarrow.fs.FileSelector(self._fs_path(key), allow_not_found=True)
        return sorted(f"{key}/{PurePosixPath(i.path).name}" for i in self.fs[0].get_file_info(sel)
                      if i.type == pyarrow.fs.FileType.File)

    def list_tree(self, key: str) -> dict[str, tuple[int, int]]:
        """Remote: {key: (size, mtime_ns)} of every file below folder `key`, in one recursive listing (a LIST
        request per 1,000 objects on S3); empty when it does not exist."""
        import pyarrow.fs

        sel = pyarrow.fs.FileSelector(self._fs_path(key), allow_not_found=True, recursive=True)
        base, prefix = self._fs_path(key).rstrip("/") + "/", f"{key}/" if key else ""
        return {f"{prefix}{i.path[len(base):]}": (int(i.size or 0), int(i.mtime_ns or 0))
                for i in self.fs[0].get_file_info(sel) if i.type == pyarrow.fs.FileType.File}

    def list_folders(self, key: str = "") -> list[str]:
        """Names of the folders directly inside folder `key` (sorted); empty when it does not exist."""
        if not self.remote:
            folder = self.local(key) if key else Path(self.root)
            return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
        import pyarrow.fs

        sel = pyarrow.fs.FileSelector(self._fs_path(key), allow_not_found=True)
        return sorted(PurePosixPath(i.path).name for i in self.fs[0].get_file_info(sel)
                      if i.type == pyarrow.fs.FileType.Directory)

    # ------------------------------------------------------------------ writing
    def write_bytes(self, key: str, data: bytes) -> str:
        if not self.remote:
            atomic_write_bytes(self.local(key), data)
        else:
            fs, _ = self.fs
            if not _object_store(fs):  # an object store has no folders to make (pyarrow would put marker objects)
                fs.create_dir(str(PurePosixPath(self._fs_path(key)).parent), recursive=True)
            with fs.open_output_stream(self._fs_path(key)) as f:
                f.write(data)
        return self.path(key)

    def write_json(self, key: str, obj: Any) -> str:
        if not self.remote:
            write_json(self.local(key), obj)
            return self.path(key)
        return self.write_bytes(key, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())

    def append_text(self, key: str, text: str) -> None:
        """Append to a local file in one write (lines shorter than a page land whole). Remote stores cannot
        append; their writers put one object per batch instead (see progress.ProgressLog)."""
        if self.remote:
            raise ValueError(f"{self.root} is remote: objects cannot be appended to")
        path = self.local(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o666)
        try:
            os.write(fd, text.encode("utf-8"))
        finally:
            os.close(fd)

    def remove(self, key: str) -> None:
        """Delete file or folder `key` (missing is fine)."""
        if not self.remote:
            p = self.local(key)
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            return
        import pyarrow.fs

        info = self.fs[0].get_file_info(self._fs_path(key))
        if info.type == pyarrow.fs.FileType.Directory:
            self.fs[0].delete_dir(self._fs_path(key))
        elif info.type == pyarrow.fs.FileType.File:
            self.fs[0].delete_file(self._fs_path(key))

    def upload_file(self, local_file: str | os.PathLike, key: str) -> None:
        """Put one local file at `key` (remote backends: a trial's changed files as it trains)."""
        self.write_bytes(key, Path(local_file).read_bytes())

    def download_file(self, key: str, dest: str | os.PathLike) -> bool:
        """Copy file `key` to the local path `dest` (through a temporary file renamed into place); False when
        `key` does not exist."""
        data = self.read_bytes(key)
        if data is None:
            return False
        atomic_write_bytes(dest, data)
        return True

    def download_dir(self, key: str, local_dir: str | os.PathLike) -> bool:
        """Copy folder `key` to a local folder; False when it does not exist."""
        import pyarrow.fs

        if not self.exists(key):
            return False
        Path(local_dir).mkdir(parents=True, exist_ok=True)
        pyarrow.fs.copy_files(self._fs_path(key), str(local_dir), source_filesystem=self.fs[0],
                              destination_filesystem=pyarrow.fs.LocalFileSystem())
        return True

    # ------------------------------------------------------------------ checks
    def check_entries(self) -> None:
        """Refuse a local sweep folder that holds a symlink, FIFO, socket or device anywhere below it (named,
        with the count): the sweep would read or write through it, outside its storage."""
        if self.remote or not Path(self.root).is_dir():
            return
        count, shown = unsafe_entries(self.root)
        if count:
            path, kind = shown[0]
            more = f" ({count} such entries; also {', '.join(str(p) for p, _ in shown[1:])})" if count > 1 else ""
            raise StorageError(str(_refuse(path, kind, self.root)) + more)

    def check_usable(self, *, min_free_bytes: int = 256 * 1024**2) -> None:
        """Refuse a root that is a file, cannot be created or written, or has too little free space."""
        if self.remote:  # the bucket, the endpoint and a write; object stores report no free space
            from itsel_ray.runs.object_store import store_problem

            problem = store_problem(self)
            if problem:
                raise StorageError(problem)
            return None
        root = Path(self.root)
        for parent in [root, *root.parents]:
            if parent.exists():
                if not parent.is_dir():
                    raise StorageError(f"storage {root}: {parent} is a file, not a folder")
                break
        try:
            root.mkdir(parents=True, exist_ok=True)
            probe = root / f".write-check-{os.getpid()}"
            probe.write_bytes(b"ok")
            probe.unlink()
        except OSError as err:
            raise StorageError(f"storage {root} is not writable ({type(err).__name__}: {err.strerror or err})") \
                from None
        free = shutil.disk_usage(root).free
        if free < min_free_bytes:
            raise StorageError(f"storage {root} has {free / 1024**2:.0f} MiB free; the sweep needs at least "
                               f"{min_free_bytes / 1024**2:.0f} MiB (free space or pick another --storage)")


def _uri_options(uri: str) -> str:
    """S3: open output streams lazily, so a file smaller than a multipart part is one PutObject (pyarrow otherwise
    starts a multipart upload for every file: three requests for a 1 KiB JSON). Larger files stay multipart uploads,
    which S3 also shows only once complete."""
    return "?allow_delayed_open=true" if uri.startswith("s3://") and "?" not in uri else ""


def _object_store(fs) -> bool:
    return type(fs).__name__ in ("S3FileSystem", "GcsFileSystem")


class _TooLarge(StorageError):
    def __init__(self, path, size: int, limit: int):
        self.reason = f"{size / 2**20:,.1f} MiB, larger than any record ({limit / 2**20:,.0f} MiB at most); not read"
        super().__init__(f"{path} is {self.reason}")


def _check_size(path, size: int, max_bytes: int | None) -> None:
    if max_bytes is not None and size > max_bytes:
        raise _TooLarge(path, size, max_bytes)


def sweep_root(storage_base: str, name: str) -> Storage:
    """<storage>/<name> for a sweep; the name is one folder (sweep_spec.NAME_PATTERN), so it stays inside."""
    if not NAME_PATTERN.fullmatch(name):
        raise ValueError(f"sweep name {name!r} is not a single folder name")
    base = storage_base.rstrip("/") if is_uri(storage_base) else str(Path(storage_base).expanduser().resolve())
    return Storage(f"{base}/{name}" if is_uri(base) else str(Path(base, name)))


def scratch_dir(sweep: str, key: str) -> Path:
    """A node-local folder for a trial whose storage is remote."""
    return Path(tempfile.gettempdir(), "itsel_ray_scratch", sweep, check_key(key))
