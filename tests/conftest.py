"""Shared test set-up: everything offline, Ray without auth, a tiny frozen T5 on the synthetic tasks."""

import os

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # a local Ray started in a test: loopback only

import pytest  # noqa: E402

from itsel_ray.schema import merge  # noqa: E402
from itsel_ray.trial_config import TrialConfig  # noqa: E402

TINY_MODEL = {
    "config": {"d_model": 128, "d_ff": 512, "num_layers": 2, "num_decoder_layers": 2, "num_heads": 4, "d_kv": 32,
               "dropout_rate": 0.0},
    "tokenizer": "vocab:synthetic",
}


# Torch threads of the engine tests' trials. 1 by default (fast and quiet on a shared 2-core machine); the numerical
# tests must also hold with more, since the reduction order changes with the thread count: check with
# `ITSEL_RAY_TEST_THREADS=2 python -m pytest` (and the SIMD paths with ATEN_CPU_CAPABILITY=default, see README).
TEST_THREADS = int(os.environ.get("ITSEL_RAY_TEST_THREADS", "1"))


def tiny_trial(**overrides) -> TrialConfig:
    """A trial on a synthetic task with a tiny random frozen T5; nested overrides merge into the defaults."""
    base = {
        "task": "syn_has0",
        "seed": 0,
        "model": TINY_MODEL,
        "prompt": {"length": 10, "init": "vocab_sample", "population": 300},
        "optim": {"name": "adam", "lr": 0.3, "weight_decay": 0.0, "schedule": "constant", "max_grad_norm": None},
        "train": {"max_steps": 20, "batch_size": 16, "eval_every": 10, "save_every": 10, "loss": "label",
                  "eval_mode": "rank", "max_eval_examples": 64, "threads": TEST_THREADS},
    }
    return TrialConfig.from_dict(merge(base, overrides))


# Tiny random decoder-only models of the two layouts the causal engine knows (GPT-2's; Llama's, with grouped-query
# attention). initializer_range 0.2 rather than the families' 0.02: with weights that small a random frozen model
# passes almost nothing of the input on to the last position, and no prompt could learn a task through it.
TINY_CAUSAL_MODELS = {
    "gpt2": {"config": {"model_type": "gpt2", "n_embd": 64, "n_layer": 2, "n_head": 4, "n_positions": 256,
                        "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0, "initializer_range": 0.2},
             "tokenizer": "vocab:synthetic"},
    "llama": {"config": {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                         "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 256,
                         "initializer_range": 0.2},
              "tokenizer": "vocab:synthetic"},
}


def tiny_causal_trial(family: str = "llama", **overrides) -> TrialConfig:
    """`tiny_trial` on a tiny random causal LM of `family`; `model` overrides merge into that model's entry."""
    model = merge(TINY_CAUSAL_MODELS[family], overrides.pop("model", {}))
    data = tiny_trial(**overrides).to_dict()
    data["model"] = model
    return TrialConfig.from_dict(data)


@pytest.fixture
def trial_cfg():
    return tiny_trial


@pytest.fixture(scope="session")
def s3_server():
    """A real S3 server (moto) on a free loopback port for the whole session; this process's AWS_* environment
    points at it (fake credentials), as a user's would at AWS."""
    pytest.importorskip("moto")
    from tests.s3_server import S3Server, apply_env, restore_env

    server = S3Server().start()
    old = apply_env(server)
    try:
        yield server
    finally:
        restore_env(old)
        server.stop()
