"""The `itsel-ray` command and the package as a user installs it: one command with a subcommand per stage, help with
an example for each, a wheel that carries the sweep and analysis definitions and plans the paper sweep from any
folder, a quiet console, and runs sent to MLflow."""

import glob
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import itsel_ray
from itsel_ray.cli import main

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(itsel_ray.__file__).parent


def test_every_package_is_in_the_wheel():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {"itsel_ray"} | {"itsel_ray." + ".".join(p.parent.relative_to(PACKAGE).parts)
                             for p in PACKAGE.rglob("__init__.py") if p.parent != PACKAGE}
    assert found <= listed, f"packages missing from pyproject.toml: {sorted(found - listed)}"


def test_the_command_lists_its_subcommands(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for command in ("prepare", "tune", "transfer", "analyze", "all", "status", "rank", "examples:"):
        assert command in out
    assert main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["transfer"], ["status"], ["analyze"], ["analyze", "--results", "x"], ["rank"]])
def test_every_subcommand_explains_itself_with_an_example(argv, capsys):
    with pytest.raises(SystemExit) as done:
        main([*argv, "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "usage:" in out and ("example" in out or "    python -m itsel_ray" in out), out[-500:]


def test_analyze_dispatches_on_its_inputs(tmp_path, capsys):
    # with --ground-truth it is the analysis on its own: a missing file is its own clear error (exit 2)
    assert main(["analyze", "--ground-truth", str(tmp_path / "none.csv"), "--out", str(tmp_path / "o")]) == 2
    assert "none.csv" in capsys.readouterr().err
    # without, it is the sweep's analyze stage: a bad override fails as the sweep CLI does
    assert main(["analyze", "--sweep", "smoke", "--set", "trial.train.nope=1", "--dry-run"]) == 2
    assert "trial.train.nope" in capsys.readouterr().err


@pytest.mark.slow
def test_a_wheel_plans_the_paper_sweep_from_any_folder(tmp_path):
    wheels = tmp_path / "wheels"
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(ROOT)]
    if subprocess.run([*build, "--no-build-isolation"], capture_output=True, timeout=600).returncode != 0:
        subprocess.run(build, check=True, capture_output=True, timeout=600)  # this venv's setuptools is too old
    (wheel,) = wheels.glob("itsel_ray-*.whl")
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, timeout=600)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    where = subprocess.run([sys.executable, "-c", "import itsel_ray, itsel_ray.definitions as d; "
                            "print(itsel_ray.__file__); print(d.definitions_dir('sweeps'))"],
                           cwd=elsewhere, env=env, capture_output=True, text=True, check=True)
    assert all(line.startswith(str(site)) for line in where.stdout.split()), where.stdout  # the installed copy
    for cmd in ([sys.executable, "-m", "itsel_ray.sweep"], [str(site / "bin" / "itsel-ray")]):
        out = subprocess.run([*cmd, "transfer", "--sweep", "paper", "--dry-run", "--storage", str(tmp_path / "s")],
                             cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
        assert "tune: 69 trials" in out.stdout and "transfer: 390 trials" in out.stdout, out.stdout + out.stderr
        assert out.returncode == 3  # planned; this machine has no GPU for it
    smoke = subprocess.run([str(site / "bin" / "itsel-ray"), "tune", "--sweep", "smoke", "--dry-run"],
                           cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
    assert smoke.returncode == 0 and "per trial: 1 CPU" in smoke.stdout, smoke.stderr
    analysis = subprocess.run([sys.executable, "-c", "from itsel_ray.analysis import builtin_config, "
                               "load_analysis_config; print(load_analysis_config(builtin_config('paper')).name)"],
                              cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120)
    assert analysis.returncode == 0 and analysis.stdout.strip(), analysis.stderr


@pytest.mark.slow
def test_the_console_is_quiet_and_runs_reach_mlflow(tmp_path):
    pytest.importorskip("mlflow")
    store = tmp_path / "store"
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "ITSEL_RAY_OBJECT_STORE_MB": "256"}
    out = subprocess.run([sys.executable, "-m", "itsel_ray.sweep", "transfer", "--no-analyze", "--sweep", "smoke",
                          "--set", "engine=fake", "--set", "tracking.mlflow={}", "--storage", str(store),
                          "--no-dashboard", "--num-cpus", "2"], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    lines = out.stdout.splitlines()
    assert len(lines) <= 30, out.stdout  # stage lines and a summary, not Tune's per-trial tables
    assert any(line.startswith("[transfer] 4/4 done") for line in lines)
    assert any(line.startswith("full log: ") for line in lines)
    log = Path(lines[-1].split("full log: ", 1)[1])
    assert log.is_file() and log.parent == store / "smoke" / "logs" and "ray.tune" in log.read_text()

    import mlflow

    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    client = mlflow.tracking.MlflowClient(tracking_uri=(store / "smoke" / "mlruns").as_uri())
    experiment = client.get_experiment_by_name("smoke")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 8  # 4 tune + 4 transfer trials
    tags = [r.data.tags for r in runs]
    assert {t["stage"] for t in tags} == {"tune", "transfer"}
    assert {t["role"] for t in tags} == {"source", "target", "transfer"}
    transfer = [t for t in tags if t["stage"] == "transfer"]
    assert all(t["source"] in ("syn_has0", "syn_has1") and t["seed"] == "28" and t["trial"].startswith("transfer/")
               for t in transfer)
    assert all("score" in r.data.metrics for r in runs)
    # charted against the training step (evaluations every 10 steps), the resolved settings as params, and none
    # of Tune's bookkeeping among the metrics
    run = next(r for r in runs if r.data.tags["stage"] == "transfer")
    assert [m.step for m in client.get_metric_history(run.info.run_id, "score")] == [10, 20]
    assert run.data.params["optim.lr"] == "0.3" and run.data.params["train.max_steps"] == "20"
    assert {"train.loss", "train.eval_mode", "prompt.length"} <= set(run.data.params)
    assert not {"time_this_iter_s", "training_iteration", "trial_done", "wall_s", "pid"} & set(run.data.metrics)

    from tests.tensorboard_events import scalars

    (events,) = glob.glob(str(store / "smoke" / "ray_tune" / "transfer-*" / "syn_has0__syn_and01_seed=28" /
                                "events.out.tfevents.*"))
    charts = scalars(events)
    assert [step for step, _ in charts["itsel_ray/score"]] == [10, 20]
    assert all(tag.startswith("itsel_ray/") for tag in charts), sorted(charts)
