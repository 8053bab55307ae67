"""Disk failures as users should read them: which file could not be written, and that the disk is full.

A full disk shows up in several shapes: OSError ENOSPC or EDQUOT from Python's own writes, numpy's short write
("92397 requested and 16352 written", no errno), or either of them wrapped by Ray (a prepare task's RayTaskError).
`disk_full_error` finds it in an exception and its causes; `describe_os_error` is the one line the commands print.
No Ray import.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
from pathlib import Path

DISK_FULL = {errno.ENOSPC, errno.EDQUOT}
SHORT_WRITE = re.compile(r"\d+ requested and \d+ written")


def _chain(err: BaseException):
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = getattr(err, "cause", None) or err.__cause__ or err.__context__


def _pick(found: list[OSError]) -> OSError | None:
    """The most telling of several: one that names its file, else the innermost (Ray's wrapper comes first)."""
    named = [e for e in found if getattr(e, "filename", None)]
    return (named or found[-1:] or [None])[0]


def disk_full_error(err: BaseException) -> OSError | None:
    """The OSError in `err` (or its causes) that says the disk is full, or None."""
    return _pick([e for e in _chain(err) if isinstance(e, OSError) and
                  (e.errno in DISK_FULL or SHORT_WRITE.search(str(e).splitlines()[0] if str(e) else ""))])


def first_os_error(err: BaseException) -> OSError | None:
    return _pick([e for e in _chain(err) if isinstance(e, OSError)])


def _free_space(path: str | os.PathLike | None) -> str:
    p = Path(path) if path else None
    while p is not None and not p.exists() and p != p.parent:
        p = p.parent
    try:
        free = shutil.disk_usage(p).free if p is not None else None
    except OSError:
        free = None
    return "" if free is None else f" ({free / 2**20:,.0f} MiB free there now)"


def describe_os_error(err: BaseException, path: str | os.PathLike | None = None) -> str:
    """One line: "disk full writing FILE (N MiB free there now): free space and rerun" or "cannot use FILE: why"."""
    full = disk_full_error(err)
    os_err = full or first_os_error(err)
    where = getattr(os_err, "filename", None) or path
    name = where or "a file (the error does not say which)"
    if full is not None:
        free = _free_space(where) if where else ""
        return f"disk full writing {name}{free}: free space (or use another storage) and rerun the command"
    if os_err is None:
        return f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    return f"cannot use {name}: {os_err.strerror or os_err}"
