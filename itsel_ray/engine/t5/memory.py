"""Predicted memory of one T5 prompt-tuning trial from the model's shape and the batch: what the sweep packs GPUs by.

Pure arithmetic, no torch import: the sweep's planner and `--dry-run` call it on the driver. The model counts the
tensors autograd keeps for the backward pass of a frozen T5 whose only trainable input is the prompt: with frozen
weights a matrix product keeps its weight (already counted once) and not its input, so what remains per layer is
the LayerNorm inputs, the attention inputs and probabilities, the FFN activation and the dropout masks (an
inventory checked tensor by tensor against `torch.autograd.graph.saved_tensors_hooks` on CPU; see
`engine/t5/memory_probe.py` and `benchmarks/memory_model.py`). bf16 autocast adds one bf16 copy of every
weight a product uses, kept until the backward pass. The FFN follows the checkpoint's `feed_forward_proj`: T5 v1.0's
ReLU keeps one [tokens, d_ff] tensor per layer; the gated FFN of T5 v1.1, Flan-T5 and mT5 (`gated-gelu`: the tanh
GELU that transformers computes element by element, times a second projection) keeps six.

Two device profiles: `cpu` (measured: attention through SDPA's math path, dropout keeping a noise tensor of the
masked tensor's dtype) and `cuda` (SDPA's memory-efficient kernel, which keeps the additive position-bias mask
instead of the probabilities, and boolean dropout masks). The cuda profile follows the kernels' saved tensors
and awaits a measurement with `benchmarks/gpu_sharing.py` (torch.cuda.max_memory_allocated), hence the safety
margin in `gpu_fraction`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

from itsel_ray.engine.base import GIB, MemoryEstimate
from itsel_ray.engine.memory import (
    KeptBytes, check_inputs, estimate, prompt_state_bytes, resolve_precision,
)
from itsel_ray.engine.t5.shapes import T5Shape, resolve_shape, shape_from_config

__all__ = ["GIB", "CALIBRATION", "PROFILES", "MemoryEstimate", "Profile", "T5Shape", "model_shape",
           "predict_trial_memory", "trial_memory"]


@dataclass(frozen=True)
class Profile:
    """Bytes per element of each kind of kept tensor, for one device kind at one precision."""

    residual: int  # LayerNorm inputs (the residual stream stays fp32 under autocast)
    linear: int  # outputs of the matrix products: FFN activations, attention outputs
    qkv: int  # attention queries, keys and values as the attention kernel keeps them
    mask: int | None  # a dropout mask: 1 (CUDA bool) or None (CPU: a noise tensor of the masked tensor's dtype)
    attention: str  # "math": softmax output, mask and dropped probabilities; "efficient": bias copy + logsumexp
    scores: int  # attention probabilities (math) or the additive bias mask (efficient)
    weight_copy: int  # bytes per weight element that autocast copies and keeps (0 without autocast)
    pointwise: int  # results of ops autocast runs in fp32 (CUDA: pow, so most of the tanh GELU), else `linear`


PROFILES: Mapping[tuple[str, str], Profile] = {
    ("cpu", "fp32"): Profile(residual=4, linear=4, qkv=4, mask=None, attention="math", scores=4, weight_copy=0,
                             pointwise=4),
    # CPU autocast runs SDPA in fp32 (fp32 copies of q, k, v), the matrix products in bf16.
    ("cpu", "bf16"): Profile(residual=4, linear=2, qkv=4, mask=None, attention="math", scores=4, weight_copy=2,
                             pointwise=2),
    ("cuda", "fp32"): Profile(residual=4, linear=4, qkv=4, mask=1, attention="efficient", scores=4, weight_copy=0,
                              pointwise=4),
    ("cuda", "bf16"): Profile(residual=4, linear=2, qkv=2, mask=1, attention="efficient", scores=2, weight_copy=2,
                              pointwise=4),
}

# measured / predicted bytes, fitted by `python benchmarks/memory_model.py calibrate` (least squares over small shapes
# on CPU; the inventory is exact there). The cuda entries stay 1.0 until gpu_sharing.py has measured them.
CALIBRATION: Mapping[str, float] = {"cpu": 1.0, "cuda": 1.0}


def _mask(p: Profile, dtype_bytes: int) -> int:
    return dtype_bytes if p.mask is None else p.mask


def _attention(c: KeptBytes, p: Profile, s: T5Shape, rows: int, q_len: int, k_len: int, *, dropout: bool,
               q_kept: bool = True, k_kept: bool = True) -> None:
    """One attention call's kept tensors: q [rows, q_len, inner], k and v [rows, k_len, inner], and the scores."""
    inner, h = s.inner, s.num_heads
    if p.attention == "math":
        c.add("attention_qkv", (q_kept * rows * q_len + (1 + k_kept) * rows * k_len) * inner * p.qkv)
        probs = rows * h * q_len * k_len
        c.add("attention_scores", probs * (p.scores + (_mask(p, p.scores) + p.scores if dropout else 0)))
    else:  # the kernel keeps q, k, v, its output, the logsumexp and the bias mask, whatever needs a gradient
        c.add("attention_qkv", (2 * rows * q_len + 2 * rows * k_len) * inner * p.qkv)
        c.add("attention_lse", rows * h * math.ceil(q_len / 32) * 32 * 4)
        c.add("attention_scores", rows * h * q_len * math.ceil(k_len / 16) * 16 * p.scores)


