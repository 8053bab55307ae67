"""The T5 cost model against PyTorch's FLOP counter, and the batch shapes it is applied to.

`torch.utils.flop_counter.FlopCounterMode` counts the matrix products a forward or backward pass runs. The CPU's
fused attention kernel is invisible to it, so the counts run under SDPA's math backend, which computes attention
with the products the formula counts. Every check is exact (integer FLOPs), on shapes that differ in every
dimension the formula reads (layers of encoder and decoder, heads x d_kv != d_model, gated and plain FFN, an untied
head, micro-batches, padding).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from itsel_ray.engine.cost import Batch, SplitLengths, TaskLengths, eval_batches, evaluations, train_batches
from itsel_ray.engine.objectives import LOSSES, Batch as TrainBatch, LabelSet
from itsel_ray.engine.t5 import cost as t5cost
from itsel_ray.engine.t5.model import PromptedT5, label_scores
from itsel_ray.engine.t5.shapes import shape_from_config
from itsel_ray.trial_config import TrialConfig

SHAPES = {
    "plain": dict(vocab_size=211, d_model=48, d_ff=80, d_kv=8, num_heads=3, num_layers=2, num_decoder_layers=3),
    "gated": dict(vocab_size=173, d_model=40, d_ff=56, d_kv=12, num_heads=2, num_layers=3, num_decoder_layers=2,
                  feed_forward_proj="gated-gelu", tie_word_embeddings=False),
    "one-decoder-layer": dict(vocab_size=150, d_model=32, d_ff=64, d_kv=8, num_heads=4, num_layers=1,
                              num_decoder_layers=1),
}


def build(name: str, prompt: int = 5, seed: int = 0):
    from transformers import T5Config, T5ForConditionalGeneration

    fields = {**SHAPES[name], "dropout_rate": 0.1, "decoder_start_token_id": 0, "pad_token_id": 0, "eos_token_id": 1}
    torch.manual_seed(seed)
    backbone = T5ForConditionalGeneration(T5Config(**fields)).requires_grad_(False)
    model = PromptedT5(backbone, torch.randn(prompt, fields["d_model"]))
    return model, shape_from_config(fields)


def counted(fn) -> int:
    with sdpa_kernel(SDPBackend.MATH):
        counter = FlopCounterMode(display=False)
        with counter:
            fn()
    return counter.get_total_flops()


def padded(rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    from itsel_ray.engine.batching import pad

    return pad(rows, 0)


def random_rows(gen: torch.Generator, lengths: list[int], vocab: int) -> list[list[int]]:
    return [torch.randint(3, vocab, (n - 1,), generator=gen).tolist() + [1] for n in lengths]


LABELS = [[5, 7, 1], [8, 9, 10, 1], [11, 12, 13, 14, 1], [15, 1]]  # 2, 3, 4 and 1 tokens once EOS is dropped


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_a_sequence_loss_step_is_counted_exactly(name):
    model, shape = build(name)
    gen = torch.Generator().manual_seed(1)
    inputs, targets = random_rows(gen, [9, 4, 7], shape.vocab_size), random_rows(gen, [3, 5, 2], shape.vocab_size)
    ids, mask = padded(inputs)
    tgt, _ = padded(targets)
    batch = TrainBatch(ids, mask, tgt, None)
    model.backbone.train()
    box = {}
    forward = counted(lambda: box.update(loss=LOSSES.get("sequence")(model, batch, None, 0)))
    backward = counted(lambda: box["loss"].backward())
    enc = t5cost.encoder(shape, 3, 5 + 9)
    dec = t5cost.decoder(shape, 3, 5, 5 + 9)
    assert forward == enc[0] + dec[0]
    assert backward == enc[1] + dec[1]
    steps = [[Batch(3, 9, 5)]]
    assert t5cost.train_step(shape, steps[0], prompt=5) == forward + backward


@pytest.mark.parametrize("name", ["plain", "gated"])
def test_micro_batches_and_the_label_loss_are_counted_exactly(name):
    model, shape = build(name)
    gen = torch.Generator().manual_seed(2)
    labels = LabelSet.build(["a", "b", "c", "d"], LABELS, 0, "cpu")
    loss = LOSSES.get("label")
    model.backbone.train()
    micro = [random_rows(gen, [6, 3], shape.vocab_size), random_rows(gen, [4, 8], shape.vocab_size)]
    total = 0
    for rows in micro:
        ids, mask = padded(rows)
        b = TrainBatch(ids, mask, torch.ones(2, 1, dtype=torch.long), torch.tensor([0, 2]))
        box = {}
        total += counted(lambda: box.update(v=loss(model, b, labels, 0)))
        total += counted(lambda: box["v"].backward())
    positions, k = t5cost.label_positions([len(x) for x in LABELS])
    assert (positions, k) == (2 + 3 + 4 + 1, 4)
    step = [Batch(2, 6, 1), Batch(2, 8, 1)]
    assert t5cost.train_step(shape, step, prompt=5, decoder_positions=positions) == total


def test_single_token_labels_need_one_decoder_position():
    model, shape = build("plain")
    labels = LabelSet.build(["no", "yes"], [[5, 1], [6, 1]], 0, "cpu")
    ids, mask = padded(random_rows(torch.Generator().manual_seed(3), [7, 5, 6], shape.vocab_size))
    model.backbone.eval()
    with torch.no_grad():
        flops = counted(lambda: model.label_scores(ids, mask, labels))
    assert t5cost.label_positions([2, 2]) == (1, 1)
    assert flops == t5cost.rank_flops(shape, [Batch(3, 7, 2)], prompt=5, label_tokens=[2, 2])


@pytest.mark.parametrize("name", ["plain", "gated"])
def test_rank_evaluation_is_counted_exactly_and_costs_less_than_one_row_per_label(name):
    model, shape = build(name)
    labels = LabelSet.build(["a", "b", "c", "d"], LABELS, 0, "cpu")
    ids, mask = padded(random_rows(torch.Generator().manual_seed(4), [12, 9, 11, 4], shape.vocab_size))
    model.backbone.eval()
    tokens = [len(x) for x in LABELS]
    with torch.no_grad():
        flops = counted(lambda: model.label_scores(ids, mask, labels))
        enc, emask = model.encode(ids, mask)
        from itsel_ray.engine.t5.model import _label_scores_by_row

        by_row = counted(lambda: _label_scores_by_row(model, enc, emask, labels))
        encoder_only = counted(lambda: model.encode(ids, mask))
    batches = [Batch(4, 12, 1)]
    assert flops == t5cost.rank_flops(shape, batches, prompt=5, label_tokens=tokens)
    assert encoder_only + by_row == t5cost.rank_flops(shape, batches, prompt=5, label_tokens=tokens,
                                                      shared_keys=False)
    assert flops < encoder_only + by_row


@pytest.mark.parametrize("name", ["plain", "gated", "one-decoder-layer"])
def test_greedy_generation_is_counted_exactly(name):
    model, shape = build(name)
    ids, mask = padded(random_rows(torch.Generator().manual_seed(5), [10, 6, 8], shape.vocab_size))
    model.backbone.eval()
    box = {}
    with torch.no_grad():
        flops = counted(lambda: box.update(out=model.generate(ids, mask, max_new_tokens=6)))
    steps = box["out"].shape[1] - 1  # the output starts with the decoder start token
    assert 1 <= steps <= 6
    expected = t5cost.encoder(shape, 3, 5 + 10)[0] + t5cost.generation(shape, 3, steps, 5 + 10)
    assert flops == expected


@pytest.mark.parametrize("name", ["plain", "gated", "one-decoder-layer"])
def test_generation_on_the_cache_is_the_uncached_greedy_decoding(name):
    """More decoder than encoder layers ("plain") too: transformers' default cache is sized by the encoder's layer
    count and fails there; the engine's cache grows with the decoder."""
    from transformers.modeling_outputs import BaseModelOutput

    model, shape = build(name)
    ids, mask = padded(random_rows(torch.Generator().manual_seed(5), [10, 6, 8], shape.vocab_size))
    model.backbone.eval()
    with torch.no_grad():
        cached = model.generate(ids, mask, max_new_tokens=6)
        enc, emask = model.encode(ids, mask)
        plain = model.backbone.generate(encoder_outputs=BaseModelOutput(last_hidden_state=enc), attention_mask=emask,
                                        max_new_tokens=6, do_sample=False, num_beams=1, use_cache=False)
    assert cached.tolist() == plain.tolist()


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_label_scores_equal_one_row_per_label(attn):
    """Rank evaluation packs every label into one decoder sequence per example: the same scores (and so the same
    predictions) as scoring each label in its own row, under both attention implementations."""
    model, _ = build("gated")
    model.backbone.config._attn_implementation = attn
    labels = LabelSet.build(["a", "b", "c", "d"], LABELS, 0, "cpu")
    ids, mask = padded(random_rows(torch.Generator().manual_seed(6), [12, 9, 11, 4, 7], 173))
    model.backbone.eval()
    from itsel_ray.engine.t5.model import _label_scores_by_row

    with torch.no_grad():
        enc, emask = model.encode(ids, mask)
        packed = label_scores(model, enc, emask, labels)
        by_row = _label_scores_by_row(model, enc, emask, labels)
    assert packed.shape == (5, 4)
    torch.testing.assert_close(packed, by_row, rtol=1e-5, atol=1e-5)
    assert packed.argmax(dim=1).tolist() == by_row.argmax(dim=1).tolist()


