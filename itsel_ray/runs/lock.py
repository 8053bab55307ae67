"""One driver per sweep storage: <sweep>/driver.lock names the driver (host, pid, start) and its heartbeat.

Taken with an exclusive create, so of two drivers started at once exactly one wins; the other is refused with the
running one named. A lock whose driver is gone does not stay stuck: on the same host a dead pid frees it at once,
from another host a heartbeat older than STALE_S does. `status` reads the same file to tell a live driver from a
dead one. On S3 the lock object is created with a conditional write (If-None-Match: *), a dead driver's lock is
replaced only if it is still the one read (If-Match: its ETag), and each heartbeat rewrites it only if it is still
this driver's; so exclusion rests on S3's conditional writes, as it rests on link(2) for a folder. Where a store
offers no conditional writes (other URI schemes, or no boto3), the lock is advisory: written, then read back. No Ray.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass

from itsel_ray.runs import object_store
from itsel_ray.runs.storage import Storage

LOCK = "driver.lock"
HEARTBEAT_S = 10.0
STALE_S = 60.0  # a heartbeat this old means the driver is gone (another host cannot check its pid)


class LockedError(RuntimeError):
    """Another live driver holds the sweep's storage."""


@dataclass(frozen=True)
class Holder:
    host: str
    pid: int
    started: float
    heartbeat: float
    command: str = ""
    token: str = ""  # this lock object's own id: two drivers of one process (a notebook, a test) are two holders

    def describe(self, now: float | None = None) -> str:
        now = time.time() if now is None else now
        return (f"pid {self.pid} on {self.host} ({self.command or 'a driver'}, started "
                f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(self.started))}, heartbeat "
                f"{now - self.heartbeat:.0f}s ago)")


def _process_started(pid: int) -> float | None:
    try:
        import psutil

        return psutil.Process(pid).create_time()
    except Exception:  # gone, or not ours to inspect
        return None


def holder(storage: Storage) -> Holder | None:
    """The recorded driver, if the lock file exists and is readable."""
    data, _ = storage.read_json_checked(LOCK)
    return _from_dict(data)


def _parse(raw: bytes) -> Holder | None:
    try:
        return _from_dict(json.loads(raw))
    except ValueError:
        return None


def _from_dict(data) -> Holder | None:
    try:
        return Holder(host=str(data["host"]), pid=int(data["pid"]), started=float(data["started"]),
                      heartbeat=float(data["heartbeat"]), command=str(data.get("command", "")),
                      token=str(data.get("token", "")))
    except (TypeError, KeyError, ValueError):
        return None


def is_alive(h: Holder | None, now: float | None = None) -> bool:
    """Same host: the pid runs and was started no later than the lock. Other host: a fresh heartbeat."""
    if h is None:
        return False
    now = time.time() if now is None else now
    if h.host == socket.gethostname():
        created = _process_started(h.pid)
        return created is not None and created <= h.started + 1.0
    return now - h.heartbeat < STALE_S


