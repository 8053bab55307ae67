"""The driver's console: the progress line cut to the terminal's width (whole when piped), the stage k of n of a
command, the ETA of a resumed run from what storage knows, the command's ETA, Tune's contradicting advice kept off
the console, the headline table, and Ctrl-C / SIGTERM taken by the driver (exit 130 / 143)."""

import io
import logging
import os
import pickle
import signal

import pandas as pd
import pytest

from itsel_ray.runs.progress import RunProgress, eta_seconds, seconds_per_trial
from itsel_ray.sweep.console import Console, tune_noise


class Terminal(io.StringIO):
    def isatty(self):
        return True


def shown_lines(text: str) -> list[str]:
    """What a terminal shows: each carriage return starts the line again, "\033[K" clears it."""
    return [part.replace("\033[K", "") for line in text.split("\n") for part in line.split("\r") if part]


def test_the_progress_line_never_wraps_on_a_narrow_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "60")
    term = Terminal()
    console = Console(stream=term)
    long = "[transfer] 16/390 done | ETA 1h02m (command 3h10m) | 8 running, 0 retrying, 0 failed, 366 waiting"
    console.step = (3, 4)
    console.progress(long)
    console.progress(long.replace("16/390", "17/390"), final=True)
    console.close()
    lines = shown_lines(term.getvalue())
    assert lines and all(len(line) <= 59 for line in lines), lines
    assert lines[-1].startswith("(3/4) [transfer] 17/390 done | ETA 1h02m") and lines[-1].endswith("…")
    monkeypatch.setenv("COLUMNS", "200")  # a wide terminal: the whole line
    wide = Terminal()
    console = Console(stream=wide)
    console.progress(long, final=True)
    assert shown_lines(wide.getvalue()) == [long]


def test_a_piped_progress_line_is_whole(monkeypatch):
    monkeypatch.setenv("COLUMNS", "40")
    out = io.StringIO()
    console = Console(stream=out)
    line = "[tune] 3/30 done | ETA 5m00s | 2 running, 0 retrying, 0 failed, 25 waiting | 1m00s elapsed"
    console.progress(line, final=True)
    assert out.getvalue() == line + "\n"


def test_a_resumed_run_starts_its_eta_from_what_storage_knows():
    # 6 trials left, 2 slots, a finished trial took 40 s (storage): 6 x 40 / 2 = 120 s before any finished in
    # this run; the first trial running for 10 s takes 10 s off; without storage's number: unknown
    run = RunProgress(started=0.0, slots=2)
    assert eta_seconds(6, run, now=5.0, prior_s=40.0) == pytest.approx(120.0)
    run.trial_line("a", "running", 5.0)
    run.trial_line("b", "running", 6.0)
    assert eta_seconds(6, run, now=15.0, prior_s=40.0) == pytest.approx(110.0)
    assert eta_seconds(6, run, now=15.0) is None
    # once a trial finished in this run, its own duration wins over storage's
    run.trial_line("a", "done", 25.0)
    assert eta_seconds(5, run, now=25.0, prior_s=40.0) == pytest.approx(5 * 20.0 / 2)
    assert seconds_per_trial(5, run, prior_s=40.0) == pytest.approx(10.0)


def stage_progress(tmp_path, **kw):
    from itsel_ray.sweep.callbacks import StageProgress

    return StageProgress(None, "tune", str(tmp_path), run="r1", total=10, done_before=4, todo=6, slots=2, **kw)


def test_the_line_gives_the_stage_and_the_command_eta_first(tmp_path):
    progress = stage_progress(tmp_path, prior_s=40.0, later=12.0)
    progress.progress.trial_line("a", "running", progress.t0)
    line = progress.line(now=progress.t0)
    # 6 left x 40 s / 2 slots = 120 s; then 12 later trials (in this stage's lengths) x 20 s = 240 s more
    assert line.startswith("[tune] 4/10 done | ETA 2m00s (command 6m00s) | 0 running"), line
    assert stage_progress(tmp_path).line(now=0.0).startswith("[tune] 4/10 done | ETA ? | ")


