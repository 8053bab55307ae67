"""Any T5-family checkpoint by Hub id or folder: its shape read from its own config.json (a folder, or the Hugging
Face cache, offline), used by validation, the memory model and `--dry-run`; an unknown or unsupported model is a
one-line error naming model.name before any trial. The config.json contents are the published checkpoints'."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from itsel_ray.engine.t5 import T5
from itsel_ray.engine.t5.memory import predict_trial_memory, trial_memory
from itsel_ray.engine.t5.shapes import shape_from_config
from itsel_ray.schema import ConfigError
from itsel_ray.sweep import cli
from itsel_ray.trial_config import ModelConfig, TrialConfig
from tests.conftest import tiny_trial

T5_TOKENIZER = Path(__file__).resolve().parents[2] / "shared" / "anchors" / "t5_tokenizer"

COMMON = {"d_kv": 64, "decoder_start_token_id": 0, "dropout_rate": 0.1, "eos_token_id": 1, "initializer_factor": 1.0,
          "is_encoder_decoder": True, "layer_norm_epsilon": 1e-06, "pad_token_id": 0,
          "relative_attention_num_buckets": 32}
CONFIGS = {  # the checkpoints' config.json (task_specific_params and the like left out)
    "t5-base": {**COMMON, "architectures": ["T5WithLMHeadModel"], "model_type": "t5", "d_ff": 3072, "d_model": 768,
                "n_positions": 512, "num_heads": 12, "num_layers": 12, "output_past": True, "vocab_size": 32128},
    "google/t5-v1_1-base": {**COMMON, "architectures": ["T5ForConditionalGeneration"], "model_type": "t5",
                            "d_ff": 2048, "d_model": 768, "feed_forward_proj": "gated-gelu", "num_decoder_layers": 12,
                            "num_heads": 12, "num_layers": 12, "output_past": True, "tie_word_embeddings": False,
                            "vocab_size": 32128},
    "google/flan-t5-base": {**COMMON, "architectures": ["T5ForConditionalGeneration"], "model_type": "t5",
                            "d_ff": 2048, "d_model": 768, "dense_act_fn": "gelu_new", "feed_forward_proj": "gated-gelu",
                            "is_gated_act": True, "n_positions": 512, "num_decoder_layers": 12, "num_heads": 12,
                            "num_layers": 12, "output_past": True, "relative_attention_max_distance": 128,
                            "tie_word_embeddings": False, "torch_dtype": "float32", "transformers_version": "4.23.1",
                            "use_cache": True, "vocab_size": 32128},
    "google/mt5-small": {**COMMON, "architectures": ["MT5ForConditionalGeneration"], "model_type": "mt5",
                         "d_ff": 1024, "d_model": 512, "feed_forward_proj": "gated-gelu", "num_decoder_layers": 8,
                         "num_heads": 6, "num_layers": 8, "tie_word_embeddings": False,
                         "tokenizer_class": "T5Tokenizer", "vocab_size": 250112},
}
# The checkpoints' parameter counts as published (an untied head counted once more than the tied embeddings).
PARAMETERS = {"t5-base": 222_903_552, "google/t5-v1_1-base": 247_577_856, "google/flan-t5-base": 247_577_856,
              "google/mt5-small": 300_176_768}


def write_config(folder: Path, config: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache; `add(repo, config)` puts a snapshot's config.json in it as a download would."""
    import huggingface_hub.constants

    from itsel_ray.engine.t5 import shapes

    root = tmp_path / "hf-cache"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(root))
    shapes._pretrained.cache_clear()

    def add(repo: str, config: dict) -> None:
        folder = root / f"models--{repo.replace('/', '--')}"
        write_config(folder / "snapshots" / "0123abcd", config)
        (folder / "refs").mkdir(parents=True)
        (folder / "refs" / "main").write_text("0123abcd")
        shapes._pretrained.cache_clear()

    yield add
    shapes._pretrained.cache_clear()


@pytest.mark.parametrize("name", CONFIGS)
def test_a_checkpoint_folder_is_described_by_its_own_config(name, tmp_path):
    folder = write_config(tmp_path / name.replace("/", "_"), CONFIGS[name])
    info = T5.describe_model(ModelConfig(name=str(folder)))
    c = CONFIGS[name]
    assert (info.family, info.d_model, info.vocab_size) == (c["model_type"], c["d_model"], c["vocab_size"])
    assert info.parameters == PARAMETERS[name] and info.source == f"config.json from config.json in {folder}"
    T5.validate_config(TrialConfig.from_dict({"task": "rte", "seed": 0, "model": {"name": str(folder)}}))


@pytest.mark.parametrize("name", CONFIGS)
def test_a_hub_id_is_read_from_the_local_cache_offline(name, hf_cache):
    hf_cache(name, CONFIGS[name])
    info = T5.describe_model(ModelConfig(name=name))
    assert info.parameters == PARAMETERS[name] and "the local Hugging Face cache" in info.source


