"""Files a trial leaves behind: prompt tensors, JSON records, and the atomic write every one of them goes through.

Prompts are stored as safetensors (key "prompt") or as .npy without pickle; a file a user hands in is never
unpickled. Every write goes to a temporary name in the same folder and is renamed into place, so a crash never
leaves a half-written file that later reads as valid; the file gets the permissions the umask allows.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

PROMPT_KEY = "prompt"


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once: os.umask can only be read by setting it


class PromptFileError(ValueError):
    """A prompt file that cannot be read, or holds the wrong shape."""


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
        from safetensors.numpy import save

        return save({PROMPT_KEY: prompt}, metadata={k: str(v) for k, v in (metadata or {}).items()})
    if fmt == "npy":
        buf = io.BytesIO()
        np.save(buf, prompt, allow_pickle=False)
        return buf.getvalue()
    raise PromptFileError(f"unknown prompt format {fmt!r}; valid: npy, safetensors")


def save_prompt(path: str | os.PathLike, prompt: np.ndarray, *, metadata: dict[str, str] | None = None) -> Path:
    """Save a prompt atomically; the suffix (.safetensors or .npy) picks the format."""
    path = Path(path)
    fmt = "npy" if path.suffix == ".npy" else "safetensors"
    return atomic_write_bytes(path, prompt_to_bytes(prompt, fmt=fmt, metadata=metadata))


def prompt_from_bytes(data: bytes, *, name: str = "<bytes>", fmt: str = "safetensors") -> np.ndarray:
    try:
        if fmt == "npy":
            arr = np.load(io.BytesIO(data), allow_pickle=False)
        else:
            from safetensors.numpy import load

            tensors = load(data)
            if PROMPT_KEY in tensors:
                arr = tensors[PROMPT_KEY]
            elif len(tensors) == 1:
                arr = next(iter(tensors.values()))
            else:
                raise PromptFileError(
                    f"{name}: expected a tensor named {PROMPT_KEY!r} (or a single tensor), found {sorted(tensors)}"
                )
    except PromptFileError:
        raise
    except Exception as err:  # corrupt or foreign file
        raise PromptFileError(f"{name}: cannot read a prompt ({type(err).__name__}: {err})") from None
    arr = np.asarray(arr, dtype=np.float32)
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2:
        raise PromptFileError(f"{name}: a prompt must be 2-D [tokens, d_model], got shape {arr.shape}")
    return arr


def load_prompt(path: str | os.PathLike, *, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read a [P, H] float32 prompt from .safetensors or .npy (never unpickles); check `shape` when given."""
    path = Path(path)
    if not path.is_file():
        raise PromptFileError(f"prompt file not found: {path}")
    fmt = "npy" if path.suffix == ".npy" else "safetensors"
    arr = prompt_from_bytes(path.read_bytes(), name=str(path), fmt=fmt)
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
