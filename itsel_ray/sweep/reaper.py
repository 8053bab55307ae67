"""A watchdog that stops the Ray processes of the driver's private instance if the driver dies without stopping them.

A driver killed with SIGKILL (or by the OOM killer) runs no cleanup, and some of Ray's processes (the dashboard and
runtime-env agents) then outlive it. The driver starts this small process with a pipe; it remembers the driver's
descendants (refreshed every few seconds) and, when the pipe closes without the driver's "done", terminates those
still running. Run as `python -m itsel_ray.sweep.reaper PID`. No Ray import.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time

REFRESH_S = 2.0
DONE = b"done\n"


def spawn() -> subprocess.Popen:
    """Start the watchdog for this process; call `finish(proc)` after a clean shutdown."""
    return subprocess.Popen([sys.executable, "-m", "itsel_ray.sweep.reaper", str(os.getpid())],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def finish(proc: subprocess.Popen | None) -> None:
    """The driver stopped Ray itself: tell the watchdog, which then exits without touching anything."""
    if proc is None:
        return
    try:
        proc.stdin.write(DONE)
        proc.stdin.close()
    except OSError:
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()


def _descendants(pid: int) -> dict[int, float]:
    import psutil

    try:
        return {p.pid: p.create_time() for p in psutil.Process(pid).children(recursive=True) if p.pid != os.getpid()}
    except psutil.Error:
        return {}


def _stop(known: dict[int, float]) -> None:
    import psutil

    alive = []
    for pid, created in known.items():
        try:
            p = psutil.Process(pid)
            if abs(p.create_time() - created) < 1e-3:  # the same process, not a reused pid
                p.send_signal(signal.SIGTERM)
                alive.append(p)
        except psutil.Error:
            continue
    _, left = psutil.wait_procs(alive, timeout=5)
    for p in left:
        try:
            p.kill()
        except psutil.Error:
            pass


def main(argv: list[str]) -> int:
    driver = int(argv[0])
    known: dict[int, float] = {}
    received = b""
    while True:
        known.update(_descendants(driver))
        ready, _, _ = select.select([sys.stdin.buffer], [], [], REFRESH_S)
        if ready:
            chunk = os.read(sys.stdin.fileno(), 64)
            received += chunk
            if not chunk:
                break
    if received.startswith(DONE):
        return 0
    time.sleep(0.5)  # let the driver's own exit finish first
    _stop(known)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
