"""The causal engine's memory model: the tensors autograd keeps, measured on CPU tensor by tensor on tiny random
GPT-2-, Llama- and Qwen3-layout models, and the published checkpoints' parameter counts from their config fields."""

import subprocess
import sys

import pytest

from itsel_ray.engine.base import GIB
from itsel_ray.engine.causal import CAUSAL
from itsel_ray.engine.causal.memory import predict_trial_memory, trial_memory
from itsel_ray.engine.causal.memory_probe import measure_step
from itsel_ray.engine.causal.shapes import shape_from_config
from tests.conftest import tiny_causal_trial

GPT2 = {"model_type": "gpt2", "vocab_size": 500, "n_embd": 64, "n_layer": 2, "n_head": 4, "n_positions": 256,
        "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0}
SHAPES = {
    "gpt2": GPT2,
    "gpt2-dropout": {**GPT2, "resid_pdrop": 0.1, "embd_pdrop": 0.1, "attn_pdrop": 0.1},  # CPU: the math attention
    "llama": {"model_type": "llama", "vocab_size": 500, "hidden_size": 64, "intermediate_size": 192,
              "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2},
    "qwen3": {"model_type": "qwen3", "vocab_size": 500, "hidden_size": 64, "intermediate_size": 192,
              "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16},
}
# Measured on CPU (torch 2.13, transformers 5.25): kept bytes predicted 0.998-1.000 of the saved tensors; the step
# peak 1.02-1.05x (fp32) and 1.11-1.21x (bf16) the measured one. With checkpointing the kept bytes are
# under-predicted (0.77-0.81: tensors the blocks share outside the recomputed region), the peak 1.02-1.36x.
SAVED_TOLERANCE = 0.01
CHECKPOINTED_RETAINED = (0.7, 1.0)


def _predict(config, precision, checkpointing=False, batch=4, input_tokens=60, target_tokens=8):
    return predict_trial_memory(config, batch=batch, input_tokens=input_tokens, target_tokens=target_tokens,
                                precision=precision, activation_checkpointing=checkpointing, device="cpu",
                                prompt_tokens=10)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("name", SHAPES)
def test_predicted_activations_match_the_saved_tensors_measured_on_cpu(name, precision):
    measured = measure_step(SHAPES[name], batch=4, input_tokens=60, target_tokens=8, precision=precision)
    est = _predict(SHAPES[name], precision)
    assert est.activations == pytest.approx(measured.saved, rel=SAVED_TOLERANCE)
    assert est.activations == pytest.approx(measured.retained, rel=SAVED_TOLERANCE)
    # the workspace makes the prediction an upper bound of the step's peak, not a gross one
    assert measured.peak <= est.activations + est.workspace <= 1.25 * measured.peak


@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_checkpointing_keeps_a_fraction_and_the_peak_stays_bounded(name):
    plain = measure_step(SHAPES[name], batch=4, input_tokens=60, target_tokens=8, precision="fp32")
    ckpt = measure_step(SHAPES[name], batch=4, input_tokens=60, target_tokens=8, precision="fp32",
                        activation_checkpointing=True)
    est = _predict(SHAPES[name], "fp32", checkpointing=True)
    low, high = CHECKPOINTED_RETAINED
    assert low * ckpt.retained <= est.activations <= high * ckpt.retained
    assert ckpt.retained < plain.retained / 2
    assert ckpt.peak <= est.activations + est.workspace <= 1.5 * ckpt.peak


@pytest.mark.parametrize("config, parameters", [
    ({"model_type": "gpt2"}, 124_439_808),  # gpt2 (openai-community/gpt2)
    ({"model_type": "llama", "vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 11008,
      "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32}, 6_738_415_616),  # Llama-2-7B
    ({"model_type": "qwen2", "vocab_size": 151936, "hidden_size": 896, "intermediate_size": 4864,
      "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2,
      "tie_word_embeddings": True}, 494_032_768),  # Qwen2.5-0.5B
], ids=["gpt2", "llama-2-7b", "qwen2.5-0.5b"])
def test_published_checkpoints_have_the_parameters_their_config_fields_give(config, parameters):
    assert shape_from_config(config).parameter_count() == parameters


def test_the_model_is_pure_python_importable_without_torch():
    code = ("import sys; from itsel_ray.engine.causal.memory import predict_trial_memory as p; "
            "e = p({'model_type': 'gpt2'}, batch=8, input_tokens=200, target_tokens=4, precision='bf16'); "
            "print(e.total > 0, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "False"]


def test_a_trial_config_is_sized_at_its_task_limits_and_the_engine_asks_the_model():
    cfg = tiny_causal_trial("gpt2", train={"batch_size": 16, "micro_batch_size": 8, "loss": "sequence"})
    est = CAUSAL.predict_memory(cfg, device="cpu")
    assert est == trial_memory(cfg, device="cpu")
    # prompt 10 + max source 64 + the separator's bound 4, target 4: the engine's longest sequence
    assert est == predict_trial_memory(
        shape_from_config({**cfg.model.config, "vocab_size": 277}), batch=16, micro_batch=8,
        input_tokens=10 + 64 + 4, target_tokens=4, precision="fp32", device="cpu", prompt_tokens=10,
        eval_batch=cfg.train.eval_batch_size, optimizer="adam")
    label = CAUSAL.predict_memory(tiny_causal_trial("gpt2", train={"batch_size": 16, "micro_batch_size": 8}),
                                  device="cpu")
    assert label.activations > est.activations  # a row per label word: the multi-token upper bound


def test_a_7b_model_in_bf16_at_the_papers_lengths():
    llama = {"model_type": "llama", "vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 11008,
             "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32}
    kw = dict(batch=32, micro_batch=4, input_tokens=100 + 512 + 4, target_tokens=8, device="cuda")
    bf16 = predict_trial_memory(llama, precision="bf16", **kw)
    assert bf16.weights == 4 * 6_738_415_616  # fp32 frozen weights, as the engine loads them
    assert bf16.details["weight_copies"] == pytest.approx(2 * 32 * shape_from_config(llama).layer_weights())
    ckpt = predict_trial_memory(llama, precision="bf16", activation_checkpointing=True, **kw)
    assert ckpt.activations < bf16.activations / 5
    assert 25 * GIB < bf16.weights < 26 * GIB
