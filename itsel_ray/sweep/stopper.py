"""The Tune side of the driver's stop signals (itsel_ray/sweep/signals.py): a stopper that ends the experiment once
a stop was requested, and the setting that leaves SIGINT to the driver instead of Tune's own handler."""

from __future__ import annotations

import threading

from ray import tune

NO_TUNE_HANDLER = {"TUNE_DISABLE_SIGINT_HANDLER": "1"}


class StopOnRequest(tune.Stopper):
    """Ends the Tune experiment once a stop was requested (no trial is stopped early by it otherwise)."""

    def __init__(self, event: threading.Event):
        self.event = event

    def __getstate__(self):  # Tune may pickle its stoppers into the experiment state; an event cannot be
        return {}

    def __setstate__(self, state):
        self.event = threading.Event()

    def __call__(self, trial_id, result) -> bool:
        return False

    def stop_all(self) -> bool:
        return self.event.is_set()