def test_tunes_restore_advice_and_its_result_grid_complaints_stay_off_the_console():
    def record(name, message, level=logging.WARNING):
        return logging.LogRecord(name, level, __file__, 1, message, None, None)

    assert not tune_noise(record("ray.tune.tune", "Experiment has been interrupted, but the most recent state was "
                                                  "saved.\nResume experiment with: Tuner.restore(path=...)"))
    assert not tune_noise(record("ray.tune.analysis.experiment_analysis", "Failed to fetch metrics for 3 trial(s)"))
    assert not tune_noise(record("ray.tune.tune", "Trials did not complete: [a, b]", logging.ERROR))
    assert tune_noise(record("ray.tune.execution.tune_controller", "Trial a errored: worker died"))


def test_the_headline_table_has_every_selector_with_its_interval():
    from itsel_ray.sweep.analyze_stage import headline_table

    table3 = pd.DataFrame({"ALL R@1": [10.05, 20.0], "ALL R@1 low": [7.56, float("nan")],
                           "ALL R@1 high": [12.53, float("nan")], "ALL nDCG": [81.554, float("nan")],
                           "ALL nDCG low": [81.0, 1.0], "ALL nDCG high": [82.0, 2.0], "CLS nDCG": [1.0, 2.0]},
                          index=pd.Index(["RANDOM", "SEMB"], name="selector"))
    lines = headline_table(table3).splitlines()
    assert lines[0].startswith("[analyze] headline")
    assert lines[1].split() == ["selector", "nDCG", "(ALL)", "Regret@1", "(ALL)"]
    assert lines[2].split() == ["RANDOM", "81.55", "[81.00,", "82.00]", "10.05", "[7.56,", "12.53]"]
    assert lines[3].split() == ["SEMB", "-", "20.00"]  # no mean: "-"; no interval: the mean alone
    assert headline_table(pd.DataFrame({"x": [1]})) == ""


def test_sigterm_asks_the_running_stage_to_stop_and_exits_143():
    from itsel_ray.sweep.signals import StopRequests
    from itsel_ray.sweep.stopper import StopOnRequest

    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}  # SIG_IGN under nohup
    stops = StopRequests()
    stops.install()
    try:
        stopper = stops.stopper()
        assert isinstance(stopper, StopOnRequest) and not stopper.stop_all()
        stops.in_stage = True
        os.kill(os.getpid(), signal.SIGTERM)  # a stage runs: it is asked to stop, nothing is raised
        assert stops.requested and stopper.stop_all() and stops.exit_code == 143 and stops.name == "SIGTERM"
        assert not stopper(trial_id="t", result={})  # no single trial is stopped early by it
        assert not pickle.loads(pickle.dumps(stopper)).stop_all()  # picklable (Tune may save its stoppers)
        with pytest.raises(KeyboardInterrupt):  # a second signal stops at once
            os.kill(os.getpid(), signal.SIGINT)
    finally:
        stops.restore()
    assert {sig: signal.getsignal(sig) for sig in before} == before  # the handlers the process had are back


def test_ctrl_c_outside_a_stage_interrupts_at_once_and_exits_130():
    from itsel_ray.sweep.signals import StopRequests

    stops = StopRequests()
    stops.install()
    try:
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
        assert stops.exit_code == 130 and stops.name == "SIGINT"
    finally:
        stops.restore()


def test_the_job_metadata_names_sweep_command_and_storage(tmp_path):
    from itsel_ray.runs.storage import Storage
    from itsel_ray.runs.sweep_file import load_sweep
    from itsel_ray.sweep.driver import job_metadata

    sweep = load_sweep("smoke", check_engine=False)
    meta = job_metadata("transfer", sweep, Storage(tmp_path / "smoke"))
    assert meta == {"job_name": "itsel-ray smoke transfer", "command": "transfer", "tool": "itsel-ray",
                    "sweep": "smoke", "storage": str(tmp_path / "smoke")}
    assert job_metadata("all", None, None) == {"job_name": "itsel-ray all", "command": "all", "tool": "itsel-ray"}


def test_who_holds_a_port_is_named():
    import socket
    import subprocess
    import sys

    from itsel_ray.sweep.cluster import _listener

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert _listener(port) == f"process {os.getpid()} ({__import__('psutil').Process().name()})"
    child = subprocess.Popen([sys.executable, "-c", "import socket,sys,time; s=socket.socket(); "
                              "s.bind(('127.0.0.1', 0)); s.listen(); print(s.getsockname()[1], flush=True); "
                              "time.sleep(30)"], stdout=subprocess.PIPE, text=True)
    try:
        assert _listener(int(child.stdout.readline())) == "ours"  # a descendant of this process
    finally:
        child.kill()
        child.wait()
