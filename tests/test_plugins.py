"""Plugins and task files named by a sweep or --include: loaded in the driver before the sweep is checked, packed into
the job's runtime_env (py_modules, the task-file bundle, the worker setup hook), extending a submitted job's own
runtime_env, and loaded again in a fresh process from the shipped copies alone. The Ray end (a three-node cluster)
is tests/test_plugins_cluster.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from itsel_ray import plugin_env as env_mod
from itsel_ray import plugins as pl
from itsel_ray.runs.sweep_file import load_sweep
from itsel_ray.schema import ConfigError
from itsel_ray.selection import SELECTORS
from itsel_ray.tasks import TASKS, get_task
from tests.own_study import write_study


@pytest.fixture
def study(tmp_path):
    paths = write_study(tmp_path / "study")
    yield paths
    from itsel_ray.metrics.task_metrics import TASK_METRICS
    from itsel_ray.tasks import FORMATTERS
    from itsel_ray.tasks import declare

    for registry, name in ((TASKS, "mine_task"), (SELECTORS, "mine"), (TASK_METRICS, "mine_accuracy"),
                           (FORMATTERS, "mine_format")):
        if name in registry:
            registry.remove(name)
    declare._LOADED.clear()
    pl.forget_loaded()
    sys.modules.pop("mine_plugin", None)


def test_a_sweep_file_loads_its_plugins_and_tasks_before_it_is_checked(study):
    sweep = load_sweep(str(study["sweep"]))  # grid.targets names mine_task, the analysis names the selector mine
    assert sweep.spec.plugins == [str(study["plugin"])] and sweep.spec.tasks == [str(study["tasks"])]
    assert get_task("mine_task").origin == str(study["tasks"]) and "mine" in SELECTORS
    assert sweep.raw["plugins"] == [str(study["plugin"])]  # absolute in the stored copy, for `status`
    assert get_task("mine_task").train_size == 128  # counted from the local rows


def test_the_stored_copy_of_the_sweep_loads_from_anywhere(study, tmp_path, monkeypatch):
    """`status` reads <storage>/<sweep>/sweep.yaml: its plugin, task and analysis paths are absolute."""
    sweep = load_sweep(str(study["sweep"]))
    assert sweep.spec.analysis == str(study["analysis"])
    stored = tmp_path / "elsewhere" / "sweep.yaml"
    stored.parent.mkdir()
    stored.write_text(yaml.safe_dump(dict(sweep.raw)))
    monkeypatch.chdir(stored.parent)
    again = load_sweep(str(stored), check_engine=False)
    assert (again.spec.plugins, again.spec.tasks, again.spec.analysis) == (
        sweep.spec.plugins, sweep.spec.tasks, sweep.spec.analysis)


def test_include_and_set_paths_are_relative_to_the_current_folder(study, monkeypatch):
    data = yaml.safe_load(study["sweep"].read_text())
    data.pop("plugins"), data.pop("tasks")
    bare = study["sweep"].with_name("bare.yaml")
    bare.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="unknown selector 'mine'"):  # the analysis names it
        load_sweep(str(bare), check_engine=False)
    monkeypatch.chdir(study["sweep"].parent)
    sweep = load_sweep(str(bare), include=["mine_plugin.py", "tasks.yaml"], check_engine=False)
    assert sweep.spec.tasks == [str(study["tasks"])] and sweep.spec.plugins == [str(study["plugin"])]


@pytest.mark.parametrize("change, message", [
    ({"plugins": "mine_plugin.py"}, r"plugins must be a list of paths or module names, got str in .*study\.yaml"),
    ({"plugins": ["nowhere.py"]}, r"plugin .*nowhere\.py: no such \.py file or package folder \(named by .*study"),
    ({"plugins": ["not_a_module_anywhere"]}, r"plugin 'not_a_module_anywhere' failed to import: ModuleNotFoundError"),
    ({"tasks": ["missing.yaml"]}, r"task file not found: .*missing\.yaml"),
    ({"plugins": ["json.py"]}, r"the module name 'json' is already taken"),
])
def test_a_bad_plugin_entry_is_one_line_naming_it(study, change, message):
    if change.get("plugins") == ["json.py"]:
        (study["sweep"].parent / "json.py").write_text("")
    data = {**yaml.safe_load(study["sweep"].read_text()), **change}
    study["sweep"].write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=message):
        load_sweep(str(study["sweep"]), check_engine=False)


def test_a_plugin_that_raises_names_its_line(tmp_path):
    (tmp_path / "broken_plugin.py").write_text("x = 1\nraise RuntimeError('bad setting')\n")
    with pytest.raises(pl.PluginError, match=r"broken_plugin\.py failed to import: RuntimeError: bad setting at "
                                             r".*broken_plugin\.py:2"):
        pl.import_plugin(str(tmp_path / "broken_plugin.py"))
    assert "broken_plugin" not in sys.modules


def test_data_outside_the_task_files_folder_is_refused(study, tmp_path):
    tasks = yaml.safe_load(study["tasks"].read_text())
    tasks["tasks"][0]["data"]["path"] = "../elsewhere"
    (tmp_path / "elsewhere").mkdir()
    for split in ("train", "validation"):
        (tmp_path / "elsewhere" / f"{split}.jsonl").write_text('{"text": "k4a k5a", "label": 1}\n')
    study["tasks"].write_text(yaml.safe_dump(tasks))
    pl.import_plugin(str(study["plugin"]))
    with pytest.raises(pl.PluginError, match=r"reads \.\./elsewhere/train\.jsonl, outside the task file's folder"):
        pl.load_plugins([], [str(study["tasks"])])


def test_the_runtime_env_ships_each_plugin_and_one_bundle_of_task_files(study):
    found = pl.load_plugins([str(study["plugin"])], [str(study["tasks"])])
    env = env_mod.runtime_env(found)
    assert env["worker_process_setup_hook"] == "itsel_ray.plugin_env.setup_worker"
    plugin, bundle = env["py_modules"]
    assert plugin == str(study["plugin"])
    assert Path(bundle).name.startswith("itsel_ray_tasks_")
    shipped = sorted(p.relative_to(bundle).as_posix() for p in Path(bundle).rglob("*") if p.is_file())
    assert shipped == ["__init__.py", "f0/data/train.jsonl", "f0/data/validation.jsonl", "f0/tasks.yaml"]
    spec = json.loads(env["env_vars"][env_mod.PLUGINS_ENV])
    assert spec["modules"] == ["mine_plugin"]
    assert spec["task_files"] == [{"bundle": Path(bundle).name, "file": "f0/tasks.yaml", "origin": str(study["tasks"]),
                                   "sizes": {"mine_task": 128}}]
    assert env_mod.current_job_has(found, env) and not env_mod.current_job_has(found, {"env_vars": {}})


def test_a_submitted_jobs_runtime_env_is_extended_not_clashed_with(study):
    found = pl.load_plugins([str(study["plugin"])], [str(study["tasks"])])
    job = {"working_dir": "gcs://_ray_pkg_abc.zip", "py_modules": ["gcs://_ray_pkg_def.zip"],
           "env_vars": {"HF_HUB_OFFLINE": "1"}}
    env = env_mod.runtime_env(found, job)
    assert "working_dir" not in env  # the job keeps its own (Ray merges per key)
    assert env["py_modules"][0] == "gcs://_ray_pkg_def.zip" and len(env["py_modules"]) == 3
    assert env["env_vars"]["HF_HUB_OFFLINE"] == "1" and env_mod.PLUGINS_ENV in env["env_vars"]
    with pytest.raises(pl.PluginError, match="already sets worker_process_setup_hook 'their.hook'"):
        env_mod.runtime_env(found, {"worker_process_setup_hook": "their.hook"})
    assert env_mod.runtime_env(pl.PluginSet(), job) == {}  # nothing to ship: nothing changes


def test_ray_merges_the_job_env_with_ours_losing_nothing(study):
    """What Ray 2.60's ray.init does with a submitted job's runtime_env and ours (`_merge_runtime_env`, override on,
    as `sweep.cluster._init` asks for)."""
    from ray.runtime_env.runtime_env import _merge_runtime_env

    found = pl.load_plugins([str(study["plugin"])], [str(study["tasks"])])
    job = {"working_dir": "gcs://_ray_pkg_abc.zip", "py_modules": ["gcs://x.zip"], "env_vars": {"A": "1"}}
    assert _merge_runtime_env(job, env_mod.runtime_env(found, job), override=False) is None  # why the override is needed
    merged = _merge_runtime_env(job, env_mod.runtime_env(found, job), override=True)
    assert merged["working_dir"] == job["working_dir"] and merged["py_modules"][0] == "gcs://x.zip"
    assert merged["env_vars"]["A"] == "1" and env_mod.PLUGINS_ENV in merged["env_vars"]


WORKER = """
import json, os, sys
sys.path[:0] = {paths!r}
os.environ["ITSEL_RAY_PLUGINS"] = {spec!r}
from itsel_ray.plugin_env import setup_worker
setup_worker()
import mine_plugin
from itsel_ray.tasks import get_task
from itsel_ray.selection import SELECTORS
task = get_task("mine_task")
print(json.dumps({{"plugin": mine_plugin.__file__, "origin": task.origin, "size": task.train_size,
                  "rows": len(task.load("train")), "selector": "mine" in SELECTORS}}))
