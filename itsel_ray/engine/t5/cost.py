"""FLOPs of a T5 prompt-tuning trial from the model's shape and the batch shapes (the T5 engine's `trial_cost`).

Pure arithmetic, no torch: the counts of the matrix products that the engine's own code runs (`PromptedT5`,
engine/t5/model.py), checked against `torch.utils.flop_counter.FlopCounterMode` on small shapes
(tests/test_engine_cost.py). The formulas take plain numbers or numpy arrays alike.

What autograd computes with frozen weights and a trainable prompt in front of the encoder input: no weight
gradients, so a projection's backward is one product (the input's gradient), the same as its forward; an attention's
backward is two products per forward product (the gradients of both operands). Everything downstream of the prompt
needs a gradient: the whole encoder, every decoder layer from the first cross-attention on, and the LM head. The
first decoder layer's self-attention reads only target embeddings and its cross-attention's query comes from them,
so they have no backward pass (the cross-attention's keys and values do).

Evaluation: `rank` scores every label word of a closed set in one decoder pass per batch: the labels' tokens are
packed into one decoder sequence per example with a block-diagonal causal mask, so the encoder states, and each
layer's cross-attention keys and values, are computed once per example rather than once per label
(`PromptedT5.label_scores`); single-token labels need one decoder position. `generate` is greedy decoding with a
key/value cache: one position per step, the cross-attention keys and values computed once, until the longest gold
target of the batch (EOS included) has been produced, at most max_new_tokens steps: what a model that has learnt
the task does (an untrained one runs to the cap, which `notes` says).
"""

from __future__ import annotations

import numpy as np

from itsel_ray.engine.cost import (
    Batch, TaskLengths, TrialCost, check_label_set, evaluation_cost, evaluations, schedule_notes, train_batches,
)
from itsel_ray.engine.t5.shapes import T5Shape, resolve_shape


def linear(tokens, d_in: int, d_out: int):
    """A projection of `tokens` rows from d_in to d_out features."""
    return 2.0 * tokens * d_in * d_out


def attention(rows, s: T5Shape, queries, keys):
    """Scores (Q K^T) and the weighted sum (P V) of one attention call over `rows` sequences."""
    return 2 * 2.0 * rows * s.num_heads * queries * keys * s.d_kv


def _ffn(s: T5Shape, tokens):
    return (3 if s.gated else 2) * linear(tokens, s.d_model, s.d_ff)


def encoder(s: T5Shape, rows, length) -> tuple:
    """(forward, backward) FLOPs of the encoder over `rows` sequences of `length` positions (prompt included)."""
    tokens = rows * length
    proj = 4 * linear(tokens, s.d_model, s.inner) + _ffn(s, tokens)
    attn = attention(rows, s, length, length)
    return s.num_layers * (proj + attn), s.num_layers * (proj + 2 * attn)


def decoder(s: T5Shape, rows, queries, enc_length, *, kv_rows=None) -> tuple:
    """(forward, backward) FLOPs of the decoder and the LM head: `rows` sequences of `queries` positions attending
    to `enc_length` encoder positions of `kv_rows` examples (default: one per row), whose keys and values each
    layer projects once."""
    kv_rows = rows if kv_rows is None else kv_rows
    tokens = rows * queries
    self_proj = 4 * linear(tokens, s.d_model, s.inner)
    self_attn = attention(rows, s, queries, queries)
    cross_qo = 2 * linear(tokens, s.d_model, s.inner)
    cross_kv = 2 * linear(kv_rows * enc_length, s.d_model, s.inner)
    cross_attn = attention(rows, s, queries, enc_length)
    ffn = _ffn(s, tokens)
    head = linear(tokens, s.d_model, s.vocab_size)
    layer = self_proj + self_attn + cross_qo + cross_kv + cross_attn + ffn
    forward = s.decoder_layers * layer + head
    first = cross_kv + cross_qo / 2 + 1.5 * cross_attn + ffn  # no query side: K, V, O, three of four products
    rest = self_proj + 2 * self_attn + cross_qo + cross_kv + 2 * cross_attn + ffn
    backward = first + (s.decoder_layers - 1) * rest + head
    return forward, backward