def _norm(c: KeptBytes, p: Profile, s: T5Shape, tokens: int) -> None:
    c.add("norm_inputs", tokens * (s.d_model * p.residual + 4))


# FFN activation -> (bytes kept per [tokens, d_ff] element by the activation, the dtype bytes of its output)
def _activation(p: Profile, act: str) -> tuple[int, int]:
    if act == "relu":  # keeps its output
        return p.linear, p.linear
    if act in ("gelu", "silu"):  # keep their input
        return p.linear, p.linear
    if act == "gelu_new":  # 0.5 x (1 + tanh(c (x + 0.044715 x^3))): pow's input, tanh, 0.5 x and 1 + tanh
        return 3 * p.pointwise + p.linear, p.pointwise
    raise ValueError(f"the memory model knows the FFN activations relu, gelu, gelu_new and silu, not {act!r}")


def _ffn(c: KeptBytes, p: Profile, s: T5Shape, tokens: int, *, dropout: bool) -> None:
    """act(wi x) (v1.0), or act(wi_0 x) * wi_1 x (gated: the product keeps both factors, the activation's output
    unless it is already the tensor the activation keeps, as ReLU's is); then dropout."""
    _norm(c, p, s, tokens)
    kept, out = _activation(p, s.activation)
    if s.gated:
        kept += p.linear + (0 if s.activation == "relu" else out)
    c.add("ffn_activation", tokens * s.d_ff * kept)
    if dropout:
        c.add("dropout_masks", tokens * (s.d_ff * _mask(p, out) + s.d_model * _mask(p, p.linear)))


def _encoder_layer(c: KeptBytes, p: Profile, s: T5Shape, batch: int, length: int, dropout: bool) -> None:
    tokens = batch * length
    _norm(c, p, s, tokens)
    _attention(c, p, s, batch, length, length, dropout=dropout)
    if dropout:
        c.add("dropout_masks", tokens * s.d_model * _mask(p, p.linear))
    _ffn(c, p, s, tokens, dropout=dropout)


def _decoder_layer(c: KeptBytes, p: Profile, s: T5Shape, rows: int, length: int, targets: int, dropout: bool,
                   first: bool) -> None:
    """Layer 0's self-attention reads only target embeddings, which need no gradient: autograd keeps nothing of
    it, and its cross-attention keeps no key (the query needs no gradient)."""
    tokens = rows * targets
    if not first:
        _norm(c, p, s, tokens)
        _attention(c, p, s, rows, targets, targets, dropout=dropout)
        if dropout:
            c.add("dropout_masks", tokens * s.d_model * _mask(p, p.linear))
        _norm(c, p, s, tokens)
    _attention(c, p, s, rows, targets, length, dropout=dropout, k_kept=not first)
    if dropout:
        c.add("dropout_masks", tokens * s.d_model * _mask(p, p.linear))
    _ffn(c, p, s, tokens, dropout=dropout)


