"""Ctrl-C and SIGTERM: stop the sweep the same way, with the project's message only.

Tune's own SIGINT handler ends a run with "Resume experiment with: Tuner.restore(...)", which contradicts what
resumes a sweep here (rerunning the same command), and SIGTERM reaches Ray's native handler, which aborts the driver
with a stack dump. So the driver owns both signals from the moment Ray is up: the first SIGINT or SIGTERM asks the
running stage to stop (a Tune stopper, stopper.StopOnRequest, ends the experiment at its next step; the trial
folders keep every finished trial), a second one, or one outside a stage, interrupts at once. Either way the driver writes the tables, stops Ray, releases the lock and
exits 130 (SIGINT) or 143 (SIGTERM, as a shell reports a process ended by it).
"""

from __future__ import annotations

import signal
import threading

from itsel_ray.sweep import exit_codes

SIGNAL_EXIT = {signal.SIGINT: exit_codes.INTERRUPTED, signal.SIGTERM: exit_codes.TERMINATED}


class StopRequests:
    """Which stop signal came first (None: none), and an event a stage's Tune stopper watches."""

    def __init__(self):
        self.first: int | None = None
        self.event = threading.Event()
        self.in_stage = False  # a Tune experiment runs and watches `event`
        self._previous: dict[int, object] = {}

    def install(self) -> None:
        """Take SIGINT and SIGTERM (call after Ray starts: Ray installs its own SIGTERM handler in the driver)."""
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in SIGNAL_EXIT:
            previous = signal.signal(sig, self._handle)
            self._previous.setdefault(sig, previous)

    def restore(self) -> None:
        for sig, previous in self._previous.items():
            try:
                signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
            except (TypeError, ValueError):
                pass
        self._previous.clear()

    def _handle(self, signum, frame) -> None:
        if self.first is None:
            self.first = signum
            self.event.set()
            if self.in_stage:
                return  # the running stage stops at Tune's next step, its trials' state saved by the trials
        raise KeyboardInterrupt  # outside a stage, or a second signal: stop now

    @property
    def requested(self) -> bool:
        return self.event.is_set()

    @property
    def exit_code(self) -> int:
        return SIGNAL_EXIT.get(self.first, 130)

    @property
    def name(self) -> str:
        return signal.Signals(self.first).name if self.first else "SIGINT"

    def stopper(self):
        """A Tune stopper watching this object's event (imported here: importing Ray at import would be too early)."""
        from itsel_ray.sweep.stopper import StopOnRequest

        return StopOnRequest(self.event)