"""


def test_a_fresh_process_loads_everything_from_the_shipped_copies_alone(study, tmp_path):
    """A worker's view: the plugin and the bundle on its path (where Ray unpacks py_modules), the original folder
    gone."""
    found = pl.load_plugins([str(study["plugin"])], [str(study["tasks"])])
    env = env_mod.runtime_env(found)
    unpacked = tmp_path / "unpacked"
    unpacked.mkdir()
    import shutil

    shutil.copy(study["plugin"], unpacked / "mine_plugin.py")
    shutil.copytree(env["py_modules"][1], unpacked / Path(env["py_modules"][1]).name)
    shutil.rmtree(study["sweep"].parent)  # the user's folder is gone: only the shipped copies remain
    code = WORKER.format(paths=[str(unpacked)], spec=env["env_vars"][env_mod.PLUGINS_ENV])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.returncode == 0, out.stderr[-2000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["plugin"] == str(unpacked / "mine_plugin.py")
    assert seen["origin"].startswith(str(unpacked)) and seen["origin"].endswith("f0/tasks.yaml")
    assert seen == {**seen, "size": 128, "rows": 128, "selector": True}


def test_an_engine_from_a_plugin_is_found_through_the_registry(tmp_path):
    """Engines are registry entries like the rest: a plugin that registers one makes `engine:` accept it."""
    from itsel_ray.engine import ENGINES

    (tmp_path / "engine_plugin.py").write_text(
        "from itsel_ray.engine import ENGINES\nENGINES.add('plugin_engine', ENGINES.get('fake'))\n")
    sweep = yaml.safe_load((Path(__file__).parents[1] / "sweeps" / "smoke.yaml").read_text())
    sweep.update(engine="plugin_engine", plugins=["engine_plugin.py"])
    path = tmp_path / "engine.yaml"
    path.write_text(yaml.safe_dump(sweep))
    try:
        assert load_sweep(str(path)).spec.engine == "plugin_engine"
    finally:
        if "plugin_engine" in ENGINES:
            ENGINES.remove("plugin_engine")
        pl.forget_loaded()
        sys.modules.pop("engine_plugin", None)
