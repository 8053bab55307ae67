"""Files a trial leaves behind: prompt tensors, JSON records, and the atomic write every one of them goes through.

Prompts are stored as safetensors (key "prompt") or as .npy without pickle; a file a user hands in is never
unpickled. Every write goes to a temporary name in the same folder and is renamed into place, so a crash never
leaves a half-written file that later reads as valid; the file gets the permissions the umask allows.
"""

from __future__ import annotations

import errno
import io
import json
import os
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

PROMPT_KEY = "prompt"
# The tensor names a prompt file may use: ours, and PEFT's prompt-tuning adapters (adapter_model.safetensors).
PROMPT_KEYS = (PROMPT_KEY, "prompt_embeddings")


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once: os.umask can only be read by setting it
UMASK = _UMASK


def make_temp_dir(prefix: str, dir: str | os.PathLike) -> Path:
    """`tempfile.mkdtemp` (a fresh, uniquely named folder) with the permissions the umask allows, like any other
    folder, instead of mkdtemp's 0700: a folder renamed into shared storage is for the team."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=dir))
    os.chmod(path, 0o777 & ~_UMASK)
    return path


class PromptFileError(ValueError):
    """A prompt file that cannot be read, or holds the wrong shape."""


def os_error_at(err: OSError, path: str | os.PathLike) -> OSError:
    """`err` naming `path` (numpy's short writes and some stream errors carry no file name, and no errno: a short
    write is a full disk)."""
    if getattr(err, "filename", None):
        return err
    code = err.errno or (errno.ENOSPC if "requested and" in str(err) and "written" in str(err) else errno.EIO)
    return type(err)(code, err.strerror or str(err), str(path))


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` via a temporary file and rename, so readers see the old file or the whole new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise type(err)(err.errno, err.strerror or str(err), str(path)) from None
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp creates 0600; a result on shared storage is for the team
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:  # a full or read-only disk: say which file, and leave nothing half-written behind
        Path(tmp).unlink(missing_ok=True)
        raise type(err)(err.errno, err.strerror or str(err), str(path)) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def prompt_to_bytes(prompt: np.ndarray, *, fmt: str = "safetensors", metadata: dict[str, str] | None = None) -> bytes:
    """Serialise a [P, H] float prompt."""
    prompt = np.ascontiguousarray(np.asarray(prompt, dtype=np.float32))
    if prompt.ndim != 2:
        raise PromptFileError(f"a prompt must be 2-D [tokens, d_model], got shape {prompt.shape}")
    if fmt == "safetensors":
        return _safetensors_bytes(prompt, {str(k): str(v) for k, v in (metadata or {}).items()})
    if fmt == "npy":
        buf = io.BytesIO()
        np.save(buf, prompt, allow_pickle=False)
        return buf.getvalue()
    raise PromptFileError(f"unknown prompt format {fmt!r}; valid: npy, safetensors")


def _safetensors_bytes(prompt: np.ndarray, metadata: dict[str, str]) -> bytes:
    """The safetensors file of one float32 tensor, byte for byte reproducible: the metadata keys sorted.

    The format: an 8-byte little-endian header length, the JSON header (space-padded to a multiple of 8 bytes),
    then the raw little-endian data. The safetensors library passes metadata through a hash map whose order
    changes from process to process, so the same prompt saved twice gave different bytes (and checksums); this
    writes the header the library writes, in one fixed order, and the library reads it back unchanged."""
    header: dict[str, Any] = {"__metadata__": dict(sorted(metadata.items()))} if metadata else {}
    header[PROMPT_KEY] = {"dtype": "F32", "shape": list(prompt.shape), "data_offsets": [0, prompt.nbytes]}
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + prompt.astype("<f4", copy=False).tobytes()


def save_prompt(path: str | os.PathLike, prompt: np.ndarray, *, metadata: dict[str, str] | None = None) -> Path:
    """Save a prompt atomically; the suffix (.safetensors or .npy) picks the format."""
    path = Path(path)
    fmt = "npy" if path.suffix == ".npy" else "safetensors"
    return atomic_write_bytes(path, prompt_to_bytes(prompt, fmt=fmt, metadata=metadata))


# A prompt is [tokens, d_model] floats: t5-11b's 100 x 1024 float32 is 0.4 MiB, so a file declaring more than this
# is not a prompt (or is a mistake), and is refused from its header before any data is read.
MAX_PROMPT_BYTES = 64 * 2**20
MAX_SAFETENSORS_HEADER = 100 * 2**20  # the safetensors format's own limit
_SAFETENSORS_FLOATS = {"F16": "<f2", "F32": "<f4", "F64": "<f8", "BF16": "<u2"}


def _refuse_size(name: str, shape, itemsize: int, max_bytes: int) -> int:
    nbytes = int(np.prod(shape, dtype=np.int64)) * itemsize
    if nbytes > max_bytes:
        raise PromptFileError(f"{name}: the header declares a tensor of shape {tuple(shape)} ({nbytes / 2**20:.1f} MiB), "
                              f"above the {max_bytes / 2**20:.0f} MiB a prompt may hold")
    return nbytes


def _read_npy(f, size: int, name: str, max_bytes: int) -> np.ndarray:
    """The array of an .npy stream, its header (version, dtype, shape) checked before the data is read."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(f)
        read_header = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}.get(version)
        if read_header is None:
            raise PromptFileError(f"{name}: .npy format version {version} is not supported (1.0 or 2.0)")
        shape, fortran, dtype = read_header(f)
    except PromptFileError:
        raise
    except Exception as err:  # numpy's messages quote the file's first bytes: never repeat them
        what = "not an .npy file (no NUMPY magic at its start)" if "magic" in str(err).lower() else \
            f"not a readable .npy header ({type(err).__name__})"
        raise PromptFileError(f"{name}: {what}") from None
    if dtype.hasobject:
        raise PromptFileError(f"{name}: the .npy file holds Python objects (dtype {dtype}); prompts are never unpickled")
    if dtype.kind != "f":
        raise PromptFileError(f"{name}: prompt dtype is {dtype}, not a floating-point type")
    nbytes = _refuse_size(name, shape, dtype.itemsize, max_bytes)
    if size - f.tell() < nbytes:
        raise PromptFileError(f"{name}: truncated: the header declares shape {shape} ({nbytes} bytes of data), "
                              f"the file holds {size - f.tell()}")
    data = np.frombuffer(f.read(nbytes), dtype=dtype)
    return data.reshape(shape[::-1]).T if fortran else data.reshape(shape)


