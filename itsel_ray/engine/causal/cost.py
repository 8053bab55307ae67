"""FLOPs of a causal-LM prompt-tuning trial from the model's shape and the batch shapes (the causal engine's
`trial_cost`).

Pure arithmetic, no torch: the counts of the matrix products that `PromptedCausalLM` (engine/causal/model.py) runs,
checked against `torch.utils.flop_counter.FlopCounterMode` on tiny GPT-2 and Llama (grouped-query) shapes
(tests/test_engine_causal_cost.py). The formulas take plain numbers or numpy arrays alike.

One sequence per example: the prompt's P positions, the input (its closing EOS dropped where the tokenizer writes
one), the separator, the target; a batch is right-padded to its longest joined row. Each layer projects every
position to queries (heads x head_dim) and to keys and values (kv_heads x head_dim: grouped-query attention makes
these narrower, not the attention itself, which runs over all heads), back to the hidden width, and through the MLP
(two matrices, GPT-2's; three, Llama's gated one). The backbone's own LM head is never called: the engine reads the
output embeddings only at the positions it scores (`PromptedCausalLM.logits`), so the vocabulary product is paid
per target token (training), per label token or once per example (rank), once per generated token (generation).

What autograd computes with frozen weights and a trainable prompt in front: no weight gradients, so a projection's
backward is one product (the input's gradient), as its forward; an attention's backward is two products per forward
product. The prompt sits at the first positions and every later position attends to it, so every layer's every
position needs a gradient, and so do the head's rows. With `train.activation_checkpointing` the backward replays
each layer's forward first (`replayed`).

Evaluation: `rank` scores a label set in one pass per batch when every label is one token (the next-token
distribution after the separator), else it repeats each example once per label, its label's tokens appended
(`PromptedCausalLM.label_scores`): K sequences per example, each as long as the longest label. `generate` is greedy
decoding on a key/value cache: the prefix once, then one position per new token attending to every cached one
(padding included), until the longest gold target of the batch (EOS included) has been produced, at most
max_new_tokens tokens: what a model that has learnt the task does (an untrained one runs to the cap, which `notes`
says). Rotary position embeddings (Llama) add no matrix product the counter sees.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from itsel_ray.engine.causal.shapes import CausalShape, resolve_shape
from itsel_ray.engine.cost import (
    Batch, TaskLengths, TrialCost, check_label_set, evaluation_cost, evaluations, schedule_notes, train_batches,
)


def linear(tokens, d_in: int, d_out: int):
    """A projection of `tokens` rows from d_in to d_out features."""
    return 2.0 * tokens * d_in * d_out


def attention(s: CausalShape, rows, queries, keys):
    """Scores (Q K^T) and the weighted sum (P V) of one layer's attention over `rows` sequences, every head."""
    return 2 * 2.0 * rows * s.heads * queries * keys * s.head_dim


def projections(s: CausalShape, tokens):
    """One layer's matrices applied to `tokens` positions: q, k, v, o and the MLP."""
    qkv = linear(tokens, s.hidden, s.q_width + 2 * s.kv_width)
    return qkv + linear(tokens, s.q_width, s.hidden) + (3 if s.gated else 2) * linear(tokens, s.hidden, s.intermediate)


def backbone(s: CausalShape, rows, length, *, checkpointing: bool = False) -> tuple:
    """(forward, backward) FLOPs of the decoder stack over `rows` sequences of `length` positions (prompt
    included), the LM head not included; `checkpointing`: the backward replays each layer's forward
    (`replayed`)."""
    proj, attn = projections(s, rows * length), attention(s, rows, length, length)
    forward = s.layers * (proj + attn)
    return forward, s.layers * (proj + 2 * attn) + (replayed(s, rows, length) if checkpointing else 0.0)


