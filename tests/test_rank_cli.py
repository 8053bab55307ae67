"""python -m itsel_ray.rank for real use: table / csv / json output, a header naming the target task, SIZE for
sources the project does not declare, sensible precision, and bad input refused with exit status 2."""

import csv
import io
import json

import numpy as np
import pytest

from itsel_ray import rank
from itsel_ray.artifacts import save_prompt


@pytest.fixture()
def library(tmp_path):
    rng = np.random.default_rng(0)
    prompts = {name: rng.normal(size=(4, 6)).astype(np.float32) for name in ("mnli", "qqp", "mytask")}
    lib = tmp_path / "lib"
    for name, p in prompts.items():
        save_prompt(lib / f"{name}.npy", p)
    trial = tmp_path / "runs" / "tune" / "copa" / "seed=28" / "prompts"
    save_prompt(trial / "step_000100.safetensors", prompts["qqp"] + 0.01)
    return lib, trial / "step_000100.safetensors"


def main(capsys, *args):
    code = rank.main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_the_header_names_the_target_task(library, capsys):
    lib, target = library
    code, out, _ = main(capsys, "--library", lib, "--target-prompt", target)
    assert code == 0 and out.splitlines()[0] == "ranking of 3 sources for copa by MAX (higher score = better)"
    code, out, _ = main(capsys, "--library", lib, "--target-prompt", target, "--target", "my-copa")
    assert "for my-copa by MAX" in out.splitlines()[0]
    loose = target.parent.parent.parent.parent.parent / "loose.npy"
    save_prompt(loose, np.ones((4, 6), np.float32))
    code, out, _ = main(capsys, "--library", lib, "--target-prompt", loose)
    assert "for an unnamed target (give --target TASK to name it) by MAX" in out and "loose" not in out


def test_csv_and_json_carry_full_precision(library, capsys):
    lib, target = library
    code, out, err = main(capsys, "--library", lib, "--target-prompt", target, "--selector", "feature",
                          "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and err == "" and [r["rank"] for r in rows] == ["1", "2", "3"] and rows[0]["source"] == "qqp"
    code, out, _ = main(capsys, "--library", lib, "--target-prompt", target, "--selector", "feature",
                        "--format", "json", "--top", "2")
    doc = json.loads(out)
    assert doc["target"] == "copa" and doc["selector"] == "FEATURE" and doc["sources"] == 3
    assert [r["source"] for r in doc["ranking"]] == [r["source"] for r in rows[:2]]
    assert doc["ranking"][0]["score"] == pytest.approx(float(rows[0]["score"]), abs=0)


def test_size_ranks_sources_the_project_does_not_declare(library, tmp_path, capsys):
    lib, _ = library
    code, _, err = main(capsys, "--library", lib, "--selector", "size")
    assert code == 2 and "no training-set size for source(s) ['mytask']" in err and "--size TASK=N" in err
    code, out, _ = main(capsys, "--library", lib, "--selector", "size", "--size", "mytask=500000")
    lines = out.splitlines()
    assert code == 0 and lines[2].split() == ["1", "mytask", "500000"]  # whole numbers: no decimals
    assert lines[3].split() == ["2", "mnli", "392702"]  # a declared task: the registry's size
    sizes = tmp_path / "sizes.csv"
    sizes.write_text("task,size\nmytask,10\nmnli,20\n")
    code, out, _ = main(capsys, "--library", lib, "--selector", "size", "--sizes", sizes, "--format", "json")
    assert [r["source"] for r in json.loads(out)["ranking"]] == ["qqp", "mnli", "mytask"]
    sizes.write_text("task,size\nmytask,lots\n")
    code, _, err = main(capsys, "--library", lib, "--selector", "size", "--sizes", sizes)
    assert code == 2 and "sizes.csv, line 2: size 'lots' is not a whole number" in err
    code, _, err = main(capsys, "--library", lib, "--selector", "size", "--size", "mytask:5")
    assert code == 2 and "expected TASK=N" in err


def test_precision_tells_close_scores_apart():
    assert rank.score_decimals(np.array([0.91234, 0.91201, 0.5])) == 5
    assert rank.score_decimals(np.array([-0.7, -0.2])) == 3
    assert rank.score_decimals(np.array([3.0, 1.0])) == 0
    assert rank.score_decimals(np.array([1e-12, 2e-12])) == 6


@pytest.mark.parametrize("top", ["0", "-1", "two"])
def test_a_bad_top_is_refused(library, capsys, top):
    lib, target = library
    with pytest.raises(SystemExit) as stop:
        rank.main(["--library", str(lib), "--target-prompt", str(target), "--top", top])
    assert stop.value.code == 2 and "--top" in capsys.readouterr().err


@pytest.mark.parametrize("values,match", [
    (np.ones((4, 6), np.int64), "prompt dtype is int64"),
    (np.ones((4, 6), np.bool_), "prompt dtype is bool"),
    (np.zeros((4, 6), np.float32), "the prompt is all zeros"),
])
def test_bad_library_prompts_are_refused_naming_the_file(library, capsys, values, match):
    lib, target = library
    np.save(lib / "qqp.npy", values)
    code, _, err = main(capsys, "--library", lib, "--target-prompt", target)
    assert code == 2 and f"{lib / 'qqp.npy'}: {match}" in err


@pytest.mark.slow
def test_rank_logme_through_the_smoke_sweep(tmp_path, capsys):
    rng = np.random.default_rng(1)
    for name in ("syn_has0", "syn_has1", "syn_has2"):
        save_prompt(tmp_path / f"{name}.npy", rng.normal(size=(4, 32)).astype(np.float32))
    code, out, err = main(capsys, "--selector", "logme", "--target", "syn_and01", "--sweep", "smoke",
                          "--library", tmp_path, "--logme-examples", "48", "--format", "json")
    doc = json.loads(out)
    assert code == 0 and doc["selector"] == "LOGME" and len(doc["ranking"]) == 3
    assert "logme: 48 training rows of syn_and01" in err
    assert all(np.isfinite(r["score"]) for r in doc["ranking"])
    code, _, err = main(capsys, "--selector", "logme", "--library", tmp_path)
    assert code == 2 and "--target TASK and --sweep" in err