def _kept_tensors(p: Profile, s: T5Shape, *, batch: int, length: int, targets: int, rows: int,
                  checkpointing: bool) -> tuple[KeptBytes, float]:
    """(kept bytes by kind, the largest single block's bytes) of one forward pass."""
    dropout = s.dropout_rate > 0
    c = KeptBytes()
    enc_block = KeptBytes()
    _encoder_layer(enc_block, p, s, batch, length, dropout)
    last = KeptBytes()
    _decoder_layer(last, p, s, rows, length, targets, dropout, first=False)
    first = KeptBytes()
    _decoder_layer(first, p, s, rows, length, targets, dropout, first=True)
    n_dec = s.decoder_layers
    block = max(enc_block.total, last.total if n_dec > 1 else first.total)
    enc_tokens, dec_tokens = batch * length, rows * targets
    if checkpointing:
        # Each block keeps only its inputs. Outside the blocks: the embeddings before and after dropout, each
        # stack's final norm input, dropout mask and output, the fp32 position biases and boolean masks the
        # blocks read, and the log-probabilities (counted on CPU).
        d = s.d_model * p.residual
        c.add("block_inputs", ((s.num_layers + 4) * enc_tokens + (n_dec + 5) * dec_tokens) * d)
        c.add("position_bias", s.num_heads * (length + targets) * (length + targets) * 4
              + batch * length * length + rows * targets * length)
        if p.weight_copy:  # the block being recomputed holds its weight copies, not the forward pass
            enc_w, dec_w = s.linear_weights()
            block += max(enc_w, dec_w) * p.weight_copy
    else:
        for kind, nbytes in enc_block.by_kind.items():
            c.add(kind, nbytes * s.num_layers)
        for kind, nbytes in first.by_kind.items():
            c.add(kind, nbytes)
        for kind, nbytes in last.by_kind.items():
            c.add(kind, nbytes * (n_dec - 1))
        # outside the blocks: the embedding dropout, each stack's final norm and dropout
        for tokens in (enc_tokens, dec_tokens):
            _norm(c, p, s, tokens)
            if dropout:
                c.add("dropout_masks", tokens * s.d_model * _mask(p, p.residual))
        if dropout:
            c.add("dropout_masks", enc_tokens * s.d_model * _mask(p, p.residual))
        if p.weight_copy:
            enc_w, dec_w = s.linear_weights()
            first_dec = dec_w - 5 * s.d_model * s.inner  # layer 0: its self-attention and cross query need no grad
            copies = s.num_layers * enc_w + (n_dec - 1) * dec_w + (first_dec if n_dec else 0)
            c.add("weight_copies", copies * p.weight_copy)
    c.add("log_probs", dec_tokens * s.vocab_size * 4)
    return c, block


def _workspace(p: Profile, s: T5Shape, *, batch: int, length: int, targets: int, rows: int, block: float,
               checkpointing: bool) -> float:
    """Transient bytes on top of the kept tensors at the training peak, the largest of: the head's backward (two
    [rows * targets, V] fp32 gradients), an attention backward (score-sized fp32 gradients on the math path; the
    efficient path builds each layer's bias mask in fp32 before copying it), an FFN backward (two [tokens, d_ff]
    fp32 gradients). Checkpointing adds the block being recomputed. Fitted as an upper bound on CPU measurements.
    """
    head = 2 * rows * targets * s.vocab_size * 4
    scores = batch * s.num_heads * length * length * 4
    attention = 1.25 * scores if p.attention == "math" else scores
    ffn = 2 * batch * length * s.d_ff * 4
    return max(head, attention, ffn) + (block if checkpointing else 0.0)


def _eval_peak(p: Profile, s: T5Shape, *, batch: int, length: int, targets: int, rows: int) -> float:
    """No-gradient evaluation (analytic, not calibrated): the encoder states (repeated per label row for rank
    scoring), one layer's scores and FFN activation, the fp32 logits, and greedy decoding's key/value cache (the
    cross-attention keys and values of every decoder layer, and `targets` self-attention steps)."""
    states = (batch + rows) * length * s.d_model * 4
    scores = batch * s.num_heads * length * length * (8 if p.attention == "math" else 4 + p.scores)
    ffn = batch * length * s.d_ff * (p.linear + 4) * (2 if s.gated else 1)
    cache = s.decoder_layers * 2 * batch * (length + targets) * s.inner * p.linear
    return states + cache + max(scores, ffn) + 2 * rows * targets * s.vocab_size * 4


