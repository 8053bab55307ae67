"""analysis/*.yaml parse strictly into AnalysisConfig; errors name the key and the file."""

from pathlib import Path

import pytest

from itsel_ray.analysis import analysis_config_from_dict, load_analysis_config
from itsel_ray.schema import ConfigError

ANALYSIS = Path(__file__).resolve().parents[1] / "analysis"


@pytest.mark.parametrize("name", ["paper", "demo"])
def test_shipped_definitions_parse(name):
    cfg = load_analysis_config(ANALYSIS / f"{name}.yaml")
    labels = [label for label, _, _ in cfg.resolved_selectors()]
    assert {"RANDOM", "SIZE", "SEMB-B", "SEMB-R", "FEATURE", "UNIGRAM", "MAX", "PROBE"} <= set(labels)
    assert "PROBE" in cfg.labels_for(cfg.table4_selectors)
    assert [m.label for m in cfg.metric_specs()] == ["ndcg", "regret@1", "regret@3", "spearman", "kendall"]
    assert cfg.ranking.gain == "exp2_raw" and cfg.options.max_direction == "target_centric"
    assert cfg.options.normalize is True
    src = dict((label, opts) for label, _, opts in cfg.resolved_selectors())["MAX-SRC"]
    assert src.max_direction == "source_centric"


def test_demo_definition_names_the_demo_tasks():
    # Figure 4's targets are demo targets, and every group holds a demo source (else Table 3 drops it with a note).
    from itsel_ray.analysis.meta import resolve_metadata
    from itsel_ray.runs.sweep_file import load_sweep

    cfg = load_analysis_config(ANALYSIS / "demo.yaml")
    grid = load_sweep("demo").grid
    assert cfg.tsne_targets and set(cfg.tsne_targets) <= set(grid.targets)
    categories = {m.category for m in resolve_metadata(grid.sources).values()}
    assert set(cfg.groups) <= categories
    assert cfg.labels_for(cfg.table4_selectors)[-3:] == ["MAX-TOPK", "PROBE", "LOGME"]


def test_unknown_key_names_key_and_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nranking:\n  gian: linear\n")
    with pytest.raises(ConfigError, match=r"ranking\.gian.*bad\.yaml"):
        load_analysis_config(path)


@pytest.mark.parametrize("data, match", [
    ({"selectors": ["max", "maxx"]}, r"unknown selector 'maxx'.*valid names: .*feature"),
    ({"metrics": ["ndcg", "precision@1"]}, r"unknown ranking metric 'precision'.*regret"),
    ({"ranking": {"gain": "cubic"}}, r"unknown gain 'cubic'.*exp2_raw"),
    ({"ranking": {"relevance": "mean"}}, r"per_seed"),
    ({"options": {"max_direction": "up"}}, r"max_direction 'up'.*source_centric"),
    ({"selectors": [{"selector": "max", "options": {"dirn": "x"}}]}, r"dirn"),
    ({"selectors": ["max", {"selector": "max"}]}, r"label 'MAX' appears twice"),
    ({"groups": ["regression"]}, r"groups.*classification"),
    ({"options": {"fusion": ["max", "random"]}}, r"cannot fuse 'random'"),
    ({"selectors": ["size"], "table4_selectors": ["maxx"]}, r"table4_selectors"),
])
def test_bad_values_fail_with_a_named_reason(data, match):
    with pytest.raises(ConfigError, match=match):
        analysis_config_from_dict(data, where="t.yaml")
