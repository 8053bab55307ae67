"""Command-line and sweep-file inputs that used to pass silently: each is now one line naming the key or value and
what is expected (exit 2), before anything starts; and `threads` no longer decides a trial's identity."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save

from itsel_ray.analyze import main as analyze_main
from itsel_ray.rank import main as rank_main
from itsel_ray.runs.sweep_file import load_sweep
from itsel_ray.runs.trial_state import fingerprint
from itsel_ray.schema import ConfigError
from itsel_ray.sweep import cli, exit_codes
from itsel_ray.trial_config import TrialConfig


def run(capsys, argv) -> tuple[int, str]:
    code = cli.main(argv)
    return code, capsys.readouterr().err


@pytest.mark.parametrize("setting,message", [
    ("grid.sources=[syn_has0,SYN_HAS0]", "grid.sources lists 'syn_has0' and 'SYN_HAS0', one task"),
    ("grid.targets=[syn_and01,SYN_HAS0]", "are both sources and targets"),
    ("trial.optim.warmup_steps=500", "optim.warmup_steps 500 exceeds train.max_steps"),
    ("trial.train.device=tpu", "train.device must be auto, cpu, cuda, cuda:N or mps, got 'tpu'"),
    ("trial.train.device=cuda:x", "train.device must be auto"),
])
def test_sweep_settings_refused_before_anything_starts(capsys, setting, message):
    code, err = run(capsys, ["tune", "--sweep", "smoke", "--set", setting, "--dry-run"])
    assert code == exit_codes.BAD_INPUT and message in err and "Traceback" not in err


def test_device_names_that_exist_pass():
    for device in ("auto", "cpu", "cuda", "cuda:1", "mps"):
        load_sweep("smoke", overrides=[f"trial.train.device={device}"], check_engine=False)


@pytest.mark.parametrize("flag", ["--sweep", "--storage", "--address"])
def test_an_empty_option_is_not_the_default(capsys, flag):
    code, err = run(capsys, ["tune", flag, "", "--dry-run"])
    assert code == exit_codes.BAD_INPUT and f"error: {flag} is empty" in err


def test_status_of_a_sweep_the_storage_does_not_hold(tmp_path, capsys):
    (tmp_path / "store" / "smoke" / "tune").mkdir(parents=True)
    code, err = run(capsys, ["status", "--sweep", "demo", "--storage", str(tmp_path / "store")])
    assert code == exit_codes.BAD_INPUT
    assert f"no sweep 'demo' in storage {tmp_path / 'store'}: it holds smoke (pass --sweep smoke)" in err
    code, _ = run(capsys, ["status", "--sweep", "smoke", "--storage", str(tmp_path / "store")])
    assert code == exit_codes.OK


def test_threads_are_not_part_of_a_trials_identity():
    base = {"task": "syn_has0", "seed": 1, "train": {"threads": 1}}
    one, four = TrialConfig.from_dict(base), TrialConfig.from_dict({**base, "train": {"threads": 4}})
    unset = TrialConfig.from_dict({**base, "train": {}})
    assert fingerprint(one) == fingerprint(four) == fingerprint(unset)
    assert fingerprint(one) != fingerprint(TrialConfig.from_dict({**base, "train": {"threads": 1, "batch_size": 4}}))


def test_warmup_is_checked_on_a_trial_config_too():
    with pytest.raises(ConfigError, match="optim.warmup_steps 50 exceeds train.max_steps 20"):
        TrialConfig.from_dict({"task": "syn_has0", "seed": 0, "optim": {"warmup_steps": 50},
                               "train": {"max_steps": 20}})


def test_a_ground_truth_that_transfers_a_task_to_itself_is_refused(tmp_path, capsys):
    path = tmp_path / "gt.csv"
    path.write_text("source,boolq,rte\nprompt-text,60.0,55.0\nmnli,65.0,70.0\nrte,62.0,90.0\n")
    code = analyze_main(["--ground-truth", str(path), "--out", str(tmp_path / "o"), "--selectors", "size"])
    err = capsys.readouterr().err
    assert code == 2 and "['rte'] are both a source row and a target column" in err


def test_rank_refuses_a_safetensors_file_without_a_prompt_tensor_or_3d(tmp_path, capsys):
    rng = np.random.default_rng(0)
    lib = tmp_path / "lib"
    lib.mkdir()
    for name in ("mnli", "qqp"):
        np.save(lib / f"{name}.npy", rng.standard_normal((4, 8)).astype(np.float32))
    target = tmp_path / "t.npy"
    np.save(target, rng.standard_normal((4, 8)).astype(np.float32))
    (lib / "cola.safetensors").write_bytes(save({"weights": torch.randn(4, 8)}))
    assert rank_main(["--library", str(lib), "--target-prompt", str(target)]) == 2
    assert "cola.safetensors: no prompt tensor" in capsys.readouterr().err
    (lib / "cola.safetensors").write_bytes(save({"prompt": torch.randn(1, 4, 8)}))
    assert rank_main(["--library", str(lib), "--target-prompt", str(target)]) == 2
    assert "cola.safetensors: a prompt must be 2-D [tokens, d_model], got shape (1, 4, 8)" in capsys.readouterr().err