def _read_safetensors(f, size: int, name: str, max_bytes: int) -> np.ndarray:
    """The prompt tensor of a safetensors stream: the 8-byte header length and the JSON header are checked
    (tensor name, dtype, shape, offsets, size) before the tensor's bytes are read."""
    head = f.read(8)
    if len(head) < 8:
        raise PromptFileError(f"{name}: truncated: {len(head)} bytes, not even a safetensors header length")
    n = int.from_bytes(head, "little")
    if n > min(MAX_SAFETENSORS_HEADER, size - 8):
        raise PromptFileError(f"{name}: not a safetensors file or truncated: the header length field says {n} bytes, "
                              f"the file holds {size - 8} after it")
    try:
        header = json.loads(f.read(n))
        if not isinstance(header, dict):
            raise ValueError("the header is not a JSON object")
    except ValueError as err:
        raise PromptFileError(f"{name}: cannot read the safetensors header ({err})") from None
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    key = next((k for k in PROMPT_KEYS if k in tensors), None)
    if key is None:
        found = sorted(tensors)[:8]
        raise PromptFileError(f"{name}: no prompt tensor: expected one named {' or '.join(map(repr, PROMPT_KEYS))} "
                              f"(found {found}); save the [tokens, d_model] array as "
                              f"safetensors.numpy.save({{'prompt': array}}, path)")
    info = tensors[key]
    try:
        dtype_name, shape, (begin, end) = info["dtype"], [int(d) for d in info["shape"]], info["data_offsets"]
        begin, end = int(begin), int(end)
    except (KeyError, TypeError, ValueError):
        raise PromptFileError(f"{name}: tensor {key!r} has no valid dtype, shape and data_offsets") from None
    if dtype_name not in _SAFETENSORS_FLOATS:
        raise PromptFileError(f"{name}: tensor {key!r} has dtype {dtype_name}, not a floating-point type "
                              f"({', '.join(_SAFETENSORS_FLOATS)})")
    dtype = np.dtype(_SAFETENSORS_FLOATS[dtype_name])
    nbytes = _refuse_size(name, shape, dtype.itemsize, max_bytes)
    if end - begin != nbytes or begin < 0:
        raise PromptFileError(f"{name}: tensor {key!r}: offsets [{begin}, {end}) do not hold shape {shape} of "
                              f"{dtype_name}")
    if 8 + n + end > size:
        raise PromptFileError(f"{name}: truncated: tensor {key!r} ends at byte {8 + n + end}, the file has {size}")
    f.seek(8 + n + begin)
    data = np.frombuffer(f.read(nbytes), dtype=dtype)
    if dtype_name == "BF16":  # the upper half of a float32
        data = (data.astype(np.uint32) << 16).view(np.float32)
    return data.reshape(shape)


_READERS = {"npy": _read_npy, "safetensors": _read_safetensors}


def _read_prompt(f, size: int, name: str, fmt: str, max_bytes: int) -> np.ndarray:
    if fmt not in _READERS:
        raise PromptFileError(f"unknown prompt format {fmt!r}; valid: {', '.join(_READERS)}")
    arr = np.array(_READERS[fmt](f, size, name, max_bytes), dtype=np.float32)  # a writable copy
    if arr.ndim != 2:
        raise PromptFileError(f"{name}: a prompt must be 2-D [tokens, d_model], got shape {arr.shape}")
    bad = ~np.isfinite(arr)
    if bad.any():
        token, dim = (int(i) for i in np.argwhere(bad)[0])
        raise PromptFileError(f"{name}: the prompt has {int(bad.sum())} NaN or infinite values (first at token {token}, "
                              f"dimension {dim})")
    return arr


