"""Sweep files: every shipped sweep expands to its trial plan without Ray, and bad files fail naming key and file."""

from pathlib import Path

import pytest
import yaml

from itsel_ray.schema import ConfigError
from itsel_ray.sweep.cli import main
from itsel_ray.runs.sweep_file import load_sweep, sweeps_dir
from itsel_ray.runs.plan import plan_stage, trial_from_config, trial_point

SHIPPED = sorted(p.stem for p in sweeps_dir().glob("*.yaml") if p.stem != "defaults")
EXPECTED = {"paper": (69, 390), "demo": (34, 96), "smoke": (4, 4)}


def test_shipped_sweeps_are_the_expected_ones():
    assert set(EXPECTED) <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_sweep_expands_to_its_plan(name):
    sweep = load_sweep(name)
    for stage, count in zip(("tune", "transfer"), EXPECTED.get(name, (None, None))):
        trials = plan_stage(sweep, stage)
        points = [trial_point(t) for t in trials]
        assert len(points) == len(trials)
        if count is not None:
            assert len(trials) == count
        keys = [trial_from_config(sweep, stage, p).key for p in points]
        assert sorted(keys) == sorted(t.key for t in trials)
        assert len(set(keys)) == len(keys)


def test_paper_plan_roles_and_seeds():
    sweep = load_sweep("paper")
    tune = plan_stage(sweep, "tune")
    assert sum(t.role == "source" for t in tune) == 39 and sum(t.role == "target" for t in tune) == 30
    assert {t.seed for t in tune if t.role == "source"} == {42, 150, 386}
    assert {t.seed for t in tune if t.role == "target"} == {28, 52, 112}
    transfer = plan_stage(sweep, "transfer")
    assert {t.seed for t in transfer} == {28, 52, 112}
    assert transfer[0].key == "transfer/mnli__boolq/seed=28" and tune[0].key == "tune/mnli/seed=42"
    assert tune[-1].target == "cb" and tune[0].target == ""


def test_paper_settings_are_the_papers():
    sweep = load_sweep("paper")
    src = sweep.trial_config("source", task="mnli", seed=42)
    tgt = sweep.trial_config("target", task="rte", seed=28)
    tr = sweep.trial_config("transfer", task="rte", seed=28, source="mnli")
    assert src.model.name == "t5-base" and src.model.config is None
    assert (src.prompt.length, src.prompt.init, src.prompt.population, src.prompt.population_start) == (
        100, "vocab_sample", 5000, 0)
    assert (src.optim.name, src.optim.lr, tgt.optim.lr, tr.optim.lr) == ("adafactor", 0.5, 2.0, 2.0)
    assert (src.optim.weight_decay, src.optim.schedule, src.optim.warmup_steps) == (1e-5, "linear", 0)
    t = src.train
    assert (t.batch_size, t.max_steps, t.eval_every, t.save_every, t.loss, t.eval_mode) == (
        32, 30000, 500, 5000, "sequence", "generate")
    assert (src.data.label_style, src.data.eval_split) == ("text", "validation")
    res = sweep.spec.resources
    assert (res.use_gpu, res.gpu_per_trial) == ("always", "auto")  # each task sized by its predicted memory


def test_demo_and_smoke_are_offline_cpu_sweeps():
    for name in ("demo", "smoke"):
        sweep = load_sweep(name)
        cfg = sweep.trial_config("source", task=sweep.grid.sources[0], seed=1)
        assert cfg.model.config is not None and cfg.model.tokenizer == "vocab:synthetic"
        assert sweep.spec.resources.use_gpu == "never"
        assert all(t.startswith("syn_") for t in sweep.grid.sources + sweep.grid.targets)
    demo = load_sweep("demo")
    assert demo.settings["source"].optim.name == "adam" and demo.settings["transfer"].optim.lr == 0.3
    assert 10 <= demo.settings["source"].prompt.length <= 20
    assert demo.settings["source"].train.loss == "label" and demo.settings["source"].train.eval_mode == "rank"


def test_every_default_has_a_comment():
    for i, line in enumerate((sweeps_dir() / "defaults.yaml").read_text().splitlines(), 1):
        if line.strip() and not line.lstrip().startswith("#") and ":" in line:
            assert "#" in line, f"defaults.yaml line {i} has no comment: {line!r}"


# ------------------------------------------------------------------------------------------------ bad files


def write_sweep(tmp_path: Path, data: dict, name: str = "bad.yaml") -> Path:
    base = yaml.safe_load((sweeps_dir() / "smoke.yaml").read_text())
    path = tmp_path / name
    path.write_text(yaml.safe_dump(_merge(base, data)))
    return path


