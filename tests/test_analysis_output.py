"""The analysis output folder is replaced whole: a run that fails or is killed midway leaves the old complete
outputs, and no partial folder is taken for the output."""

import os
import subprocess
import sys
import textwrap

import pytest

from itsel_ray.analysis import InputError, analysis_config_from_dict, run_analysis
from itsel_ray.analysis import figures
from itsel_ray.analysis.output_dir import recover
from itsel_ray.analysis.synthetic import synthetic_study

# prompt-free selectors: no step figures to draw, so each run takes a second
CONFIG = {"selectors": ["random", "size"], "metrics": ["ndcg", "regret@1"], "table4_selectors": ["size"],
          "step_selectors": [], "groups": [], "tsne_targets": [], "uncertainty": {"resamples": 200,
                                                                                   "reference": "size"}}


def study(seed=0):
    return synthetic_study(n_sources=4, n_targets=2, seeds=(28,), steps=(10,), tokens=3, dim=4, seed=seed)


def snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture()
def old_outputs(tmp_path):
    out = tmp_path / "analysis"
    run_analysis(study(0), analysis_config_from_dict(CONFIG), out)
    (out / "stale.txt").write_text("from an older run")  # e.g. a figure the next run does not draw
    return out, snapshot(out)


def test_a_failing_writer_leaves_the_old_outputs_whole(old_outputs, monkeypatch):
    out, before = old_outputs

    def broken(*args, **kwargs):  # after every table is written, before the report
        raise RuntimeError("disk full")

    monkeypatch.setattr(figures, "heatmap", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        run_analysis(study(1), analysis_config_from_dict(CONFIG), out)
    assert snapshot(out) == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["analysis"]  # no partial folder left beside it


def test_a_killed_run_leaves_the_old_outputs_and_no_valid_partial_folder(old_outputs):
    out, before = old_outputs
    script = textwrap.dedent(f"""
        import os
        from itsel_ray.analysis import analysis_config_from_dict, run_analysis, figures
        from itsel_ray.analysis.synthetic import synthetic_study
        figures.heatmap = lambda *a, **k: os._exit(9)   # killed midway: no cleanup runs
        study = synthetic_study(n_sources=4, n_targets=2, seeds=(28,), steps=(10,), tokens=3, dim=4, seed=1)
        run_analysis(study, analysis_config_from_dict({CONFIG!r}), {str(out)!r})
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=os.environ)
    assert proc.returncode == 9, proc.stderr
    assert snapshot(out) == before
    partial = [p for p in out.parent.iterdir() if p.name != "analysis"]
    assert len(partial) == 1 and partial[0].name.startswith(".analysis.new-")
    assert (partial[0] / "table3.csv").is_file() and not (partial[0] / "report.md").exists()


def test_a_finished_run_replaces_the_folder_whole(old_outputs):
    out, before = old_outputs
    result = run_analysis(study(1), analysis_config_from_dict(CONFIG), out)
    after = snapshot(out)
    assert "stale.txt" not in {str(p) for p in after}
    assert after.keys() == {k for k in before if str(k) != "stale.txt"}
    assert after != {k: v for k, v in before.items() if str(k) != "stale.txt"}  # new numbers
    assert result.report == out / "report.md" and all(p.is_file() for p in result.files.values())
    assert sorted(p.name for p in out.parent.iterdir()) == ["analysis"]


def test_a_folder_that_is_not_an_analysis_output_is_never_replaced(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("keep me")
    with pytest.raises(InputError, match=r"mine: a folder with other content \(no analysis_config.json"):
        run_analysis(study(0), analysis_config_from_dict(CONFIG), tmp_path / "mine")
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "keep me"


def test_a_run_interrupted_between_two_renames_is_undone(tmp_path):
    out = tmp_path / "analysis"
    parked = tmp_path / ".analysis.old-1234abcd"
    parked.mkdir()
    (parked / "report.md").write_text("old")
    recover(out)
    assert (out / "report.md").read_text() == "old" and not parked.exists()
