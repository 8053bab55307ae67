"""The causal engine chosen in a sweep file (`engine: causal`): its options checked by the same strict schema before
anything starts, `--dry-run` describing and sizing its model, and the offline demo on a tiny causal LM."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from itsel_ray import cli
from itsel_ray.engine import get_engine
from itsel_ray.runs.sweep_file import load_sweep
from itsel_ray.schema import ConfigError
from itsel_ray.trial_config import TrialConfig

ROOT = Path(__file__).resolve().parents[1]
GPT2_SMALL = {"model_type": "gpt2", "vocab_size": 50257, "n_embd": 768, "n_layer": 12, "n_head": 12,
              "n_positions": 1024, "activation_function": "gelu_new"}


def test_the_demo_causal_sweep_names_the_causal_engine_and_its_model():
    sweep = load_sweep("demo-causal")
    assert sweep.spec.engine == "causal"
    cfg = sweep.trial_config("transfer", task="syn_and01", seed=28, source="syn_has0")
    info = get_engine("causal").describe_model(cfg.model)
    assert (info.family, info.d_model) == ("llama", 64)


@pytest.mark.parametrize("sweep, overrides, match", [
    ("demo-causal", ["trial.model.config.n_layers=3"], r"demo-causal.yaml: stage 'source', task 'syn_has0': "
                                                       r"model.config.n_layers is not a LlamaConfig field"),
    ("demo-causal", ["trial.prompt.length=200"], r"prompt.length 200 .* more than the 256 of 'model.config'"),
    ("demo-causal", ["trial.model.config.model_type=t5"], r"a t5 model is not a decoder-only family .*engine: t5"),
    ("smoke", ["engine=causal"], "model.config.model_type must name the family of the random model"),
    # and the other way round: a Llama config is no T5Config, and the refusal says where it runs
    ("demo-causal", ["engine=t5"], r"model.config.model_type 'llama' is not a T5-family model .*engine: causal"),
    ("smoke", ["trial.model.config.model_type=gpt2"], r"model.config.model_type 'gpt2' is not a T5-family model"),
])
def test_an_option_the_engine_cannot_run_stops_the_sweep_file_naming_it(sweep, overrides, match):
    with pytest.raises(ConfigError, match=match):
        load_sweep(sweep, overrides=overrides)


def test_dry_run_describes_and_sizes_a_causal_checkpoint_for_the_papers_grid(tmp_path, capsys):
    folder = tmp_path / "gpt2"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(GPT2_SMALL))
    code = cli.main(["transfer", "--sweep", "paper", "--dry-run", "--set", "engine=causal",
                     "--set", f"trial.model.name={folder}", "--set", "resources.use_gpu=auto",
                     "--set", "resources.gpu_memory_gb=80"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"model: {folder}: gpt2, d_model 768, vocab 50,257, 124.4M parameters" in out
    sweep = load_sweep("paper", overrides=["engine=causal", f"trial.model.name={folder}"])
    for role, task in (("source", "squad"), ("target", "rte")):
        cfg = sweep.trial_config(role, task=task, seed=0)
        gib = get_engine("causal").predict_memory(cfg).total / 2**30
        assert any(line.split()[:3] == [role, task, f"{gib:.1f}"] for line in out.splitlines()), out


def _reduced(path: Path) -> Path:
    raw = yaml.safe_load((ROOT / "sweeps" / "demo-causal.yaml").read_text())
    raw["name"] = "demo-causal-reduced"
    raw["grid"] = {"sources": ["syn_has0", "syn_has2", "syn_has3"], "targets": ["syn_and01", "syn_cnt2"],
                   "source_seeds": [42], "target_seeds": [28]}
    raw["trial"]["train"].update({"max_steps": 20, "eval_every": 10, "save_every": 10, "max_eval_examples": 100})
    raw["stages"]["source"]["train"] = {"max_steps": 40, "eval_every": 20, "save_every": 20}
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.mark.slow
def test_a_reduced_causal_demo_runs_tune_transfer_and_analysis(tmp_path):
    sweep = _reduced(tmp_path / "demo-causal-reduced.yaml")
    storage = tmp_path / "runs"
    cmd = [sys.executable, "-m", "itsel_ray.sweep", "transfer", "--sweep", str(sweep), "--storage", str(storage),
           "--no-dashboard", "--quiet"]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    root = storage / "demo-causal-reduced"
    results = pd.read_csv(root / "results" / "results.csv")
    assert len(results) == 3 + 2 + 3 * 2 and set(results.status) == {"done"}
    assert all(math.isfinite(s) and 0 <= s <= 100 for s in results.score)
    stored = TrialConfig.from_dict(json.loads((root / "tune" / "syn_has0" / "seed=42" / "config.json").read_text())
                                   ["config"])
    assert stored.model.config["model_type"] == "llama"
    for name in ("probe", "logme"):  # read from the causal model under each source prompt
        table = pd.read_csv(root / "results" / f"{name}.csv")
        assert len(table) == 3 * 2 and table.score.notna().all(), table
    table3 = pd.read_csv(root / "analysis" / "table3_all_metrics.csv").set_index("selector")
    assert {"RANDOM", "MAX", "FEATURE", "PROBE", "LOGME"} <= set(table3.index)