def _merge(a, b):
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


@pytest.mark.parametrize("data, key", [
    ({"grdi": {}}, "grdi"),
    ({"trial": {"optim": {"lrr": 1.0}}}, "trial.optim.lrr"),
    ({"stages": {"source": {"train": {"max_stepz": 3}}}}, "stages.source.train.max_stepz"),
    ({"execution": {"reuse_actor": True}}, "execution.reuse_actor"),
])
def test_unknown_key_names_key_and_file(tmp_path, data, key):
    path = write_sweep(tmp_path, data)
    with pytest.raises(ConfigError) as err:
        load_sweep(str(path))
    assert repr(key) in str(err.value) and str(path) in str(err.value)


@pytest.mark.parametrize("data, key", [
    ({"trial": {"train": {"max_steps": "many"}}}, "trial.train.max_steps"),
    ({"stages": {"target": {"optim": {"lr": "fast"}}}}, "stages.target.optim.lr"),
    ({"grid": {"source_seeds": [1, "two"]}}, "grid.source_seeds[1]"),
    ({"execution": {"max_failures": True}}, "execution.max_failures"),
])
def test_bad_type_names_key_and_file(tmp_path, data, key):
    path = write_sweep(tmp_path, data)
    with pytest.raises(ConfigError) as err:
        load_sweep(str(path))
    assert key in str(err.value) and str(path) in str(err.value)


def test_unknown_task_names_key_and_file(tmp_path):
    path = write_sweep(tmp_path, {"grid": {"targets": ["syn_and01", "syn_nope"]}})
    with pytest.raises(ConfigError) as err:
        load_sweep(str(path))
    assert "grid.targets[1]" in str(err.value) and "syn_nope" in str(err.value) and str(path) in str(err.value)


@pytest.mark.parametrize("data, text", [
    ({"grid": {"sources": ["syn_has0"], "targets": ["syn_has0"]}}, "both sources and targets"),
    ({"resources": {"use_gpu": "sometimes"}}, "resources.use_gpu"),
    ({"stages": {"transfer": {"prompt": {"length": 7}}}}, "same model and prompt.length"),
    ({"engine": "jax"}, "engine"),
    ({"trial": {"optim": {"name": "sgd"}}}, "sgd"),  # the engine's own check lists valid optimisers
])
def test_bad_values_fail_with_the_file(tmp_path, data, text):
    path = write_sweep(tmp_path, data)
    with pytest.raises(ConfigError) as err:
        load_sweep(str(path))
    assert text in str(err.value) and str(path) in str(err.value)


def test_cli_exits_non_zero_on_a_bad_file(tmp_path, capsys):
    path = write_sweep(tmp_path, {"trial": {"optim": {"lrr": 1.0}}})
    assert main(["tune", "--sweep", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "trial.optim.lrr" in err and str(path) in err
    assert main(["tune", "--sweep", "no_such_sweep", "--dry-run"]) == 2
    assert "known sweeps" in capsys.readouterr().err


def test_dry_run_prints_plan_and_resources(tmp_path, capsys):
    # the paper sweep needs GPUs: on this CPU-only machine the plan is printed, and the exit status says it cannot run
    assert main(["transfer", "--sweep", "paper", "--dry-run", "--storage", str(tmp_path)]) == 3
    out = capsys.readouterr().out
    assert "tune: 69 trials" in out and "transfer: 390 trials" in out
    assert f"{tmp_path}/paper/transfer/mnli__boolq/seed=28" in out
    assert "per trial: CANNOT RUN HERE" in out and "asks for GPUs" in out
    assert not (tmp_path / "paper").exists()  # started nothing, wrote nothing
    # a runnable plan exits 0 and shows one resolved trial per role, overrides applied
    assert main(["transfer", "--sweep", "smoke", "--dry-run", "--storage", str(tmp_path),
                 "--set", "trial.train.max_steps=7", "--set", "grid.target_seeds=[5]"]) == 0
    out = capsys.readouterr().out
    assert "per trial: 1 CPU, 0 GPU" in out and "CANNOT" not in out
    resolved = out.split("resolved settings of one trial per role:")[1]
    assert all(f"  {role}:" in resolved for role in ("source", "target", "transfer"))
    assert "max_steps: 7" in resolved and "seed: 5" in resolved and "source: syn_has0" in resolved
    assert "max_steps: 30," in resolved  # the source stage keeps its own override
