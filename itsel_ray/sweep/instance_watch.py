"""A watch on the private Ray instance's own processes (raylet, GCS): when one of them ends, the driver says so and
exits with the documented "interrupted, rerun" status at once.

Without it a killed raylet ends the driver about 15 s later with an ActorUnavailableError traceback and exit status
1, and a killed GCS leaves it silent for 60 s before Ray's C++ client aborts the process. Ray's client cannot be
recovered from either state, so the watch does not try: it calls `on_loss(what)` from its own thread, and
`on_loss` finishes what can be finished without Ray (the tables, the lock, the message) and ends the process. No Ray
import: it watches processes by pid.
"""

from __future__ import annotations

import threading
from typing import Callable

WATCHED = {"raylet": "raylet", "gcs_server": "GCS (gcs_server)"}  # process name -> how the message names it
POLL_S = 0.5


def instance_processes(pid: int | None = None) -> dict[str, list]:
    """The raylet and GCS processes among the descendants of `pid` (default: this process), by name."""
    import os

    import psutil

    found: dict[str, list] = {}
    try:
        children = psutil.Process(pid or os.getpid()).children(recursive=True)
    except psutil.Error:
        return found
    for proc in children:
        try:
            name = proc.name()
        except psutil.Error:
            continue
        if name in WATCHED:
            found.setdefault(name, []).append(proc)
    return found


class InstanceWatch:
    """Polls the watched processes every POLL_S seconds in a daemon thread; `stop()` before shutting Ray down."""

    def __init__(self, processes: dict[str, list], on_loss: Callable[[str], None]):
        self.processes, self.on_loss = processes, on_loss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="itsel-ray-instance-watch", daemon=True)

    @classmethod
    def start(cls, on_loss: Callable[[str], None]) -> "InstanceWatch | None":
        """Watch this process's raylet and GCS; None when none are found (a cluster the driver only joined)."""
        processes = instance_processes()
        if not processes:
            return None
        watch = cls(processes, on_loss)
        watch._thread.start()
        return watch

    def lost(self) -> str | None:
        """The first watched process that is no longer running (by its message name), or None."""
        import psutil

        for name, procs in self.processes.items():
            for proc in procs:
                try:
                    gone = not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
                except psutil.Error:
                    gone = True
                if gone:
                    return WATCHED[name]
        return None

    def _run(self) -> None:
        while not self._stop.wait(POLL_S):
            what = self.lost()
            if what is not None:
                if not self._stop.is_set():
                    self.on_loss(what)
                return

    def stop(self) -> None:
        self._stop.set()
