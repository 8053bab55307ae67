"""The analysis output folder is replaced whole: built in a hidden sibling, then swapped in by renames.

A killed or failed analysis therefore leaves either the old complete outputs or the new complete ones, never new
tables beside an old report. Where the kernel offers it (Linux renameat2 with RENAME_EXCHANGE) the swap is one
atomic call; elsewhere it is two renames, and a run interrupted between them is undone by the next one (the old
folder, parked as `.<name>.old-*`, is put back). A partial build stays in `.<name>.new-*`, which no reader takes
for the output folder. A folder that is not an analysis output is never replaced.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from itsel_ray.analysis.inputs import InputError
from itsel_ray.artifacts import make_temp_dir

MARKER = "analysis_config.json"  # every complete output folder has it
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2); False where the call or the file system does not offer it."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    return fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0


def _parked(out_dir: Path) -> list[Path]:
    return sorted(out_dir.parent.glob(f".{out_dir.name}.old-*"), key=lambda p: p.stat().st_mtime)


def recover(out_dir: Path) -> None:
    """Put back an old output folder that a run interrupted between its two renames left parked."""
    parked = _parked(out_dir)
    if parked and not out_dir.exists():
        os.rename(parked[-1], out_dir)
        parked = parked[:-1]
    for old in parked:  # the output folder is complete; these are leftovers of finished swaps
        shutil.rmtree(old, ignore_errors=True)


def swap_in(stage: Path, out_dir: Path) -> None:
    """Make the complete folder `stage` the folder `out_dir`, and remove what `out_dir` held."""
    if not out_dir.exists():
        os.rename(stage, out_dir)
    elif _exchange(stage, out_dir):
        shutil.rmtree(stage)  # it now holds the old outputs
    else:
        old = out_dir.with_name(f".{out_dir.name}.old-{uuid.uuid4().hex[:8]}")
        os.rename(out_dir, old)
        os.rename(stage, out_dir)
        shutil.rmtree(old)


def check_replaceable(out_dir: str | Path) -> Path:
    """`out_dir` (absolute) if the analysis may replace it: absent, empty, or an analysis output folder."""
    out_dir = Path(out_dir).absolute()
    recover(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir}: exists and is not a folder; choose another --out")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / MARKER).is_file():
        raise InputError(f"{out_dir}: a folder with other content (no {MARKER}, so not an analysis output); the "
                         "analysis replaces its output folder whole, so choose an empty or new --out")
    return out_dir


@contextmanager
def staged_folder(out_dir: str | Path) -> Iterator[Path]:
    """Yield an empty hidden sibling of `out_dir` to write into; on success it replaces `out_dir` whole, on any
    error (or interrupt) it is removed and `out_dir` is untouched. Refuses an `out_dir` that exists, is not
    empty and is not an analysis output folder."""
    out_dir = check_replaceable(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    stage = make_temp_dir(f".{out_dir.name}.new-", out_dir.parent)
    try:
        yield stage
        swap_in(stage, out_dir)
    except OSError as err:  # name the output file as the user knows it, not its hidden staging copy
        shutil.rmtree(stage, ignore_errors=True)
        name = str(getattr(err, "filename", None) or "")
        if name.startswith(str(stage) + os.sep):
            raise type(err)(err.errno, err.strerror or str(err), str(out_dir / Path(name).relative_to(stage))) \
                from None
        raise
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