def replayed(s: CausalShape, rows, length):
    """What activation checkpointing recomputes in the backward pass: every layer's forward, except the MLP's
    output projection when nothing after it saves a tensor. Non-reentrant checkpointing stops a layer's replay once
    every tensor its backward needs is back; the output projection's result is needed only for a dropout mask
    after it (GPT-2's residual dropout, on in training; taken to be on whenever the shape has dropout, which reads
    max(resid_pdrop, embd_pdrop): one product per layer too many for a GPT-2 with only embedding dropout)."""
    forward = s.layers * (projections(s, rows * length) + attention(s, rows, length, length))
    if s.layout == "gpt2" and s.dropout > 0:
        return forward
    return forward - s.layers * linear(rows * length, s.intermediate, s.hidden)


def head(s: CausalShape, tokens):
    """The LM head (output embeddings) at `tokens` positions; its backward costs the same."""
    return linear(tokens, s.hidden, s.vocab_size)


def bare_labels(label_tokens) -> list[int]:
    """Tokens each label is scored on: its closing EOS left out (engine/objectives.py `LabelSet.build`)."""
    return [max(1, int(n) - 1) for n in label_tokens]


def sequence_pass(s: CausalShape, rows, length, target_tokens, *, checkpointing: bool = False) -> tuple:
    """(forward, backward) of the sequence loss: `rows` joined sequences of `length` positions, the head at the
    `target_tokens` real target tokens."""
    fwd, bwd = backbone(s, rows, length, checkpointing=checkpointing)
    return fwd + head(s, target_tokens), bwd + head(s, target_tokens)


def label_pass(s: CausalShape, rows, context, label_tokens, *, checkpointing: bool = False) -> tuple:
    """(forward, backward) of scoring every label after `rows` contexts of `context` positions (prompt + input +
    separator, padded): one pass and one head row per example for single-token labels, else one sequence per
    (example, label), as long as the context and the longest label, the head at each label token."""
    bare = bare_labels(label_tokens)
    if max(bare) == 1:
        fwd, bwd = backbone(s, rows, context, checkpointing=checkpointing)
        return fwd + head(s, rows), bwd + head(s, rows)
    fwd, bwd = backbone(s, rows * len(bare), context + max(bare), checkpointing=checkpointing)
    return fwd + head(s, rows * sum(bare)), bwd + head(s, rows * sum(bare))


def generation(s: CausalShape, rows, length, tokens):
    """Forward FLOPs of greedy decoding of `tokens` new tokens after `rows` prefixes of `length` positions (prompt +
    input + separator, padded): the prefix pass, then tokens - 1 cached steps, step j attending to length + j
    positions; the head once per new token."""
    tokens = np.maximum(tokens, 1)
    steps = tokens - 1
    keys = steps * length + steps * (steps + 1) / 2  # sum of length + j, j = 1 .. steps
    decode = s.layers * (projections(s, rows * steps) + attention(s, rows, 1, keys))
    return backbone(s, rows, length)[0] + decode + head(s, rows * tokens)


@lru_cache(maxsize=16)
def sequence_format_lengths(tokenizer: str) -> tuple[int, int]:
    """(separator tokens, 1 when the tokenizer closes an input with EOS, which the engine drops, else 0)."""
    from itsel_ray.data.tokenizers import build_tokenizer
    from itsel_ray.engine.causal.model import sequence_format

    tok = build_tokenizer(tokenizer)
    fmt = sequence_format(tok, tokenizer)
    ids = list(tok(["a b"])["input_ids"][0])
    return len(fmt.separator), int(bool(ids) and ids[-1] == fmt.eos_id)


def train_step(s: CausalShape, batches: list[Batch], *, prompt: int, separator: int, drop: int = 0,
               label_tokens=None, checkpointing: bool = False) -> float:
    """Forward + backward FLOPs of one step over its micro-batches: the sequence loss, or the label loss when
    `label_tokens` (the label words' token counts, EOS included) is given. `drop`: tokens the engine drops from each
    input (its closing EOS); `checkpointing`: train.activation_checkpointing."""
    total = 0.0
    for b in batches:
        if label_tokens is None:
            total += sum(sequence_pass(s, b.rows, prompt + b.joined - drop + separator, b.real_targets,
                                       checkpointing=checkpointing))
        else:
            total += sum(label_pass(s, b.rows, prompt + b.inputs - drop + separator, label_tokens,
                                    checkpointing=checkpointing))
    return total


