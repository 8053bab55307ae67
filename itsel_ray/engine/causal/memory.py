"""Predicted memory of one causal-LM prompt-tuning trial from the model's shape and the batch: what the sweep packs
GPUs by, and what `--dry-run` prints.

Pure arithmetic, no torch import, like the T5 engine's model (`engine/t5/memory.py`, with which it shares
`engine/memory.py`: the optimiser state and how the parts add up), and built the same way: the
tensors autograd keeps for the backward pass of a frozen decoder whose only trainable input is the prompt, counted
per kind and checked tensor by tensor against `torch.autograd.graph.saved_tensors_hooks` on CPU
(`engine/causal/memory_probe.py`, `tests/test_engine_causal_memory.py`; on a GPU, `benchmarks/gpu_sharing.py`).
With frozen weights a matrix product keeps its weight (counted once, as a weight) and not its input, so what a
block keeps is:

- its two norms' inputs (the fp32 residual stream) and statistics (LayerNorm: mean and rstd; RMSNorm: rstd);
- attention: the fused SDPA kernel (CPU without dropout, and CUDA) keeps q, k and v (k and v at the query heads
  after Llama's `repeat_kv`), its output, the log-sum-exp and the additive padding mask, each layer its own copy;
  the decomposed path that CPU takes with attention dropout keeps fp32 q, k, v and three score-sized tensors
  (probabilities, dropout noise, dropped probabilities);
- the MLP: GPT-2's tanh GELU four [tokens, intermediate] tensors, Llama's gated SiLU three (the gate's input, its
  activation and the up projection);
- dropout noise of the masked tensor's dtype on CPU, a byte per element on CUDA (GPT-2's resid/embd dropout);
- Qwen3's per-head q/k RMSNorm inputs; the rotary cos/sin tables once for all layers;
- bf16 autocast: a bf16 copy of every weight a product reads, kept until the backward pass.

Outside the blocks: the final norm, and the log-probabilities of the target tokens only (the head runs at the
positions that predict a target, in fp32). The cuda profile follows the kernels' saved tensors and awaits a
measurement on a GPU (no GPU was at hand), hence the safety margin in `gpu_fraction`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

from itsel_ray.engine.base import GIB, MemoryEstimate
from itsel_ray.engine.memory import (
    KeptBytes, check_inputs, estimate, prompt_state_bytes, resolve_precision,
)
from itsel_ray.engine.causal.shapes import CausalShape, resolve_shape, shape_from_config

__all__ = ["GIB", "CALIBRATION", "PROFILES", "Profile", "model_shape", "predict_trial_memory", "trial_memory"]


@dataclass(frozen=True)
class Profile:
    """Bytes per element of each kind of kept tensor, for one device kind at one precision."""

    residual: int  # norm inputs: the residual stream stays fp32 under autocast
    linear: int  # outputs of the matrix products: MLP activations, the fused attention's q/k/v/out and mask
    pointwise: int  # GPT-2's tanh GELU intermediates (CPU autocast: bf16; CUDA autocast runs pow in fp32)
    dropout_mask: int | None  # 1 (CUDA bool) or None (CPU: noise of the masked tensor's dtype)
    dropout_attention: str  # attention with dropout while training: "math" (CPU) or "fused" (CUDA)
    math_bytes: int  # the math path's q, k, v and scores (CPU autocast runs SDPA in fp32)
    weight_copy: int  # bytes per weight element autocast copies and keeps (0 without autocast)
    lse_block: int  # the kernel's log-sum-exp rows are padded to a multiple of this
    mask_block: int  # the mask's last dimension is padded to a multiple of this


PROFILES: Mapping[tuple[str, str], Profile] = {
    ("cpu", "fp32"): Profile(residual=4, linear=4, pointwise=4, dropout_mask=None, dropout_attention="math",
                             math_bytes=4, weight_copy=0, lse_block=1, mask_block=1),
    ("cpu", "bf16"): Profile(residual=4, linear=2, pointwise=2, dropout_mask=None, dropout_attention="math",
                             math_bytes=4, weight_copy=2, lse_block=1, mask_block=1),
    ("cuda", "fp32"): Profile(residual=4, linear=4, pointwise=4, dropout_mask=1, dropout_attention="fused",
                              math_bytes=4, weight_copy=0, lse_block=32, mask_block=16),
    ("cuda", "bf16"): Profile(residual=4, linear=2, pointwise=4, dropout_mask=1, dropout_attention="fused",
                              math_bytes=4, weight_copy=2, lse_block=32, mask_block=16),
}

# measured / predicted bytes. CPU: 1.0, the kept tensors are predicted within 0.2 % without a fitted factor
# (tests/test_engine_causal_memory.py); cuda: 1.0 until a GPU has measured them (benchmarks/gpu_sharing.py).
CALIBRATION: Mapping[str, float] = {"cpu": 1.0, "cuda": 1.0}


def _drop(p: Profile, dtype_bytes: int) -> int:
    return dtype_bytes if p.dropout_mask is None else p.dropout_mask


def _norm(c: KeptBytes, p: Profile, s: CausalShape, tokens: int) -> None:
    stats = 8 if s.layout == "gpt2" else 4  # LayerNorm: mean and rstd; RMSNorm: rstd
    c.add("norm_inputs", tokens * (s.hidden * p.residual + stats))


def _attention(c: KeptBytes, p: Profile, s: CausalShape, batch: int, length: int) -> None:
    tokens = batch * length
    if s.attention_dropout > 0 and p.dropout_attention == "math":
        probs = batch * s.heads * length * length
        c.add("attention_qkv", 3 * tokens * s.q_width * p.math_bytes)
        c.add("attention_scores", 3 * probs * p.math_bytes)
        return
    c.add("attention_qkv", 4 * tokens * s.q_width * p.linear)  # q, k, v (at the query heads) and the output
    c.add("attention_lse", batch * s.heads * math.ceil(length / p.lse_block) * p.lse_block * 4)
    c.add("attention_mask", batch * length * math.ceil(length / p.mask_block) * p.mask_block * p.linear)


def _mlp(c: KeptBytes, p: Profile, s: CausalShape, tokens: int) -> None:
    if s.gated:  # act(gate x) * up x: the activation's input and output, and the up projection
        if s.activation != "silu":
            raise ValueError(f"the memory model knows the gated SiLU MLP, not {s.activation!r}")
        c.add("mlp_activation", 3 * tokens * s.intermediate * p.linear)
    else:  # the tanh GELU, computed element by element: pow's input, tanh, 0.5 x and 1 + tanh
        if s.activation not in ("gelu_new", "gelu_pytorch_tanh"):
            raise ValueError(f"the memory model knows GPT-2's tanh GELU, not {s.activation!r}")
        c.add("mlp_activation", tokens * s.intermediate * (3 * p.pointwise + p.linear))


def _block(c: KeptBytes, p: Profile, s: CausalShape, batch: int, length: int) -> None:
    tokens = batch * length
    dropout = s.dropout > 0
    _norm(c, p, s, tokens)
    if s.qk_norm:  # RMSNorm over each head's q and k, in fp32
        c.add("norm_inputs", tokens * (s.heads + s.kv_heads) * (s.head_dim * 4 + 4))
    _attention(c, p, s, batch, length)
    _norm(c, p, s, tokens)
    _mlp(c, p, s, tokens)
    if dropout:  # after the attention's and the MLP's output projections
        c.add("dropout_masks", 2 * tokens * s.hidden * _drop(p, p.linear))


def _kept_tensors(p: Profile, s: CausalShape, *, batch: int, length: int, scored: int,
                  checkpointing: bool) -> tuple[KeptBytes, float]:
    """(kept bytes by kind, the largest single block's bytes) of one forward pass over `batch` rows of `length`
    positions whose head reads `scored` positions."""
    c, block = KeptBytes(), KeptBytes()
    _block(block, p, s, batch, length)
    tokens = batch * length
    if checkpointing:
        # each block keeps only its input (the residual stream); the tables and the mask the blocks read stay
        c.add("block_inputs", s.layers * tokens * s.hidden * p.residual)
        extra = block.total
        if p.weight_copy:
            extra += s.layer_weights() * p.weight_copy
    else:
        for kind, nbytes in block.by_kind.items():
            c.add(kind, nbytes * s.layers)
        if p.weight_copy:
            c.add("weight_copies", s.layers * s.layer_weights() * p.weight_copy)
        extra = block.total
    if s.layout == "llama":
        c.add("rotary_tables", 2 * tokens * s.head_dim * 4)
    if s.dropout > 0:
        c.add("dropout_masks", tokens * s.hidden * _drop(p, p.residual))  # the embeddings' dropout
    _norm(c, p, s, tokens)
    c.add("log_probs", scored * (s.vocab_size * 4 + 32))  # fp32 log-softmax rows and their indices
    return c, extra


def _workspace(p: Profile, s: CausalShape, *, batch: int, length: int, scored: int, block: float,
               checkpointing: bool) -> float:
    """Transient bytes on top of the kept tensors at the training peak, the largest of: the head's backward (two
    [scored, V] fp32 gradients), an attention backward (score-sized fp32 gradients on the math path, the kernel's
    gradients of q, k, v otherwise), an MLP backward (two [tokens, intermediate] fp32 gradients), plus the fp32
    gradients of the residual stream that are live beside it (four [tokens, hidden]: the stream's, a norm's input
    and output, a projection's output). Checkpointing adds the block being recomputed. Checked as an upper bound on
    CPU measurements (`tests/test_engine_causal_memory.py`)."""
    head = 2 * scored * s.vocab_size * 4
    tokens = batch * length
    if s.attention_dropout > 0 and p.dropout_attention == "math":
        attention = 1.25 * batch * s.heads * length * length * 4
    else:
        attention = 4 * tokens * s.q_width * 4
    mlp = 2 * tokens * s.intermediate * 4
    stream = 4 * tokens * s.hidden * 4
    return max(head, attention, mlp) + stream + (block if checkpointing else 0.0)


def _eval_peak(p: Profile, s: CausalShape, *, batch: int, length: int, new_tokens: int, scored: int) -> float:
    """No-gradient evaluation (analytic, not calibrated): the KV cache of greedy decoding over the prompt, the input
    and `new_tokens` steps, one layer's attention and MLP transients, the final states and the fp32 logits of the
    scored positions."""
    tokens = batch * length
    cache = s.layers * 2 * batch * (length + new_tokens) * s.kv_width * p.linear
    states = 2 * tokens * s.hidden * 4
    attention = 4 * tokens * s.q_width * p.linear + batch * length * length * p.linear
    mlp = tokens * s.intermediate * p.linear * (3 if s.gated else 4)
    return cache + states + max(attention, mlp) + 2 * scored * s.vocab_size * 4


def model_shape(model: Mapping | str | CausalShape) -> CausalShape:
    """A CausalShape from config fields (with `model_type`), a model name or folder (its config.json), or itself."""
    if isinstance(model, CausalShape):
        return model
    if isinstance(model, Mapping):
        return shape_from_config(model)
    return resolve_shape(model, None).shape


def predict_trial_memory(
    model_config: Mapping | str | CausalShape,
    *,
    batch: int,
    micro_batch: int | None = None,
    input_tokens: int,
    target_tokens: int,
    precision: str,
    activation_checkpointing: bool = False,
    device: str = "cuda",
    prompt_tokens: int = 100,
    rows_per_example: int = 1,
    scored_per_row: int | None = None,
    eval_batch: int | None = None,
    optimizer: str = "adafactor",
) -> MemoryEstimate:
    """Peak bytes of one trial: fp32 frozen weights, one micro-batch's kept activations plus the transient workspace
    of its backward pass, the prompt's optimiser state, or evaluation if that is larger.

    input_tokens: positions before the target (prompt, input and separator, e.g. 100 + 512 + 2); target_tokens:
    the target's positions (EOS included). rows_per_example: sequences per example (1 for the sequence loss and
    single-token labels; the label count with multi-token labels). scored_per_row: positions whose log-probabilities
    are kept (default target_tokens; 1 for single-token labels). precision "bf16" or "fp32" (resolve "auto" first);
    device "cuda" or "cpu" (the profile). prompt_tokens sizes the optimiser state.
    """
    check_inputs(precision, device, batch=batch, input_tokens=input_tokens, target_tokens=target_tokens,
                 rows_per_example=rows_per_example, micro_batch=micro_batch or 1)
    s = model_shape(model_config)
    if s.layers < 1:
        raise ValueError(f"the model must have at least one layer, got {s.layers}")
    p, scale = PROFILES[(device, precision)], CALIBRATION[device]
    scored_per_row = target_tokens if scored_per_row is None else scored_per_row
    micro = min(micro_batch or batch, batch)
    rows, length = micro * rows_per_example, input_tokens + target_tokens
    kept, block = _kept_tensors(p, s, batch=rows, length=length, scored=rows * scored_per_row,
                                checkpointing=activation_checkpointing)
    workspace = _workspace(p, s, batch=rows, length=length, scored=rows * scored_per_row, block=block,
                           checkpointing=activation_checkpointing)
    eb = eval_batch or batch
    eval_peak = _eval_peak(p, s, batch=eb * rows_per_example, length=length, new_tokens=target_tokens,
                           scored=eb * rows_per_example * max(1, scored_per_row))
    return estimate(weights=s.parameter_count() * 4, optimizer_state=prompt_state_bytes(optimizer, prompt_tokens,
                    s.hidden), kept=kept, workspace=workspace, eval_peak=eval_peak, scale=scale)


def trial_memory(cfg, *, device: str = "cuda", bf16_capable: bool = True, target_tokens: int | None = None,
                 shape: CausalShape | None = None) -> MemoryEstimate:
    """The prediction for a `TrialConfig` at its task's length limits (batches pad to at most these), for the
    model's own shape (`shape`, else read from `cfg.model`).

    Before the target: the prompt, the task's max source length and the separator (its bound); the target: the
    task's max target length (an upper bound for label words, whose tokens are known only to the tokenizer). The
    label loss reads one position per example when every label is one token, which is not known without the
    tokenizer, so it is sized as a row per label word, the multi-token case (an upper bound). `auto` precision is
    bf16 on a bf16-capable CUDA device, as the engine resolves it.
    """
    from itsel_ray.engine.causal.model import SEPARATOR_BOUND
    from itsel_ray.tasks import get_task

    task = get_task(cfg.task)
    precision = resolve_precision(cfg.train.precision, device, bf16_capable)
    words = task.label_words(cfg.data.label_style)
    rows = len(words) if cfg.train.loss == "label" and words else 1
    if shape is None:
        shape = resolve_shape(cfg.model.name, cfg.model.config, cfg.model.tokenizer).shape
    return predict_trial_memory(
        shape, batch=cfg.train.batch_size, micro_batch=cfg.train.micro_batch_size,
        input_tokens=cfg.prompt.length + task.max_source_length + SEPARATOR_BOUND,
        target_tokens=target_tokens or task.max_target_length, precision=precision,
        activation_checkpointing=cfg.train.activation_checkpointing, device=device,
        prompt_tokens=cfg.prompt.length, rows_per_example=rows, eval_batch=cfg.train.eval_batch_size,
        optimizer=cfg.optim.name)
