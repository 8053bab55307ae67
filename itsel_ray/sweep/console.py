"""The driver's console and log file: one progress line per stage, messages at the chosen level, a full log kept.

On a terminal the progress line is refreshed in place and cut to the terminal's width (a line that wraps can no
longer be redrawn in place, so each refresh would add a line); piped, it is appended whole at most every
`PIPED_EVERY_S` (and on the stage's last update), so a log of the demo stays a few hundred lines. A command that runs
several stages (`all`) names the stage it is in: "(2/4)" before the line. Everything, Tune's own log records
included, also goes at DEBUG to <sweep>/logs/<command>-<time>.log once the sweep's storage is known.
"""

from __future__ import annotations

import logging
import shutil
import sys
import time
from pathlib import Path

LOGGER = "itsel_ray"
PIPED_EVERY_S = 15.0
TTY_EVERY_S = 0.5


# Tune's records that contradict or duplicate the driver's own: its result grid's complaint about every trial that
# had not reported when a stage was stopped (the trial folders, not Tune's results, are the sweep's state), and its
# advice to resume with Tuner.restore (a sweep resumes by rerunning its command).
TUNE_NOISE_LOGGERS = ("ray.tune.analysis",)
TUNE_NOISE_TEXT = ("Tuner.restore(", "Stop signal received", "Trials did not complete")


def tune_noise(record: logging.LogRecord) -> bool:
    """A logging filter: False for the Tune records above (they still reach the log file)."""
    if record.name.startswith(TUNE_NOISE_LOGGERS):
        return False
    message = record.getMessage()
    return not any(text in message for text in TUNE_NOISE_TEXT)


class Console:
    def __init__(self, *, level: str = "INFO", stream=None):
        self.stream = stream or sys.stdout
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.log = logging.getLogger(LOGGER)
        self.log.setLevel(logging.DEBUG)
        self._handler = logging.StreamHandler(self.stream)  # below WARNING: stdout
        self._handler.setLevel(getattr(logging, level.upper()))
        self._handler.addFilter(lambda record: record.levelno < logging.WARNING)
        self._errors = logging.StreamHandler(sys.stderr)  # warnings and errors: stderr
        self._errors.setLevel(max(logging.WARNING, getattr(logging, level.upper())))
        for handler in (self._handler, self._errors):
            handler.setFormatter(logging.Formatter("%(message)s"))
            self.log.addHandler(handler)
        self.log.propagate = False
        self._file: logging.Handler | None = None
        self._last_line, self._last_shown, self._last_logged, self._open_line = "", 0.0, 0.0, False
        self.log_path: Path | None = None
        self.step: tuple[int, int] | None = None  # (k, n): the command is in its k-th of n stages

    def width(self) -> int:
        """The terminal's columns ($COLUMNS first, as the shell sets it; 80 when unknown)."""
        return shutil.get_terminal_size((80, 24)).columns

    def fit(self, line: str) -> str:
        """The line cut to one character less than the terminal's width (the last column would wrap on some
        terminals), with "…" where it was cut."""
        room = max(10, self.width() - 1)
        return line if len(line) <= room else line[:room - 1] + "…"

    def keep_log(self, folder: Path, command: str) -> Path:
        """Write every record (DEBUG, Tune's too) to folder/<command>-<time>.log from now on."""
        folder.mkdir(parents=True, exist_ok=True)
        self.log_path = folder / f"{command}-{time.strftime('%Y%m%d-%H%M%S')}.log"
        self._file = logging.FileHandler(self.log_path, encoding="utf-8")
        self._file.setLevel(logging.DEBUG)
        self._file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        self.log.addHandler(self._file)
        for name in ("ray.tune", "ray.train", "ray.air"):
            other = logging.getLogger(name)
            other.addHandler(self._file)
        return self.log_path

    def info(self, message: str) -> None:
        self._end_line()
        self.log.info(message)

    def summary(self, message: str) -> None:
        """The command's outcome (where the tables, report and log are): shown at every level but ERROR."""
        self._end_line()
        if self._handler.level <= logging.WARNING:
            self.stream.write(message + "\n")
            self.stream.flush()
        self.log.debug(message)

    def quiet_ray(self, verbose: int) -> None:
        """Without -v, Ray's and Tune's own INFO lines stay in the log file, off the console; at any level, Tune's
        advice that does not apply here (see `tune_noise`) stays in the log file too."""
        for handler in logging.getLogger("ray").handlers:
            if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
                if not verbose:
                    handler.setLevel(logging.WARNING)
                if tune_noise not in handler.filters:
                    handler.addFilter(tune_noise)

    def warning(self, message: str) -> None:
        self._end_line()
        self.log.warning(f"warning: {message}")

    def error(self, message: str) -> None:
        self._end_line()
        self.log.error(f"error: {message}")

    def debug(self, message: str) -> None:
        self.log.debug(message)

    def progress(self, line: str, *, final: bool = False) -> None:
        """The stage's progress line: in place on a terminal, appended (throttled) when piped."""
        now = time.time()
        if self.step is not None:
            line = f"({self.step[0]}/{self.step[1]}) {line}"
        changed = line != self._last_line
        if self._file is not None and (final or (changed and now - self._last_logged >= PIPED_EVERY_S)):
            self.log.debug(line)
            self._last_logged = now
        self._last_line = line
        if self._handler.level > logging.INFO:
            return
        if self.tty:
            if final or now - self._last_shown >= TTY_EVERY_S:
                self.stream.write("\r\033[K" + self.fit(line) + ("\n" if final else ""))
                self.stream.flush()
                self._open_line, self._last_shown = not final, now
        elif final or (changed and now - self._last_shown >= PIPED_EVERY_S):
            self.stream.write(line + "\n")
            self.stream.flush()
            self._last_shown = now

    def _end_line(self) -> None:
        if self._open_line:
            self.stream.write("\n")
            self._open_line = False

    def close(self) -> None:
        self._end_line()
        for handler in (self._handler, self._errors, self._file):
            if handler is not None:
                self.log.removeHandler(handler)
                handler.close()
        for name in ("ray.tune", "ray.train", "ray.air"):
            if self._file is not None:
                logging.getLogger(name).removeHandler(self._file)
