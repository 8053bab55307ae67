"""The memory model of one trial against CPU measurements on small shapes, and the GPU share it gives the sweep."""

import json
import subprocess
import sys

import pytest
import torch

from itsel_ray.engine.t5.memory import GIB, model_shape, predict_trial_memory
from itsel_ray.engine.t5.memory_probe import measure_step
from itsel_ray.engine.t5.shapes import BUILTIN_SHAPES
from itsel_ray.runs.resources import gpu_fraction
from itsel_ray.schema import ConfigError

# Small shapes with the T5 checkpoints' dropout (0.1): three widths, uneven head counts and layer counts; T5 v1.0's
# ReLU FFN (a, b), T5 v1.1 / Flan-T5 / mT5's gated tanh-GELU with an untied head (c), and a gated ReLU (d).
SHAPES = {
    "a": dict(vocab_size=1000, d_model=64, d_ff=256, d_kv=16, num_layers=2, num_decoder_layers=2, num_heads=4),
    "b": dict(vocab_size=500, d_model=48, d_ff=96, d_kv=8, num_layers=3, num_decoder_layers=2, num_heads=3),
    "c": dict(vocab_size=700, d_model=64, d_ff=160, d_kv=16, num_layers=2, num_decoder_layers=3, num_heads=4,
              feed_forward_proj="gated-gelu", tie_word_embeddings=False),
    "d": dict(vocab_size=500, d_model=48, d_ff=96, d_kv=8, num_layers=3, num_decoder_layers=2, num_heads=3,
              feed_forward_proj="gated-relu"),
}
SAVED_TOLERANCE = 0.01  # the kept-tensor inventory is exact on CPU; targets and scalars make up the rest
RETAINED_TOLERANCE_CHECKPOINTED = 0.10


def test_the_model_is_pure_python_importable_without_torch():
    code = ("import sys; from itsel_ray.engine import get_engine; from itsel_ray.trial_config import TrialConfig; "
            "cfg = TrialConfig.from_dict({'task': 'hellaswag', 'seed': 1}); t5 = get_engine('t5'); "
            "t5.describe_model(cfg.model); total = t5.predict_memory(cfg).total; "
            "print(total, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    total, torch_loaded = out.stdout.split()
    assert int(total) > 0 and torch_loaded == "False"


@pytest.mark.parametrize("name, precision, batch, length, targets", [
    ("a", "fp32", 2, 40, 5), ("a", "bf16", 3, 25, 7), ("b", "fp32", 3, 25, 7), ("b", "bf16", 2, 40, 5),
    ("c", "fp32", 2, 40, 5), ("c", "bf16", 3, 25, 7), ("d", "fp32", 3, 25, 7), ("d", "bf16", 2, 40, 5)])
def test_predicted_activations_match_the_saved_tensors_measured_on_cpu(name, precision, batch, length, targets):
    shape = SHAPES[name]
    measured = measure_step(shape, batch=batch, input_tokens=length, target_tokens=targets, precision=precision)
    est = predict_trial_memory(shape, batch=batch, input_tokens=length, target_tokens=targets, precision=precision,
                               device="cpu")
    assert est.activations == pytest.approx(measured.saved, rel=SAVED_TOLERANCE)
    assert est.activations == pytest.approx(measured.retained, rel=SAVED_TOLERANCE)
    # the workspace is an upper bound: the predicted peak is at least the measured one (up to the few bytes of
    # targets and prompt views the inventory leaves out), and not far above it
    predicted_peak = est.activations + est.workspace
    assert measured.peak <= (1 + SAVED_TOLERANCE) * predicted_peak <= 1.25 * measured.peak


@pytest.mark.parametrize("name", ["a", "c"])
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_checkpointing_is_predicted_within_its_tolerance(precision, name):
    shape = SHAPES[name]
    kw = dict(batch=2, input_tokens=40, target_tokens=5, precision=precision)
    plain = measure_step(shape, **kw)
    ckpt = measure_step(shape, **kw, activation_checkpointing=True)
    est = predict_trial_memory(shape, **kw, device="cpu", activation_checkpointing=True)
    assert est.activations == pytest.approx(ckpt.retained, rel=RETAINED_TOLERANCE_CHECKPOINTED)
    assert ckpt.retained < plain.retained / 4
    assert ckpt.peak <= est.activations + est.workspace <= 1.5 * ckpt.peak


def test_micro_batches_divide_the_activations_and_leave_the_weights():
    full = predict_trial_memory("t5-base", batch=32, input_tokens=612, target_tokens=3, precision="bf16")
    micro = predict_trial_memory("t5-base", batch=32, micro_batch=8, input_tokens=612, target_tokens=3,
                                 precision="bf16")
    alone = predict_trial_memory("t5-base", batch=8, input_tokens=612, target_tokens=3, precision="bf16")
    assert micro.activations == alone.activations and micro.weights == full.weights
    copies = full.details["weight_copies"]  # one bf16 copy of the weights, whatever the batch
    assert full.activations - copies == pytest.approx(4 * (micro.activations - copies), rel=1e-6)


def test_t5_base_at_512_plus_100_tokens_costs_what_the_audit_expects():
    kw = dict(batch=32, input_tokens=612, target_tokens=3)
    cpu32 = predict_trial_memory("t5-base", **kw, precision="fp32", device="cpu")
    assert 20 * GIB < cpu32.activations < 40 * GIB  # about 1 GiB per example with the probabilities kept
    cuda16 = predict_trial_memory("t5-base", **kw, precision="bf16")
    cuda32 = predict_trial_memory("t5-base", **kw, precision="fp32")
    assert cuda16.activations < cuda32.activations < cpu32.activations
    ckpt = predict_trial_memory("t5-base", **kw, precision="bf16", activation_checkpointing=True)
    assert ckpt.activations < cuda16.activations / 5
    assert cuda16.weights == pytest.approx(4 * 222.9e6, rel=0.01)
    assert cuda16.details["weight_copies"] > 0 and "weight_copies" not in cuda32.details


@pytest.mark.parametrize("name", ["t5-small", "t5-base", "t5-large"])
def test_builtin_shapes_match_the_parameters_transformers_builds(name):
    from transformers import T5Config, T5ForConditionalGeneration

    s = BUILTIN_SHAPES[name]
    cfg = T5Config(vocab_size=s.vocab_size, d_model=s.d_model, d_kv=s.d_kv, d_ff=s.d_ff, num_layers=s.num_layers,
                   num_heads=s.num_heads)
    with torch.device("meta"):
        model = T5ForConditionalGeneration(cfg)
    assert sum(p.numel() for p in model.parameters()) == s.parameter_count()
    assert BUILTIN_SHAPES[f"google-t5/{name}"] == s


def test_model_shapes_come_from_fields_names_or_config_files(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"d_model": 96, "num_heads": 2, "model_type": "t5"}))
    assert model_shape(str(tmp_path)).d_model == 96
    assert model_shape({"d_model": 64, "unrelated": 1}).d_model == 64
    with pytest.raises(ConfigError, match="model.name 'nope': no config.json found"):
        model_shape("nope")
    with pytest.raises(ValueError, match="FFN activations relu, gelu, gelu_new and silu, not 'tanh'"):
        predict_trial_memory({"feed_forward_proj": "gated-tanh"}, batch=1, input_tokens=8, target_tokens=2,
                             precision="bf16")


