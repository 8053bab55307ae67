"""Model-backed selector inputs are declared once: an input and its selector registered here, outside the package,
flow through the sweep's model table, the analysis and `rank` without any package edit (the smoke sweep's tiny
random T5: prompts [4, 32])."""

import json

import numpy as np
import pandas as pd
import pytest

from itsel_ray import rank
from itsel_ray.analysis import analysis_config_from_dict, run_analysis, study_from_sweep
from itsel_ray.analysis.cells import ALL
from itsel_ray.analysis.synthetic import synthetic_study, write_sweep_folder
from itsel_ray.artifacts import save_prompt
from itsel_ray.engine import get_engine
from itsel_ray.runs import model_tables
from itsel_ray.runs.storage import Storage
from itsel_ray.runs.sweep_file import load_sweep
from itsel_ray.selection import MODEL_INPUTS, SELECTORS, register_model_input, register_selector
from itsel_ray.selection.base import given_scores

SOURCES = ("syn_has0", "syn_has1", "syn_has2")


def feature_norm(readout) -> dict[str, float]:
    """A user's input: the mean L2 norm of each source prompt's pooled features of the target's sampled rows."""
    return {source: float(np.linalg.norm(f, axis=1).mean()) for source, f in readout.features().items()}


@pytest.fixture
def featnorm(monkeypatch):
    """`featnorm` registered as a model-backed input and FEATNORM as its selector, for this test only."""
    monkeypatch.setattr(MODEL_INPUTS, "_items", dict(MODEL_INPUTS._items))
    monkeypatch.setattr(SELECTORS, "_items", dict(SELECTORS._items))
    register_model_input("featnorm", description="mean norm of the pooled features", examples=32)(feature_norm)

    @register_selector("featnorm", label="FEATNORM", needs=("featnorm",))
    def featnorm_scores(inp, opts):
        return given_scores("featnorm", inp)

    return MODEL_INPUTS.get("featnorm")


@pytest.fixture
def library(tmp_path):
    rng = np.random.default_rng(3)
    prompts = {name: rng.normal(size=(4, 32)).astype(np.float32) for name in SOURCES}
    for name, arr in prompts.items():
        save_prompt(tmp_path / "lib" / f"{name}.npy", arr)
    return tmp_path / "lib", prompts


def expected_scores(target: str, prompts: dict, examples: int) -> tuple[dict, int]:
    sweep = load_sweep("smoke")
    cfg = sweep.trial_config("transfer", task=target, seed=sweep.grid.target_seeds[0])
    readout = get_engine(sweep.spec.engine).readout(cfg, prompts, max_examples=examples)
    return feature_norm(readout), readout.rows


def test_a_new_input_reaches_rank_through_the_sweeps_engine(featnorm, library, capsys):
    lib, prompts = library
    code = rank.main(["--selector", "featnorm", "--target", "syn_and01", "--sweep", "smoke", "--library", str(lib),
                      "--format", "json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    doc = json.loads(captured.out)
    expected, n = expected_scores("syn_and01", prompts, featnorm.examples)
    assert n == 32 and "note: featnorm: 32 training rows of syn_and01" in captured.err
    assert doc["selector"] == "FEATNORM" and [r["source"] for r in doc["ranking"]] == sorted(
        expected, key=lambda s: -expected[s])
    assert {r["source"]: r["score"] for r in doc["ranking"]} == pytest.approx(expected, rel=1e-12)
    assert rank.main(["--selector", "featnorm", "--library", str(lib)]) == 2
    assert "featnorm reads the source prompts through a sweep's frozen model (mean norm of the pooled features)" \
        in capsys.readouterr().err


def test_a_new_input_gets_its_model_table_from_the_sweep(featnorm, library, tmp_path, monkeypatch):
    lib, prompts = library
    sweep = load_sweep("smoke")
    cfg = analysis_config_from_dict({"selectors": ["random", "featnorm"]})
    assert model_tables.needed_model_inputs(cfg) == ["featnorm"]
    demo = analysis_config_from_dict({"selectors": ["max", {"selector": "fusion", "options": {"fusion": ["probe",
                                                                                                       "size"]}},
                                                    "logme"]})
    assert model_tables.needed_model_inputs(demo) == ["logme", "probe"]
    monkeypatch.setattr(model_tables, "persist_source_prompts", lambda sweep, storage: (prompts, {}))
    storage = Storage(tmp_path / "store")
    table = model_tables.write_model_table("featnorm", sweep, storage)
    written = pd.read_csv(tmp_path / "store" / "results" / "featnorm.csv")
    assert list(written.columns) == model_tables.COLUMNS and len(written) == len(SOURCES) * len(sweep.grid.targets)
    for target in sweep.grid.targets:
        expected, n = expected_scores(target, prompts, featnorm.examples)
        rows = table[table.target == target].set_index("source")
        assert rows["score"].to_dict() == pytest.approx(expected, rel=1e-12) and set(rows["examples"]) == {n}
        assert set(rows["error"]) == {""}


def test_a_new_input_is_read_scored_and_reported_by_the_analysis(featnorm, tmp_path):
    study = synthetic_study(n_sources=4, n_targets=2, seeds=(28,), steps=(10,), tokens=2, dim=3)
    folder = write_sweep_folder(study, tmp_path / "results")
    cfg = analysis_config_from_dict({"selectors": ["random", "featnorm"], "metrics": ["ndcg", "regret@1"],
                                     "table4_selectors": ["random"], "step_selectors": [], "groups": []})
    messages = run_analysis(study_from_sweep(folder), cfg, tmp_path / "without").messages
    assert any("skipped FEATNORM: the study has no featnorm scores (no featnorm.parquet|csv" in m for m in messages)
    scores = np.arange(8, dtype=float).reshape(2, 4)  # target t ranks the sources in their order, reversed
    pd.DataFrame([{"target": t, "source": s, "score": scores[ti, si]} for ti, t in enumerate(study.targets)
                  for si, s in enumerate(study.sources)]).to_csv(folder / "featnorm.csv", index=False)
    read = study_from_sweep(folder)
    np.testing.assert_array_equal(read.model_scores["featnorm"], scores)
    result = run_analysis(read, cfg, tmp_path / "with")
    tidy = result.tidy[(result.tidy.selector == "FEATNORM") & (result.tidy.group == ALL)]
    truth = study.transfer[:, :, 0]
    expected = [(truth[:, t].max() - truth[3, t]) / truth[:, t].max() * 100 for t in range(2)]  # the last source
    assert sorted(tidy["regret@1"]) == pytest.approx(sorted(expected))
    assert "- featnorm: mean norm of the pooled features for 8 of 8 (target, source) pairs" in \
        result.report.read_text()


def test_a_model_input_name_is_checked(featnorm):
    for bad in ("Feat Norm", "prompts", "results"):
        with pytest.raises(ValueError, match="a name is lowercase letters, digits"):
            register_model_input(bad, description="x")
    with pytest.raises(ValueError, match="model-backed selector input 'featnorm' is already registered"):
        register_model_input("featnorm", description="again")(feature_norm)
    with pytest.raises(ValueError, match="unknown requirements \\['nothing'\\]"):
        register_selector("needs-nothing", label="X", needs=("nothing",))