def prompt_from_bytes(data: bytes, *, name: str = "<bytes>", fmt: str = "safetensors",
                      max_bytes: int = MAX_PROMPT_BYTES) -> np.ndarray:
    """A [P, H] float32 prompt from the bytes of a .safetensors or .npy file (never unpickled): float values,
    finite, at most `max_bytes`; errors name `name` and what is wrong."""
    return _read_prompt(io.BytesIO(data), len(data), name, fmt, max_bytes)


def load_prompt(path: str | os.PathLike, *, shape: tuple[int, int] | None = None, allow_zero: bool = True,
                max_bytes: int = MAX_PROMPT_BYTES) -> np.ndarray:
    """Read a [P, H] float32 prompt from .safetensors or .npy (never unpickles). The header is checked before the
    data is read (dtype, shape, a size cap of `max_bytes`, truncation); then the values must be finite, not all
    zero unless `allow_zero`, and of `shape` when given."""
    path = Path(path)
    if not path.is_file():
        raise PromptFileError(f"prompt file not found: {path}")
    fmt = "npy" if path.suffix == ".npy" else "safetensors"
    with open(path, "rb") as f:
        arr = _read_prompt(f, os.fstat(f.fileno()).st_size, str(path), fmt, max_bytes)
    if not allow_zero and not arr.any():
        raise PromptFileError(f"{path}: the prompt is all zeros (an untrained or blank file?)")
    check_prompt_shape(arr, shape, name=str(path))
    return arr


def check_prompt_shape(arr: np.ndarray, shape: tuple[int, int] | None, *, name: str) -> None:
    if shape is not None and tuple(arr.shape) != tuple(shape):
        raise PromptFileError(
            f"{name}: prompt has shape {tuple(arr.shape)} but the model expects {tuple(shape)} "
            "(prompt tokens x d_model)"
        )


class StateError(RuntimeError):
    """A trial folder's resume state (state.pt and its previous copy) cannot be read; the message names the files."""


@dataclass
class TrialResult:
    """What a finished trial reports back: the in-memory form of its result.json."""

    status: str
    best_score: float
    best_step: int | None
    best_metrics: dict
    steps: int
    wall_s: float
    history: list[dict] = field(default_factory=list)


class TrialFiles:
    """The layout of one trial's folder (the engine writes it; the sweep checkpoints it; the analysis reads it).

    config.json      the resolved TrialConfig and provenance
    result.json      status ("running" | "done" | "failed"), best score/step/metrics, steps, wall time, history
    best.safetensors the prompt with the best selection-metric score so far
    prompts/         step_000000.safetensors (the initial prompt) and a snapshot every `save_every` steps
    state.pt         resume state: prompt, optimiser, scheduler, step, RNG, best-so-far
    state.prev.pt    the resume state one evaluation earlier (a damaged state.pt falls back to it)
    train.log        the trial's log lines
    """

    CONFIG = "config.json"
    RESULT = "result.json"
    BEST_PROMPT = "best.safetensors"
    PROMPTS = "prompts"
    STATE = "state.pt"
    STATE_PREV = "state.prev.pt"
    LOG = "train.log"

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    @property
    def config(self) -> Path:
        return self.root / self.CONFIG

    @property
    def result(self) -> Path:
        return self.root / self.RESULT

    @property
    def best_prompt(self) -> Path:
        return self.root / self.BEST_PROMPT

    @property
    def state(self) -> Path:
        return self.root / self.STATE

    @property
    def state_prev(self) -> Path:
        return self.root / self.STATE_PREV

    @property
    def log(self) -> Path:
        return self.root / self.LOG

    def write_state(self, data: bytes) -> None:
        """Replace state.pt, keeping the one it replaces as state.prev.pt (both renames are atomic)."""
        if self.state.is_file():
            os.replace(self.state, self.state_prev)
        atomic_write_bytes(self.state, data)

    def state_candidates(self) -> list[Path]:
        """The resume states to try, newest first."""
        return [p for p in (self.state, self.state_prev) if p.is_file()]

    def snapshot(self, step: int) -> Path:
        return self.root / self.PROMPTS / f"step_{step:06d}.safetensors"

    def snapshots(self) -> dict[int, Path]:
        """Saved prompt snapshots by step, in step order."""
        folder = self.root / self.PROMPTS
        found = {}
        for p in folder.glob("step_*.safetensors") if folder.is_dir() else ():
            try:
                found[int(p.stem.split("_", 1)[1])] = p
            except ValueError:
                continue
        return dict(sorted(found.items()))