def test_the_formula_takes_arrays():
    shape = shape_from_config(SHAPES["plain"])
    lengths = np.array([10, 20, 30])
    fwd, bwd = t5cost.encoder(shape, 1, lengths)
    assert fwd.shape == (3,) and fwd[1] == t5cost.encoder(shape, 1, 20)[0]


# ------------------------------------------------------------------------------------------------ batch shapes


def test_random_batches_pad_to_the_longest_row_and_bucketed_ones_pad_less():
    rng = np.random.default_rng(0)
    inputs = rng.integers(5, 200, size=4000)
    lengths = SplitLengths(inputs, np.full(4000, 3))
    rand = train_batches(lengths, batch_size=32)
    buck = train_batches(lengths, batch_size=32, batching="bucketed")
    assert len(rand) == len(buck) == 512 and all(len(b) == 1 and b[0].rows == 32 for b in rand + buck)
    mean_rand = np.mean([b[0].inputs for b in rand])
    mean_buck = np.mean([b[0].inputs for b in buck])
    assert mean_rand > 190  # the max of 32 uniform draws from 5..199
    assert mean_buck < inputs.mean() + 5  # sorted pools: each batch close to its rows' own length
    micro = train_batches(lengths, batch_size=32, micro_batch=10)
    assert [m.rows for m in micro[0]] == [10, 10, 10, 2]