class DriverLock:
    """Held for one command's lifetime; a daemon thread keeps the heartbeat fresh."""

    def __init__(self, storage: Storage, command: str):
        self.storage, self.command = storage, command
        self.started = time.time()
        self.token = uuid.uuid4().hex
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._etag: str | None = None  # object stores with conditional writes: the lock object's ETag as we wrote it
        self.mode = "exclusive"  # "conditional" (S3), "advisory" (a store without conditional writes)
        self.lost = False  # a heartbeat found the lock replaced by another driver

    def _record(self) -> dict:
        return {"host": socket.gethostname(), "pid": os.getpid(), "started": self.started,
                "heartbeat": time.time(), "command": self.command, "token": self.token}

    def acquire(self) -> "DriverLock":
        current = holder(self.storage)
        if current is not None and is_alive(current) and not self._is_me(current):
            raise LockedError(f"another driver is running this sweep at {self.storage.root}: {current.describe()}. "
                              "Wait for it, or stop it; a second driver would train the same trials twice")
        if self.storage.remote:
            self._acquire_object()
        else:
            self._create_exclusive()
        self._thread = threading.Thread(target=self._beat, name="itsel-ray-lock", daemon=True)
        self._thread.start()
        return self

    def _create_exclusive(self) -> None:
        """Publish the lock with os.link, which fails when the name exists, so it appears whole or not at all."""
        path = self.storage.local(LOCK)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            self._take_over(path)
        tmp = path.with_name(f".{LOCK}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self._record()))
        try:
            os.link(tmp, path)
        except FileExistsError:
            other = holder(self.storage)
            raise LockedError(f"another driver took the lock at {self.storage.root}: "
                              f"{other.describe() if other else 'unreadable lock'}") from None
        finally:
            tmp.unlink(missing_ok=True)

    def _acquire_object(self) -> None:
        """Object stores: create the lock object only if absent, or replace a dead driver's only if unchanged."""
        uri = self.storage.path(LOCK)
        data = json.dumps(self._record()).encode()
        if not object_store.conditional_writes(uri):
            self.mode = "advisory"
            self.storage.write_bytes(LOCK, data)
            if not self._is_me(holder(self.storage)):
                raise LockedError(f"another driver took the lock at {self.storage.root} at the same moment")
            return
        self.mode = "conditional"
        found = object_store.read_with_etag(uri)
        if found is None:
            self._etag = object_store.create_if_absent(uri, data)
        else:
            current = _parse(found[0])
            if is_alive(current) and not self._is_me(current):
                raise LockedError(f"another driver is running this sweep at {self.storage.root}: "
                                  f"{current.describe()}. Wait for it, or stop it; a second driver would train the "
                                  "same trials twice")
            self._etag = object_store.replace_if_unchanged(uri, data, found[1])
        if self._etag is None:
            other = holder(self.storage)
            raise LockedError(f"another driver took the lock at {self.storage.root} at the same moment: "
                              f"{other.describe() if other else 'unreadable lock'}")

    def _take_over(self, path) -> None:
        """Move a dead driver's lock aside; if what was moved turns out to be live (another driver replaced the
        dead lock a moment ago), put it back and give way."""
        grabbed = path.with_name(f".{LOCK}.takeover-{os.getpid()}")
        try:
            os.rename(path, grabbed)
        except FileNotFoundError:
            return
        try:
            data = json.loads(grabbed.read_text())
            taken = Holder(host=str(data["host"]), pid=int(data["pid"]), started=float(data["started"]),
                           heartbeat=float(data["heartbeat"]), command=str(data.get("command", "")))
        except (OSError, TypeError, KeyError, ValueError):
            taken = None
        if is_alive(taken):
            try:
                os.link(grabbed, path)
            except FileExistsError:
                pass
            grabbed.unlink(missing_ok=True)
            raise LockedError(f"another driver is running this sweep at {self.storage.root}: {taken.describe()}")
        grabbed.unlink(missing_ok=True)

    def _is_me(self, h: Holder | None) -> bool:
        if h is not None and h.token:
            return h.token == self.token
        return h is not None and h.host == socket.gethostname() and h.pid == os.getpid() \
            and abs(h.started - self.started) < 1e-3

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                if not self.beat():
                    return
            except OSError:
                pass  # storage hiccup: the next beat tries again; the work itself reports real failures

    def beat(self) -> bool:
        """Refresh the heartbeat if the lock is still this driver's; False once it is not (another driver took it
        over, so this one's lock is lost)."""
        if self._etag is not None:  # only if the object is still the one this driver wrote
            etag = object_store.replace_if_unchanged(self.storage.path(LOCK), json.dumps(self._record()).encode(),
                                                     self._etag)
            self.lost, self._etag = etag is None, etag
            return not self.lost
        if self._is_me(holder(self.storage)):
            self.storage.write_json(LOCK, self._record())
            return True
        return True

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            if self._etag is not None:
                object_store.delete_if_unchanged(self.storage.path(LOCK), self._etag)
            elif not self.lost and self._is_me(holder(self.storage)):
                self.storage.remove(LOCK)
        except OSError:
            pass

    def __enter__(self) -> "DriverLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
