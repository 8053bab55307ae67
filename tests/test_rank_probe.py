"""python -m itsel_ray.rank --selector probe: source prompts scored zero-shot through a sweep's frozen model (the
smoke sweep's tiny random T5: prompt length 4, d_model 32; offline, a few seconds)."""

import json

import numpy as np
import pytest

from itsel_ray import rank
from itsel_ray.artifacts import save_prompt


def _library(folder, shape, names=("syn_has0", "syn_has1", "syn_has2")):
    rng = np.random.default_rng(1)
    for name in names:
        save_prompt(folder / f"{name}.npy", rng.normal(size=shape).astype(np.float32))
    return folder


def test_rank_probe_prints_the_ranking_with_the_probe_scores(tmp_path, capsys):
    lib = _library(tmp_path, (4, 32))
    code = rank.main(["--selector", "probe", "--target", "syn_and01", "--sweep", "smoke", "--library", str(lib)])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    assert lines[0].startswith("note: probe: ") and "training rows of syn_and01, loss 'label'" in lines[0]
    assert lines[1] == "ranking of 3 sources for syn_and01 by PROBE (higher score = better)"
    rows = [line.split() for line in lines[3:]]
    assert [r[0] for r in rows] == ["1", "2", "3"]
    assert {r[1] for r in rows} == {"syn_has0", "syn_has1", "syn_has2"}
    shown = [r[2] for r in rows]
    assert len(set(shown)) == 3 and len({len(v.split(".")[1]) for v in shown}) == 1  # one precision, all told apart
    assert [float(v) for v in shown] == sorted((float(v) for v in shown), reverse=True)
    # the exact numbers: --format json
    assert rank.main(["--selector", "probe", "--target", "syn_and01", "--sweep", "smoke", "--library", str(lib),
                      "--format", "json"]) == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert captured.err.startswith("note: probe: ") and doc["target"] == "syn_and01" and doc["selector"] == "PROBE"
    printed = {r["source"]: r["score"] for r in doc["ranking"]}
    assert [r["source"] for r in doc["ranking"]] == [r[1] for r in rows]
    # the same numbers as the engine gives for the smoke sweep's transfer settings at its first target seed
    from itsel_ray.artifacts import load_prompt
    from itsel_ray.engine import get_engine
    from itsel_ray.runs.sweep_file import load_sweep
    from itsel_ray.selection import MODEL_INPUTS

    sweep = load_sweep("smoke")
    cfg = sweep.trial_config("transfer", task="syn_and01", seed=sweep.grid.target_seeds[0])
    readout = get_engine(sweep.spec.engine).readout(
        cfg, {name: load_prompt(lib / f"{name}.npy") for name in printed}, max_examples=256)
    expected, n = MODEL_INPUTS.get("probe").scores(readout), readout.rows
    assert lines[0].startswith(f"note: probe: {n} training rows")
    for name, value in printed.items():
        assert value == pytest.approx(expected[name], abs=1e-12)
        decimals = len(shown[0].split(".")[1])
        assert float(shown[[r[1] for r in rows].index(name)]) == pytest.approx(value, abs=0.51 * 10 ** -decimals)


@pytest.mark.parametrize("args, match", [
    (["--target", "syn_and01"], "--sweep NAME|PATH"),
    (["--sweep", "smoke"], "--target TASK"),
])
def test_rank_probe_without_target_or_sweep_is_an_error(tmp_path, capsys, args, match):
    lib = _library(tmp_path, (4, 32))
    assert rank.main(["--selector", "probe", "--library", str(lib), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: probe reads the source prompts through a sweep's frozen model") and match in err


def test_rank_probe_bad_inputs_are_errors(tmp_path, capsys):
    lib = _library(tmp_path / "lib", (4, 6))  # not the smoke model's (4, 32)
    assert rank.main(["--selector", "probe", "--target", "syn_and01", "--sweep", "smoke", "--library", str(lib)]) == 2
    assert "(4, 6)" in capsys.readouterr().err
    lib = _library(tmp_path / "lib2", (4, 32))
    assert rank.main(["--selector", "probe", "--target", "syn_and01", "--sweep", "nosuchsweep",
                      "--library", str(lib)]) == 2
    assert "nosuchsweep" in capsys.readouterr().err
    assert rank.main(["--selector", "probe", "--target", "syn_nope", "--sweep", "smoke", "--library", str(lib)]) == 2
    assert "syn_nope" in capsys.readouterr().err
