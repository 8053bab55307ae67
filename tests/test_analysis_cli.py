"""The two commands: python -m itsel_ray.analyze and python -m itsel_ray.rank (called through main(argv))."""

import pickle
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from itsel_ray import analyze, rank
from itsel_ray.analysis.cells import CellRunner
from itsel_ray.analysis.analysis_file import analysis_config_from_dict
from itsel_ray.analysis.run import build_context
from itsel_ray.analysis.synthetic import synthetic_study, write_sweep_folder
from itsel_ray.artifacts import save_prompt


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    study = synthetic_study(n_sources=5, n_targets=2, seeds=(28,), steps=(10, 20), tokens=4, dim=6)
    return study, write_sweep_folder(study, tmp_path_factory.mktemp("sweep"))


def test_analyze_on_a_results_folder(sweep_dir, tmp_path, capsys):
    _, folder = sweep_dir
    code = analyze.main(["--results", str(folder), "--out", str(tmp_path), "--config", "analysis/demo.yaml",
                         "--selectors", "random", "size", "max", "feature", "--k", "1", "2",
                         "--max-direction", "symmetric", "--normalize", "off"])
    out = capsys.readouterr().out
    assert code == 0
    assert f"report: {tmp_path / 'report.md'}" in out
    assert "regret@2" in out and "MAX" in out and "SEMB" not in out
    assert (tmp_path / "table3.csv").is_file()


def test_analyze_bad_selector_lists_valid_names(tmp_path, capsys):
    code = analyze.main(["--ground-truth", "x.csv", "--out", str(tmp_path), "--selectors", "size", "maximum"])
    err = capsys.readouterr().err
    assert code == 2
    assert "unknown selector 'maximum'" in err and "max-topk" in err and "semb-r" in err


def test_analyze_bad_option_and_bad_file(tmp_path, capsys):
    assert analyze.main(["--ground-truth", "x.csv", "--out", str(tmp_path), "--gain", "cubic"]) == 2
    assert "exp2_raw" in capsys.readouterr().err
    assert analyze.main(["--ground-truth", str(tmp_path / "nope.csv"), "--out", str(tmp_path),
                         "--selectors", "size"]) == 2
    assert "nope.csv" in capsys.readouterr().err


def test_analyze_subprocess_exit_status(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "itsel_ray.analyze", "--ground-truth", "x.csv", "--out",
                           str(tmp_path), "--max-direction", "diagonal"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "target_centric" in proc.stderr and "source_centric" in proc.stderr


@pytest.fixture()
def library(tmp_path):
    # Three sources; the target equals source "b", so MAX and FEATURE rank b first.
    rng = np.random.default_rng(0)
    prompts = {name: rng.normal(size=(4, 6)).astype(np.float32) for name in ("a", "b", "c")}
    lib = tmp_path / "lib"
    for name, p in prompts.items():
        save_prompt(lib / f"{name}.safetensors", p)
    save_prompt(tmp_path / "target.npy", prompts["b"])
    return lib, tmp_path / "target.npy"


def test_rank_prints_the_ranking(library, capsys):
    lib, target = library
    assert rank.main(["--library", str(lib), "--target-prompt", str(target), "--selector", "max"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2].split()[:2] == ["1", "b"] and float(lines[2].split()[2]) == pytest.approx(1.0, abs=1e-6)
    assert len(lines) == 5


def test_rank_from_a_results_folder(sweep_dir, capsys):
    study, folder = sweep_dir
    target = folder / "tune" / study.targets[0] / "seed=28" / "prompts" / "step_000020.safetensors"
    assert rank.main(["--library", str(folder), "--target-prompt", str(target), "--selector", "feature"]) == 0
    out = capsys.readouterr().out
    assert all(s in out for s in study.sources)


def test_rank_errors(library, tmp_path, capsys):
    lib, target = library
    assert rank.main(["--library", str(lib), "--target-prompt", str(target), "--selector", "nearest"]) == 2
    assert "valid names" in capsys.readouterr().err
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"not a prompt")
    assert rank.main(["--library", str(lib), "--target-prompt", str(bad)]) == 2
    assert "broken.safetensors" in capsys.readouterr().err
    assert rank.main(["--library", str(lib), "--selector", "max"]) == 2
    assert "--target-prompt" in capsys.readouterr().err
    assert rank.main(["--library", str(lib), "--target-prompt", str(target), "--selector", "random"]) == 2
    assert "random-draw" in capsys.readouterr().err


def test_cells_are_order_and_process_independent():
    """What the Ray map relies on: the runner pickles, and a cell's result does not depend on the others."""
    study = synthetic_study(n_sources=5, n_targets=2, seeds=(28, 52), steps=(10, 20), tokens=4, dim=6)
    cfg = analysis_config_from_dict({"selectors": ["random", "random-draw", "size", "feature", "max", "mmd",
                                                   "max-topk", "unigram", "fusion"], "step_selectors": []})
    ctx, cells, _ = build_context(study, cfg)
    forward = [CellRunner(ctx)(c) for c in cells]
    shipped = pickle.loads(pickle.dumps(CellRunner(ctx)))
    backward = [shipped(c) for c in reversed(cells)][::-1]
    for a, b in zip(forward, backward):
        pd.testing.assert_frame_equal(pd.DataFrame(a.rows), pd.DataFrame(b.rows), check_exact=True)
        assert a.scores.keys() == b.scores.keys()
        for label in a.scores:
            np.testing.assert_array_equal(a.scores[label], b.scores[label])
