"""Faults of the machine as the driver reports them, without a Ray instance: a full disk names the file and says
"disk full" (exit 3), a Ray system error is "interrupted, rerun" (exit 130), a private instance that does not
start is one line (exit 3), an analysis that cannot write or read is one line, and "finished" is said only when
every stage succeeded. The same faults with a real instance and a real full disk: tests/test_sweep_machine_faults.py."""

from __future__ import annotations

import errno
import types

import pytest
import yaml

from itsel_ray.disk import describe_os_error, disk_full_error
from itsel_ray.runs.storage import StorageError, sweep_root
from itsel_ray.runs.sweep_file import load_sweep, sweeps_dir
from itsel_ray.sweep import cli, cluster, driver, exit_codes
from itsel_ray.sweep.console import Console


def test_a_full_disk_is_recognised_in_every_shape_it_comes_in(tmp_path):
    enospc = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "a.npy"))
    assert disk_full_error(enospc) is enospc
    short = OSError("92397 requested and 16352 written")  # numpy's short write: no errno, no file
    assert disk_full_error(short) is short
    try:
        try:
            raise enospc
        except OSError as inner:
            raise RuntimeError("a task failed") from inner
    except RuntimeError as outer:
        assert disk_full_error(outer) is enospc
    wrapped = types.SimpleNamespace()  # Ray's RayTaskError keeps the task's exception as `cause`
    err = RuntimeError("RayTaskError")
    err.cause = enospc
    assert disk_full_error(err) is enospc
    assert disk_full_error(OSError(errno.EACCES, "Permission denied", "x")) is None
    assert wrapped is not None
    line = describe_os_error(enospc)
    assert line.startswith(f"disk full writing {tmp_path / 'a.npy'} (") and "MiB free there now)" in line
    assert describe_os_error(short, tmp_path / "cache").startswith(f"disk full writing {tmp_path / 'cache'}")
    assert describe_os_error(OSError(errno.EACCES, "Permission denied", "/x/y")) == "cannot use /x/y: Permission denied"


def test_faults_are_classified_and_bugs_are_not():
    code, line = driver.classify_fault(OSError(errno.ENOSPC, "No space left on device", "/s/analysis/t.csv"))
    assert code == exit_codes.CANNOT_RUN and line.startswith("disk full writing /s/analysis/t.csv")
    import ray

    code, line = driver.classify_fault(ray.exceptions.ActorUnavailableError("The actor is unavailable", b"\0" * 16))
    assert code == exit_codes.INTERRUPTED and "rerun the same command" in line
    assert driver.classify_fault(ValueError("a bug")) is None
    assert driver.classify_fault(ConnectionError("reset")) is None


def test_a_private_instance_that_does_not_start_is_one_line(tmp_path, monkeypatch, capsys):
    import ray

    def slow_start(**kwargs):
        raise Exception("The current node timed out during startup. This could happen because some of the raylet "
                        "failed to startup or the GCS has become overloaded.")

    monkeypatch.setattr(ray, "init", slow_start)
    code = cli.main(["tune", "--sweep", "smoke", "--set", "engine=fake", "--storage", str(tmp_path / "s"),
                     "--no-dashboard", "--num-cpus", "1"])
    err = capsys.readouterr().err
    assert code == exit_codes.CANNOT_RUN
    assert err.strip().splitlines() == [
        err.strip().splitlines()[0]] and err.startswith("error: the private Ray instance did not start: The current "
                                                        "node timed out during startup.")
    assert "Traceback" not in err and "retry when it is quieter" in err
    log = next((tmp_path / "s" / "smoke" / "logs").glob("tune-*.log")).read_text()
    assert "finished" not in log


@pytest.fixture
def fake_smoke(tmp_path):
    data = yaml.safe_load((sweeps_dir() / "smoke.yaml").read_text())
    data.update(name="f", engine="fake")
    path = tmp_path / "f.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_sweep(str(path))


def _analyze_with(monkeypatch, fake_smoke, tmp_path, error: BaseException):
    from itsel_ray.sweep import analyze_stage

    def failing(*args, **kwargs):
        raise error

    monkeypatch.setattr(analyze_stage, "run_analyze", failing)
    storage = sweep_root(str(tmp_path / "runs"), fake_smoke.name)
    args = types.SimpleNamespace(stage="analyze", no_analyze=False)
    console = Console(level="INFO")
    try:
        return driver._run_stages(args, fake_smoke, storage, None, console)
    finally:
        console.close()


def test_an_analysis_on_a_full_disk_names_the_file(monkeypatch, fake_smoke, tmp_path, capsys):
    path = tmp_path / "runs" / "f" / ".analysis.new-x" / "tables.csv"
    code = _analyze_with(monkeypatch, fake_smoke, tmp_path, OSError(errno.ENOSPC, "No space left on device",
                                                                    str(path)))
    err = capsys.readouterr().err
    assert code == exit_codes.CANNOT_RUN
    assert err.startswith(f"error: [analyze] disk full writing {path}") and "Traceback" not in err


def test_an_analysis_through_a_symlink_or_on_a_bad_table_is_one_line(monkeypatch, fake_smoke, tmp_path, capsys):
    from itsel_ray.analysis.inputs import InputError

    code = _analyze_with(monkeypatch, fake_smoke, tmp_path, StorageError("storage entry /s/analysis is a symlink"))
    assert code == exit_codes.CANNOT_RUN and "error: [analyze] storage entry /s/analysis is a symlink" in \
        capsys.readouterr().err
    code = _analyze_with(monkeypatch, fake_smoke, tmp_path, InputError("/s/results/results.csv: row 3 ..."))
    err = capsys.readouterr().err
    assert code == exit_codes.FAILED_TRIALS and "Traceback" not in err
    assert "error: [analyze] failed: /s/results/results.csv: row 3" in err


def test_finished_is_said_only_after_success(tmp_path, capsys):
    import time

    storage = sweep_root("/tmp/s", "x")
    console = Console(level="INFO")
    driver._outcome_line(console, exit_codes.OK, time.time(), storage)
    driver._outcome_line(console, exit_codes.FAILED_TRIALS, time.time(), storage)
    console.close()
    ok, failed = capsys.readouterr().out.strip().splitlines()
    assert ok.startswith("finished in")
    assert "finish" not in failed and "stopped after" in failed and "exit status 1 (some trials failed)" in failed


def test_start_failure_names_the_load(monkeypatch):
    import ray

    monkeypatch.setattr(ray, "shutdown", lambda: None)
    line = cluster.start_failure(TimeoutError("Timed out after 30 seconds while waiting for node to startup."))
    assert line.startswith("the private Ray instance did not start: Timed out after 30 seconds") and "load average" in line


def test_a_write_error_in_the_staged_analysis_folder_names_the_output_path(tmp_path):
    from itsel_ray.analysis.output_dir import staged_folder

    out = tmp_path / "analysis"
    with pytest.raises(OSError) as err:
        with staged_folder(out) as stage:
            raise OSError(errno.ENOSPC, "No space left on device", str(stage / "figures" / "fig3.png"))
    assert err.value.filename == str(out / "figures" / "fig3.png")
    assert not list(tmp_path.glob(".analysis.new-*"))
