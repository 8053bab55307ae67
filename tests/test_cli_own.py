"""Finding things without reading code: `itsel-ray list ...` (one line per entry, a user's plugins among them, the
task contract on a user's file), `itsel-ray analyze --help` explaining both forms, and `rank --include`."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import yaml

from itsel_ray import plugins as pl
from itsel_ray.analyze import STANDALONE_ONLY, SWEEP_OPTIONS
from itsel_ray.cli import main
from itsel_ray.definitions import shipped
from itsel_ray.metrics.task_metrics import TASK_METRICS
from itsel_ray.selection import SELECTORS
from itsel_ray.tasks import FORMATTERS, TASKS
from tests.own_study import write_study


@pytest.fixture
def study(tmp_path):
    paths = write_study(tmp_path / "study")
    yield paths
    from itsel_ray.tasks import declare

    for registry, name in ((TASKS, "mine_task"), (TASKS, "mine_bad"), (SELECTORS, "mine"),
                           (TASK_METRICS, "mine_accuracy"), (FORMATTERS, "mine_format")):
        if name in registry:
            registry.remove(name)
    declare._LOADED.clear()
    pl.forget_loaded()
    sys.modules.pop("mine_plugin", None)


def test_analyze_help_explains_both_forms_and_every_option(capsys):
    with pytest.raises(SystemExit):
        main(["analyze", "--help"])
    out = capsys.readouterr().out
    assert "As the sweep's stage" in out and "On its own" in out
    for dest in (*STANDALONE_ONLY, *SWEEP_OPTIONS, "results", "ground_truth", "include", "num_cpus"):
        flag = "--set" if dest == "overrides" else "--" + dest.replace("_", "-")
        assert flag in out, flag
    assert len(STANDALONE_ONLY) >= 19


def test_analyze_refuses_options_of_the_other_form(capsys):
    assert main(["analyze", "--selectors", "max"]) == 2
    assert "--selectors belong(s) with --results or --ground-truth" in capsys.readouterr().err
    assert main(["analyze", "--results", "x", "--sweep", "demo", "--out", "y"]) == 2
    assert "--sweep belong(s) with the sweep's stage" in capsys.readouterr().err
    assert main(["analyze", "--results", "x"]) == 2
    assert "--out DIR is required" in capsys.readouterr().err


@pytest.mark.parametrize("kind, count", [
    ("tasks", lambda: len(TASKS)), ("selectors", lambda: len(SELECTORS)), ("formatters", lambda: len(FORMATTERS)),
    ("sweeps", lambda: len(shipped("sweeps"))), ("analyses", lambda: len(shipped("analysis"))),
])
def test_list_prints_one_line_per_entry_with_a_description(kind, count, capsys):
    assert main(["list", kind]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == count()
    assert all(len(line.split()) >= 2 for line in lines), lines  # a name and a description


def test_list_metrics_shows_both_kinds(capsys):
    assert main(["list", "metrics"]) == 0
    out = capsys.readouterr().out
    assert "task metrics" in out and "ranking metrics" in out
    assert "  mcc " in out and "  regret " in out and "(needs @k)" in out


def test_list_shows_a_users_entries_and_where_they_come_from(study, capsys):
    argv = ["--include", str(study["plugin"]), "--include", str(study["tasks"])]
    assert main(["list", "tasks", *argv]) == 0
    (line,) = [x for x in capsys.readouterr().out.splitlines() if x.startswith("mine_task")]
    assert "groups 4 and 5" in line and str(study["tasks"]) in line
    assert main(["list", "selectors", *argv]) == 0
    assert any(x.startswith("mine ") and "MINE" in x for x in capsys.readouterr().out.splitlines())


def test_list_tasks_check_runs_the_contract_on_a_users_file(study, capsys):
    argv = ["list", "tasks", "--include", str(study["plugin"]), "--include", str(study["tasks"]), "--check",
            "--tokenizer", "vocab:synthetic"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "mine_task: ok" in out and "1 of 1 task(s) meet the contract" in out
    tasks = yaml.safe_load(study["tasks"].read_text())
    tasks["tasks"][0].update(name="mine_bad", labels={"words": ["nope", "yes"], "abstract": ["0", "1"]})
    study["tasks"].write_text(yaml.safe_dump(tasks))
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert "mine_bad: " in out and "problem: " in out and "'nope'" in out and "0 of 1 task(s)" in out


def test_list_refuses_what_does_not_apply(capsys):
    assert main(["list", "selectors", "--check"]) == 2
    assert main(["list", "tasks", "nosuchtask"]) == 2
    assert "unknown task 'nosuchtask'" in capsys.readouterr().err


def test_rank_takes_a_users_selector(study, tmp_path, capsys):
    library = tmp_path / "library"
    library.mkdir()
    rng = np.random.default_rng(0)
    target = rng.standard_normal((4, 8)).astype(np.float32)
    np.save(library / "near.npy", target + 0.01)
    np.save(library / "far.npy", -target)
    np.save(tmp_path / "target.npy", target)
    argv = ["rank", "--library", str(library), "--target-prompt", str(tmp_path / "target.npy"), "--selector", "mine"]
    assert main(argv) == 2  # not declared without the plugin
    assert "unknown selector 'mine'" in capsys.readouterr().err
    assert main([*argv, "--include", str(study["plugin"]), "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines()[1].startswith("1,near,")