def test_the_builtin_shapes_are_only_a_fallback_for_the_original_names(hf_cache):
    fallback = T5.describe_model(ModelConfig(name="t5-base"))
    assert fallback.parameters == PARAMETERS["t5-base"] and fallback.source.startswith("built-in shape")
    hf_cache("t5-base", {**CONFIGS["t5-base"], "d_model": 512, "num_heads": 8})  # what the cache holds wins
    assert T5.describe_model(ModelConfig(name="t5-base")).d_model == 512


@pytest.mark.parametrize("name, match", [
    ("google/flan-t5-base", r"model\.name 'google/flan-t5-base': no config\.json found: not a local folder, and not "
                            r"in the local Hugging Face cache \(HF_HUB_OFFLINE is set\); give a local folder"),
    ("./no/such/folder", r"model\.name './no/such/folder': no config\.json found: './no/such/folder' is not a folder"),
])
def test_an_unknown_model_is_refused_naming_model_name(name, match, hf_cache):
    with pytest.raises(ConfigError, match=match):
        T5.validate_config(TrialConfig.from_dict({"task": "rte", "seed": 0, "model": {"name": name}}))


def test_a_model_of_another_family_or_without_a_config_is_refused(tmp_path):
    gpt2 = write_config(tmp_path / "gpt2", {"model_type": "gpt2", "n_embd": 768, "n_layer": 12, "vocab_size": 50257})
    with pytest.raises(ConfigError, match=r"model\.name '.*gpt2' is a gpt2 model \(config\.json model_type 'gpt2', "
                                          r"from config\.json in .*\), not a T5-family model \(t5, mt5\) that this "
                                          r"engine runs \(engine: causal runs decoder-only models"):
        T5.describe_model(ModelConfig(name=str(gpt2)))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"model\.name '.*empty': no config\.json found: no config\.json in "):
        T5.describe_model(ModelConfig(name=str(tmp_path / "empty")))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match=r"config\.json is not readable JSON"):
        T5.describe_model(ModelConfig(name=str(tmp_path / "broken")))


@pytest.mark.parametrize("field, value, match", [
    ("d_model", 0, r"d_model must be a positive integer, got 0"),
    ("num_heads", -2, r"num_heads must be a positive integer, got -2"),
    ("d_ff", 64.5, r"d_ff must be a positive integer, got 64\.5"),
    ("dropout_rate", 1.0, r"dropout_rate must be a number in \[0, 1\), got 1\.0"),
])
def test_a_shape_that_cannot_be_built_is_refused_naming_the_field(field, value, match, tmp_path):
    config = {"d_model": 32, "d_ff": 64, "num_layers": 1, "num_heads": 2, "d_kv": 16, field: value}
    with pytest.raises(ConfigError, match=r"model\.config: " + match):
        T5.describe_model(ModelConfig(config=config, tokenizer="vocab:synthetic"))
    folder = write_config(tmp_path / "ckpt", {"model_type": "t5", **config})
    with pytest.raises(ConfigError, match=r"its config\.json does not describe a T5 \(" + match):
        T5.describe_model(ModelConfig(name=str(folder)))


def test_memory_predictions_follow_the_checkpoints_shape(tmp_path):
    """Same task and batch, three checkpoints: the prediction is the memory model at each one's own shape."""
    from itsel_ray.tasks import get_task

    rte, cfgs = get_task("rte"), {}
    for name in ("t5-base", "google/flan-t5-base", "google/mt5-small"):
        folder = write_config(tmp_path / name.replace("/", "_"), CONFIGS[name])
        cfgs[name] = TrialConfig.from_dict({"task": "rte", "seed": 0, "model": {"name": str(folder)}})
        expected = predict_trial_memory(shape_from_config(CONFIGS[name]), batch=32,
                                        input_tokens=rte.max_source_length + 100,
                                        target_tokens=rte.max_target_length, precision="bf16", eval_batch=64)
        assert T5.predict_memory(cfgs[name]) == expected == trial_memory(cfgs[name])
        assert expected.weights == 4 * PARAMETERS[name]
    base, flan, mt5 = (T5.predict_memory(cfgs[n]) for n in cfgs)
    assert flan.details["ffn_activation"] > base.details["ffn_activation"]  # six [T, 2048] tensors vs one [T, 3072]
    assert mt5.weights > base.weights  # its 250K-row embeddings and untied head


def _dry_run(capsys, *overrides: str) -> tuple[int, str, str]:
    args = ["transfer", "--sweep", "paper", "--dry-run", "--set", "resources.use_gpu=auto",
            "--set", "resources.gpu_memory_gb=80"]
    for item in overrides:
        args += ["--set", item]
    code = cli.main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_dry_run_shows_the_checkpoints_shape_and_memory(tmp_path, hf_cache, capsys):
    hf_cache("google/flan-t5-base", CONFIGS["google/flan-t5-base"])
    code, out, err = _dry_run(capsys, "trial.model.name=google/flan-t5-base")
    assert code == 0, err
    assert ("model: google/flan-t5-base: t5, d_model 768, vocab 32,128, 247.6M parameters (config.json from the "
            "local Hugging Face cache)") in out.splitlines()
    cfg = TrialConfig.from_dict({"task": "squad", "seed": 0, "model": {"name": "google/flan-t5-base"},
                                 "optim": {"lr": 0.5}})
    gib = T5.predict_memory(cfg).total / 2**30
    assert any(line.split()[:3] == ["source", "squad", f"{gib:.1f}"] for line in out.splitlines()), out
    folder = write_config(tmp_path / "mt5", CONFIGS["google/mt5-small"])
    code, out, _ = _dry_run(capsys, f"trial.model.name={folder}")
    assert code == 0 and f"model: {folder}: mt5, d_model 512, vocab 250,112, 300.2M parameters" in out