def rank_flops(s: CausalShape, batches: list[Batch], *, prompt: int, separator: int, drop: int = 0,
               label_tokens) -> float:
    return sum(label_pass(s, b.rows, prompt + b.inputs - drop + separator, label_tokens)[0] for b in batches)


def generate_flops(s: CausalShape, batches: list[Batch], *, prompt: int, separator: int, drop: int = 0,
                   max_new_tokens: int) -> float:
    return sum(generation(s, b.rows, prompt + b.inputs - drop + separator, min(b.targets, max_new_tokens))
               for b in batches)


def trial_cost(cfg, lengths: TaskLengths, *, shape: CausalShape | None = None,
               format_lengths: tuple[int, int] | None = None) -> TrialCost:
    """The FLOPs of trial `cfg` on data of `lengths` (`Engine.trial_cost`). format_lengths: (separator tokens,
    input tokens dropped), default read from the trial's tokenizer."""
    s = shape or resolve_shape(cfg.model.name, cfg.model.config, cfg.model.tokenizer).shape
    notes = []
    spec = cfg.model.tokenizer or cfg.model.name
    try:
        sep, drop = format_lengths or sequence_format_lengths(spec)
    except (OSError, ValueError):  # not in the local cache and no network: the separator's bound, no EOS dropped
        from itsel_ray.engine.causal.model import SEPARATOR_BOUND

        sep, drop = SEPARATOR_BOUND, 0
        notes.append(f"tokenizer {spec!r} could not be loaded here: the separator counted as {SEPARATOR_BOUND} "
                     "tokens and every input's closing token kept (an upper bound)")
    train, prompt = cfg.train, cfg.prompt.length
    rows = lengths.train.head(train.max_train_examples)
    check_label_set(cfg, lengths)
    label_loss = train.loss == "label"
    labels = lengths.labels if label_loss else None
    steps = train_batches(rows, batch_size=train.batch_size, micro_batch=train.micro_batch_size,
                          batching=train.batching)
    kw = dict(prompt=prompt, separator=sep, drop=drop)
    ckpt = train.activation_checkpointing
    step_flops = float(np.mean([train_step(s, b, label_tokens=labels, checkpointing=ckpt, **kw) for b in steps]))
    inputs, targets = rows.inputs.astype(np.float64) - drop, rows.targets.astype(np.float64)
    context = prompt + inputs + sep  # each row alone, at its own length
    if label_loss:
        bare = bare_labels(labels)
        k, extra = (1, 0) if max(bare) == 1 else (len(bare), max(bare))
        tokens = float(np.mean([sum(m.rows * k * (prompt + m.inputs - drop + sep + extra) for m in b)
                                for b in steps]))
        alone = sum(label_pass(s, 1, context, labels, checkpointing=ckpt))
        real_tokens = train.batch_size * k * float(np.mean(context + extra))
    else:
        tokens = float(np.mean([sum(m.rows * (prompt + m.joined - drop + sep) for m in b) for b in steps]))
        alone = sum(sequence_pass(s, 1, context + targets, targets, checkpointing=ckpt))
        real_tokens = train.batch_size * float(np.mean(context + targets))
    unpadded = train.batch_size * float(np.mean(alone))
    eval_flops, eval_rows, eval_notes = evaluation_cost(
        cfg, lengths, rank=lambda batches: rank_flops(s, batches, label_tokens=lengths.labels, **kw),
        generate=lambda batches, cap: generate_flops(s, batches, max_new_tokens=cap, **kw))
    return TrialCost(steps=train.max_steps, step_flops=step_flops, unpadded_step_flops=unpadded,
                     tokens_per_step=tokens, real_tokens_per_step=real_tokens,
                     evaluations=evaluations(train.max_steps, train.eval_every), eval_flops=eval_flops,
                     eval_rows=eval_rows, eval_mode=train.eval_mode,
                     notes=tuple(notes + schedule_notes(cfg) + eval_notes))