def test_evaluation_batches_sort_by_length_and_count_evaluations():
    lengths = SplitLengths(np.array([5, 50, 7, 40, 6]), np.array([2, 9, 3, 2, 4]))
    assert eval_batches(lengths, batch_size=2) == [Batch(2, 6, 4), Batch(2, 40, 3), Batch(1, 50, 9)]
    assert evaluations(30000, 500) == 60 and evaluations(100, 30) == 4


def test_trial_cost_of_a_config():
    cfg = TrialConfig.from_dict({"task": "syn_has0", "seed": 0,
                                 "model": {"config": SHAPES["plain"], "tokenizer": "vocab:synthetic"},
                                 "prompt": {"length": 5, "population": 100},
                                 "train": {"max_steps": 100, "eval_every": 30, "batch_size": 4, "eval_batch_size": 2,
                                           "loss": "label", "eval_mode": "rank"}})
    shape = shape_from_config(SHAPES["plain"])
    train = SplitLengths(np.array([10] * 8), np.array([2] * 8))
    held = SplitLengths(np.array([10, 12, 14]), np.array([2, 2, 2]))
    cost = t5cost.trial_cost(cfg, TaskLengths(train, held, (2, 2), "test"), shape=shape)
    step = t5cost.train_step(shape, [Batch(4, 10, 2)], prompt=5, decoder_positions=1)
    assert cost.step_flops == pytest.approx(step) and cost.padding_share == pytest.approx(0.0, abs=1e-12)
    assert cost.evaluations == 4 and cost.eval_rows == 3
    assert cost.eval_flops == t5cost.rank_flops(shape, [Batch(2, 12, 2), Batch(1, 14, 2)], prompt=5,
                                                label_tokens=(2, 2))
    assert cost.total_flops == pytest.approx(100 * step + 4 * cost.eval_flops)
    assert cost.tokens_per_step == cost.real_tokens_per_step == 4 * (5 + 10 + 1)