@pytest.mark.parametrize("stage_args", [["transfer", "--dry-run"], ["prepare"]])
def test_an_unknown_model_stops_the_command_with_one_line_before_anything_starts(stage_args, hf_cache, capsys,
                                                                                 tmp_path):
    args = [*stage_args, "--sweep", "paper", "--storage", str(tmp_path / "runs"),
            "--set", "trial.model.name=google/flan-t5-base"]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("error: ") and "model.name 'google/flan-t5-base': no config.json found" in err
    assert not (tmp_path / "runs").exists()  # nothing written, no Ray started


def _tiny_checkpoint(folder: Path, *, model_type: str, vocab: int, tokenizer: Path | None = None) -> Path:
    """A saved T5-family checkpoint (gated-gelu, untied head: the Flan-T5 / mT5 layout) with random weights, and a
    tokenizer beside it: the files of `tokenizer`, else the synthetic tasks' word-level vocabulary."""
    from safetensors.torch import save_file
    from transformers import T5Config, T5ForConditionalGeneration

    config = {"model_type": model_type, "d_model": 32, "d_ff": 48, "d_kv": 8, "num_heads": 4, "num_layers": 2,
              "num_decoder_layers": 2, "feed_forward_proj": "gated-gelu", "tie_word_embeddings": False,
              "vocab_size": vocab, "dropout_rate": 0.0, "decoder_start_token_id": 0, "pad_token_id": 0,
              "eos_token_id": 1}
    torch.manual_seed(0)
    model = T5ForConditionalGeneration(T5Config(**{k: v for k, v in config.items() if k != "model_type"}))
    weights = {k: v.clone().contiguous() for k, v in model.state_dict().items() if "embed_tokens" not in k}
    weights["lm_head.weight"] = torch.randn(vocab, 32) * 0.05  # its own head, as the checkpoints have
    write_config(folder, config)
    save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})
    if tokenizer is not None:
        for f in tokenizer.iterdir():
            if f.suffix in (".json", ".model"):
                shutil.copy(f, folder / f.name)
    else:
        from itsel_ray.data.tokenizers import vocabulary_words, word_tokenizer

        word_tokenizer(vocabulary_words("vocab:synthetic")).save_pretrained(str(folder))
    return folder


@pytest.mark.parametrize("model_type, cls", [("t5", "T5ForConditionalGeneration"),
                                             ("mt5", "MT5ForConditionalGeneration")])
def test_a_local_checkpoint_trains_with_its_own_head_and_the_parameters_it_was_described_with(model_type, cls,
                                                                                             tmp_path):
    folder = _tiny_checkpoint(tmp_path / model_type, model_type=model_type, vocab=300)
    cfg = tiny_trial(model={"name": str(folder), "config": None, "tokenizer": None},
                     prompt={"length": 4}, train={"max_steps": 4, "eval_every": 4, "save_every": 4})
    info = T5.describe_model(cfg.model)
    bb = T5.backbone(cfg.model, "cpu")
    assert type(bb.model).__name__ == cls and info.family == model_type
    assert bb.model.lm_head.weight.data_ptr() != bb.model.shared.weight.data_ptr()  # the head was not tied away
    assert sum(p.numel() for p in bb.model.parameters()) == info.parameters
    result = T5.run_trial(cfg, tmp_path / "trial")
    assert result.status == "done" and np.isfinite(result.best_score)


@pytest.mark.skipif(not T5_TOKENIZER.is_dir(), reason="the real T5 tokenizer anchor is not available")
def test_a_checkpoint_folder_with_the_real_t5_tokenizer_trains_a_task(tmp_path):
    """model.name alone: the weights and the real T5 vocabulary from one folder, as a downloaded Flan-T5 has them."""
    folder = _tiny_checkpoint(tmp_path / "flan", model_type="t5", vocab=32128, tokenizer=T5_TOKENIZER)
    cfg = tiny_trial(task="syn_and01", model={"name": str(folder), "config": None, "tokenizer": None},
                     prompt={"length": 4, "population": 5000},
                     train={"max_steps": 2, "eval_every": 2, "save_every": 2, "max_eval_examples": 16})
    T5.validate_config(cfg)
    assert T5.describe_model(cfg.model).vocab_size == 32128
    bb = T5.backbone(cfg.model, "cpu")
    assert len(bb.tokenizer) == 32100 and bb.vocab_size == 32128  # T5's 100 sentinels beyond the SentencePiece ids
    result = T5.run_trial(cfg, tmp_path / "trial")
    assert result.status == "done" and result.history[0]["valid"] == 100.0  # rank answers with a label word