def test_the_gated_ffn_keeps_six_tensors_per_layer_where_relu_keeps_one():
    kw = dict(batch=4, input_tokens=20, target_tokens=3, precision="fp32", device="cpu")
    relu, gated = (predict_trial_memory({**SHAPES["a"], "dropout_rate": 0.0, "feed_forward_proj": proj}, **kw)
                   for proj in ("relu", "gated-gelu"))
    tokens = 4 * (20 + 3) * 2  # encoder and decoder positions, two layers each
    assert gated.details["ffn_activation"] - relu.details["ffn_activation"] == 5 * tokens * 256 * 4
    # on CUDA, autocast runs the tanh GELU's pow in fp32: four of the six tensors are fp32 under bf16
    cuda = predict_trial_memory({**SHAPES["a"], "dropout_rate": 0.0, "feed_forward_proj": "gated-gelu"},
                                **{**kw, "precision": "bf16", "device": "cuda"})
    assert cuda.details["ffn_activation"] == tokens * 256 * (4 + 4 + 2 + 4 + 4 + 2)


def test_gpu_fraction_packs_as_many_trials_as_fit():
    est = 10 * GIB
    # each trial needs 10 GiB * 1.15 + 0.59 GiB = 12.1 GiB: 6 fit in 80 GiB, 3 in 40, 1 in 16
    assert gpu_fraction(est, 80 * GIB) == pytest.approx(1 / 6)
    assert gpu_fraction(est, 40 * GIB) == pytest.approx(1 / 3)
    assert gpu_fraction(est, 16 * GIB) == 1.0
    assert gpu_fraction(GIB, 141 * GIB) == pytest.approx(1 / 8)  # capped at max_per_gpu
    with pytest.raises(ValueError, match=r"needs about 12\.1 GiB.*GPU has 12\.0 GiB.*micro_batch_size"):
        gpu_fraction(est, 12 * GIB)


def test_the_paper_trial_fits_an_h100_share():
    est = predict_trial_memory("t5-base", batch=32, input_tokens=612, target_tokens=3, precision="bf16")
    share = gpu_fraction(est.total, 80 * GIB)
    assert share in (1.0, 1 / 2, 1 / 3, 1 / 4, 1 / 5, 1 / 6, 1 / 7, 1 / 8)
    assert est.total * (1 + 0.15) / share <= 80 * GIB


def test_a_trial_config_is_sized_at_its_task_limits():
    from itsel_ray.engine.t5.memory import trial_memory
    from itsel_ray.trial_config import TrialConfig

    cfg = TrialConfig.from_dict({"task": "hellaswag", "seed": 42, "train": {"micro_batch_size": 16}})
    est = trial_memory(cfg)
    assert est == predict_trial_memory("t5-base", batch=32, micro_batch=16, input_tokens=512 + 100, target_tokens=3,
                                       precision="bf16", eval_batch=64)
    label = trial_memory(TrialConfig.from_dict({"task": "hellaswag", "seed": 42, "train": {"loss": "label"}}))
    assert label.activations > trial_memory(TrialConfig.from_dict({"task": "hellaswag", "seed": 42})).activations
    assert trial_memory(cfg, device="cpu").details.get("weight_copies") is None  # auto -> fp32 off CUDA