def model_shape(model: Mapping | str | T5Shape) -> T5Shape:
    """A T5Shape from T5Config fields, a model name or folder (its config.json, `resolve_shape`), or itself."""
    if isinstance(model, T5Shape):
        return model
    if isinstance(model, Mapping):
        return shape_from_config(model)
    return resolve_shape(model, None).shape


def predict_trial_memory(
    model_config: Mapping | str | T5Shape,
    *,
    batch: int,
    micro_batch: int | None = None,
    input_tokens: int,
    target_tokens: int,
    precision: str,
    activation_checkpointing: bool = False,
    device: str = "cuda",
    prompt_tokens: int = 100,
    decoder_rows: int = 1,
    eval_batch: int | None = None,
    optimizer: str = "adafactor",
) -> MemoryEstimate:
    """Peak bytes of one trial: fp32 frozen weights, one micro-batch's kept activations plus the transient workspace
    of its backward pass, the prompt's optimiser state, or evaluation if that is larger.

    input_tokens: encoder positions per example, the prompt's included (e.g. 512 + 100); target_tokens: decoder
    positions (EOS included); decoder_rows: decoder rows per example (1 for the sequence loss and single-token
    labels; the label count for the label loss with multi-token labels). precision "bf16" or "fp32" (resolve
    "auto" first); device "cuda" or "cpu" (the profile). prompt_tokens sizes the optimiser state.
    """
    check_inputs(precision, device, batch=batch, input_tokens=input_tokens, target_tokens=target_tokens,
                 decoder_rows=decoder_rows, micro_batch=micro_batch or 1)
    s = model_shape(model_config)
    if s.num_layers < 1 or s.decoder_layers < 1:
        raise ValueError(f"num_layers and num_decoder_layers must be >= 1, got {s.num_layers} / {s.decoder_layers}")
    p, scale = PROFILES[(device, precision)], CALIBRATION[device]
    micro = min(micro_batch or batch, batch)
    rows = micro * decoder_rows
    kept, block = _kept_tensors(p, s, batch=micro, length=input_tokens, targets=target_tokens, rows=rows,
                                checkpointing=activation_checkpointing)
    workspace = _workspace(p, s, batch=micro, length=input_tokens, targets=target_tokens, rows=rows, block=block,
                           checkpointing=activation_checkpointing)
    eb = eval_batch or batch
    eval_peak = _eval_peak(p, s, batch=eb, length=input_tokens, targets=target_tokens, rows=eb * decoder_rows)
    return estimate(weights=s.parameter_count() * 4, optimizer_state=prompt_state_bytes(optimizer, prompt_tokens,
                    s.d_model), kept=kept, workspace=workspace, eval_peak=eval_peak, scale=scale)


def trial_memory(cfg, *, device: str = "cuda", bf16_capable: bool = True, target_tokens: int | None = None,
                 shape: T5Shape | None = None) -> MemoryEstimate:
    """The prediction for a `TrialConfig`, at its task's length limits (batches pad to at most these), for the
    model's own shape (`shape`, else read from `cfg.model`).

    Input: the task's max source length plus the prompt; targets: `target_tokens`, else the task's max target
    length (an upper bound for label words, whose tokens are known only to the tokenizer); the label loss scores
    every label word per example. `auto` precision is bf16 on a bf16-capable CUDA device, as the engine resolves it.
    """
    from itsel_ray.tasks import get_task

    task = get_task(cfg.task)
    precision = resolve_precision(cfg.train.precision, device, bf16_capable)
    words = task.label_words(cfg.data.label_style)
    rows = len(words) if cfg.train.loss == "label" and words else 1
    if shape is None:
        shape = resolve_shape(cfg.model.name, cfg.model.config, cfg.model.tokenizer).shape
    return predict_trial_memory(
        shape, batch=cfg.train.batch_size, micro_batch=cfg.train.micro_batch_size,
        input_tokens=task.max_source_length + cfg.prompt.length,
        target_tokens=target_tokens or task.max_target_length, precision=precision,
        activation_checkpointing=cfg.train.activation_checkpointing, device=device,
        prompt_tokens=cfg.prompt.length, decoder_rows=rows, eval_batch=cfg.train.eval_batch_size,
        optimizer=cfg.optim.name)