def generation(s: T5Shape, rows, steps, enc_length):
    """Forward FLOPs of `steps` greedy decoding steps over `rows` sequences with a key/value cache."""
    per_step = 6 * linear(rows, s.d_model, s.inner) + _ffn(s, rows) + attention(rows, s, 1, enc_length)
    self_attn = attention(rows, s, 1, 1) * steps * (steps + 1) / 2  # step t attends to t positions
    cross_kv = 2 * linear(rows * enc_length, s.d_model, s.inner)
    return s.decoder_layers * (steps * per_step + self_attn + cross_kv) + steps * linear(rows, s.d_model, s.vocab_size)


def label_positions(label_tokens) -> tuple[int, int]:
    """(decoder positions per example, label rows) of scoring a label set whose words are `label_tokens` tokens
    long (EOS included; the score leaves EOS out, engine/objectives.py): one position for single-token labels, else
    every label's tokens packed into one sequence."""
    bare = [max(1, n - 1) for n in label_tokens]
    return (1, 1) if max(bare) == 1 else (sum(bare), len(bare))


def train_step(s: T5Shape, batches: list[Batch], *, prompt: int, decoder_positions: int | None = None) -> float:
    """Forward + backward FLOPs of one step over its micro-batches; `decoder_positions` fixes the decoder length
    (the label loss), else each micro-batch's padded target length (the sequence loss)."""
    total = 0.0
    for b in batches:
        length = prompt + b.inputs
        queries = decoder_positions or b.targets
        total += sum(encoder(s, b.rows, length)) + sum(decoder(s, b.rows, queries, length))
    return total


def rank_flops(s: T5Shape, batches: list[Batch], *, prompt: int, label_tokens, shared_keys: bool = True) -> float:
    """One rank evaluation. shared_keys=False: the previous implementation's cost, which repeated each example's
    encoder states once per label and scored each label in its own decoder row."""
    positions, k = label_positions(label_tokens)
    total = 0.0
    for b in batches:
        length = prompt + b.inputs
        total += encoder(s, b.rows, length)[0]
        if shared_keys or positions == 1:
            total += decoder(s, b.rows, positions, length)[0]
        else:
            width = max(max(1, n - 1) for n in label_tokens)
            total += decoder(s, b.rows * k, width, length)[0]
    return total


def generate_flops(s: T5Shape, batches: list[Batch], *, prompt: int, max_new_tokens: int) -> float:
    total = 0.0
    for b in batches:
        length = prompt + b.inputs
        total += encoder(s, b.rows, length)[0] + generation(s, b.rows, min(b.targets, max_new_tokens), length)
    return total


def trial_cost(cfg, lengths: TaskLengths, *, shape: T5Shape | None = None) -> TrialCost:
    """The FLOPs of trial `cfg` on data of `lengths` (`Engine.trial_cost`)."""
    s = shape or resolve_shape(cfg.model.name, cfg.model.config, cfg.model.tokenizer).shape
    train, prompt = cfg.train, cfg.prompt.length
    rows = lengths.train.head(train.max_train_examples)
    check_label_set(cfg, lengths)
    positions = label_positions(lengths.labels)[0] if train.loss == "label" else None
    steps = train_batches(rows, batch_size=train.batch_size, micro_batch=train.micro_batch_size,
                          batching=train.batching)
    step_flops = float(np.mean([train_step(s, b, prompt=prompt, decoder_positions=positions) for b in steps]))
    tokens = float(np.mean([sum(m.rows * (prompt + m.inputs + (positions or m.targets)) for m in b) for b in steps]))
    # the same rows without padding: each alone at its own lengths, as many as a step holds
    inputs, targets = rows.inputs.astype(np.float64), rows.targets.astype(np.float64)
    queries = positions if positions else targets
    alone = sum(encoder(s, 1, prompt + inputs)) + sum(decoder(s, 1, queries, prompt + inputs))
    unpadded = train.batch_size * float(np.mean(alone))
    real_tokens = train.batch_size * float(np.mean(prompt + inputs + queries))
    eval_flops, eval_rows, eval_notes = evaluation_cost(
        cfg, lengths, rank=lambda batches: rank_flops(s, batches, prompt=prompt, label_tokens=lengths.labels),
        generate=lambda batches, cap: generate_flops(s, batches, prompt=prompt, max_new_tokens=cap))
    return TrialCost(steps=train.max_steps, step_flops=step_flops, unpadded_step_flops=unpadded,
                     tokens_per_step=tokens, real_tokens_per_step=real_tokens,
                     evaluations=evaluations(train.max_steps, train.eval_every), eval_flops=eval_flops,
                     eval_rows=eval_rows, eval_mode=train.eval_mode,
                     notes=tuple(schedule_notes(cfg) + eval_notes))
