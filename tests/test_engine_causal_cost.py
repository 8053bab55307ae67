"""The causal-LM cost model against PyTorch's FLOP counter, and `--dry-run`'s cost table for `engine: causal`.

`torch.utils.flop_counter.FlopCounterMode` counts the matrix products of a forward or backward pass; attention runs
under SDPA's math backend (the CPU's fused kernel is invisible to the counter), which computes it with the products
the formula counts. Every check is exact (integer FLOPs) on a tiny GPT-2 and a tiny Llama with grouped-query
attention that differ in every dimension the formula reads (hidden width, layers, heads, key/value heads, a head
width that is not hidden / heads, MLP width and kind, vocabulary), on ragged rows whose longest joined sequence is
shorter than the longest input plus the longest target.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from itsel_ray.engine.causal import cost as cc
from itsel_ray.engine.causal.model import SEPARATOR_BOUND, PromptedCausalLM, SequenceFormat
from itsel_ray.engine.causal.shapes import shape_from_config
from itsel_ray.engine.cost import Batch, SplitLengths, TaskLengths, eval_batches, train_batches
from itsel_ray.engine.objectives import LOSSES, Batch as TrainBatch, LabelSet
from itsel_ray.trial_config import TrialConfig
from tests.test_engine_features import T5_TOKENIZER

SHAPES = {
    "gpt2": dict(model_type="gpt2", vocab_size=57, n_embd=24, n_layer=3, n_head=4, n_inner=40, n_positions=64),
    "llama-gqa": dict(model_type="llama", vocab_size=61, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=6, max_position_embeddings=64,
                      tie_word_embeddings=False),
}
EOS, PAD, SEP = 1, 0, (7, 8)
P = 3


def build(name: str, **extra):
    fields = {**SHAPES[name], **extra}
    family = fields.pop("model_type")
    config_cls, model_cls = {"gpt2": (transformers.GPT2Config, transformers.GPT2LMHeadModel),
                             "llama": (transformers.LlamaConfig, transformers.LlamaForCausalLM)}[family]
    torch.manual_seed(0)
    lm = model_cls(config_cls(bos_token_id=EOS, eos_token_id=EOS, pad_token_id=PAD, **fields)).requires_grad_(False)
    shape = shape_from_config({**SHAPES[name], **extra})
    model = PromptedCausalLM(lm, torch.randn(P, shape.hidden), SequenceFormat(EOS, PAD, SEP))
    return model, shape


def counted(fn) -> int:
    with sdpa_kernel(SDPBackend.MATH):
        counter = FlopCounterMode(display=False)
        with counter:
            fn()
    return counter.get_total_flops()


def padded(rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    from itsel_ray.engine.batching import pad

    return pad(rows, PAD)


def random_rows(gen: torch.Generator, lengths: list[int], vocab: int) -> list[list[int]]:
    """Rows as the prepared data holds them: `n - 1` tokens and a closing EOS."""
    return [torch.randint(10, vocab, (n - 1,), generator=gen).tolist() + [EOS] for n in lengths]


def shape_of(inputs: list[list[int]], targets: list[list[int]] | None = None) -> Batch:
    """The cost model's Batch of these rows, as engine/cost.py records it."""
    lengths = SplitLengths(np.array([len(r) for r in inputs]),
                           np.array([len(r) for r in targets] if targets else [1] * len(inputs)))
    return eval_batches(lengths, batch_size=len(inputs))[0]


LABELS = [[30, 31, EOS], [32, 33, 34, EOS], [35, 36, 37, 38, EOS], [39, EOS]]  # 2, 3, 4 and 1 tokens scored
SINGLE = [[40, EOS], [41, EOS], [42, EOS]]
KW = dict(prompt=P, separator=len(SEP), drop=1)


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_a_sequence_loss_step_is_counted_exactly(name):
    model, shape = build(name)
    gen = torch.Generator().manual_seed(1)
    inputs = random_rows(gen, [9, 4, 7], shape.vocab_size)
    targets = random_rows(gen, [2, 6, 3], shape.vocab_size)  # the longest joined row: 9 + 2, not 9 + 6
    ids, mask = padded(inputs)
    tgt, _ = padded(targets)
    batch = TrainBatch(ids, mask, tgt, None)
    model.backbone.train()
    box = {}
    forward = counted(lambda: box.update(loss=LOSSES.get("sequence")(model, batch, None, PAD)))
    backward = counted(lambda: box["loss"].backward())
    b = shape_of(inputs, targets)
    assert (b.inputs, b.targets, b.joined, b.real_targets) == (9, 6, 11, 11)
    length = P + 11 - 1 + len(SEP)
    fwd, bwd = cc.sequence_pass(shape, 3, length, 11)
    assert (forward, backward) == (fwd, bwd)
    assert cc.train_step(shape, [b], **KW) == forward + backward
    # without the recorded joined length and target tokens, the shape's bounds: more, never less
    assert cc.train_step(shape, [Batch(3, 9, 6)], **KW) > forward + backward


NO_DROPOUT = {"resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0}


@pytest.mark.parametrize("name, extra", [("gpt2", {}), ("gpt2", NO_DROPOUT), ("llama-gqa", {})],
                         ids=["gpt2", "gpt2-no-dropout", "llama-gqa"])
def test_activation_checkpointing_replays_each_layer_up_to_its_last_saved_tensor(name, extra):
    from itsel_ray.engine.backbone import set_activation_checkpointing

    model, shape = build(name, **extra)
    set_activation_checkpointing(model.backbone, True)
    gen = torch.Generator().manual_seed(1)
    inputs = random_rows(gen, [9, 4, 7], shape.vocab_size)
    targets = random_rows(gen, [2, 6, 3], shape.vocab_size)
    ids, mask = padded(inputs)
    tgt, _ = padded(targets)
    model.backbone.train()
    box = {}
    forward = counted(lambda: box.update(loss=LOSSES.get("sequence")(model, TrainBatch(ids, mask, tgt, None), None,
                                                                     PAD)))
    backward = counted(lambda: box["loss"].backward())
    length = P + 11 - 1 + len(SEP)
    plain = cc.sequence_pass(shape, 3, length, 11)
    assert forward == plain[0] and backward == plain[1] + cc.replayed(shape, 3, length)
    skipped = cc.backbone(shape, 3, length)[0] - cc.replayed(shape, 3, length)
    assert skipped == (0 if extra is not NO_DROPOUT and name == "gpt2" else shape.layers * cc.linear(
        3 * length, shape.intermediate, shape.hidden))
    assert cc.train_step(shape, [shape_of(inputs, targets)], checkpointing=True, **KW) == forward + backward


@pytest.mark.parametrize("name", sorted(SHAPES))
@pytest.mark.parametrize("words", [LABELS, SINGLE], ids=["multi-token", "single-token"])
def test_micro_batches_and_the_label_loss_are_counted_exactly(name, words):
    model, shape = build(name)
    gen = torch.Generator().manual_seed(2)
    labels = LabelSet.build([f"w{i}" for i in range(len(words))], words, PAD, "cpu")
    loss = LOSSES.get("label")
    model.backbone.train()
    micro = [random_rows(gen, [6, 3], shape.vocab_size), random_rows(gen, [4, 8], shape.vocab_size)]
    total = 0
    for rows in micro:
        ids, mask = padded(rows)
        b = TrainBatch(ids, mask, torch.ones(2, 1, dtype=torch.long), torch.tensor([0, 2]))
        box = {}
        total += counted(lambda: box.update(v=loss(model, b, labels, PAD)))
        total += counted(lambda: box["v"].backward())
    tokens = [len(w) for w in words]
    step = [shape_of(rows) for rows in micro]
    assert cc.train_step(shape, step, label_tokens=tokens, **KW) == total


@pytest.mark.parametrize("name", sorted(SHAPES))
@pytest.mark.parametrize("words", [LABELS, SINGLE], ids=["multi-token", "single-token"])
def test_rank_evaluation_is_counted_exactly(name, words):
    model, shape = build(name)
    labels = LabelSet.build([f"w{i}" for i in range(len(words))], words, PAD, "cpu")
    inputs = random_rows(torch.Generator().manual_seed(4), [12, 9, 11, 4], shape.vocab_size)
    ids, mask = padded(inputs)
    model.backbone.eval()
    with torch.no_grad():
        flops = counted(lambda: model.label_scores(ids, mask, labels))
    tokens = [len(w) for w in words]
    assert flops == cc.rank_flops(shape, [shape_of(inputs)], label_tokens=tokens, **KW)
    if words is SINGLE:  # one pass, one head row per example
        assert flops == cc.backbone(shape, 4, P + 11 + 2)[0] + cc.head(shape, 4)


@pytest.mark.parametrize("name", sorted(SHAPES))
@pytest.mark.parametrize("cap", [1, 5])
def test_greedy_generation_on_the_cache_is_counted_exactly(name, cap):
    model, shape = build(name)
    inputs = random_rows(torch.Generator().manual_seed(5), [10, 6, 8], shape.vocab_size)
    ids, mask = padded(inputs)
    model.backbone.eval()
    box = {}
    with torch.no_grad():
        flops = counted(lambda: box.update(out=model.generate(ids, mask, max_new_tokens=cap)))
    tokens = box["out"].shape[1]
    assert 1 <= tokens <= cap
    assert flops == cc.generation(shape, 3, P + 10 - 1 + len(SEP), tokens)
    # a batch whose longest gold target (EOS included) is `tokens` long: what the trial's cost counts
    gold = SplitLengths(np.array([10, 6, 8]), np.array([tokens, 1, 1]))
    assert flops == cc.generate_flops(shape, eval_batches(gold, batch_size=3), max_new_tokens=cap, **KW)


def test_the_formula_takes_arrays():
    shape = shape_from_config(SHAPES["llama-gqa"])
    fwd, bwd = cc.backbone(shape, 1, np.array([10, 20, 30]))
    assert fwd.shape == (3,) and fwd[1] == cc.backbone(shape, 1, 20)[0] and bwd[2] > fwd[2]
    gen = cc.generation(shape, 2, 15, np.array([1, 4]))
    assert gen[0] == cc.generation(shape, 2, 15, 1) and gen[1] == cc.generation(shape, 2, 15, 4)


def test_grouped_query_attention_narrows_only_the_key_and_value_projections():
    gqa = shape_from_config(SHAPES["llama-gqa"])
    mha = shape_from_config({**SHAPES["llama-gqa"], "num_key_value_heads": 4})
    assert cc.attention(gqa, 2, 5, 7) == cc.attention(mha, 2, 5, 7)
    assert cc.projections(mha, 10) - cc.projections(gqa, 10) == cc.linear(10, 32, 2 * 2 * 6)


def test_training_batches_record_the_longest_joined_row_and_the_real_target_tokens():
    lengths = SplitLengths(np.array([9, 4, 7, 3]), np.array([2, 6, 3, 1]))
    (b,), = train_batches(lengths, batch_size=4, samples=1, batching="bucketed")
    assert (b.rows, b.inputs, b.targets, b.joined, b.real_targets) == (4, 9, 6, 11, 12)


def trial(**train) -> TrialConfig:
    return TrialConfig.from_dict({
        "task": "syn_has0", "seed": 0,
        "model": {"config": SHAPES["llama-gqa"], "tokenizer": "vocab:synthetic"},
        "prompt": {"length": P, "population": 100},
        "train": {"max_steps": 100, "eval_every": 30, "batch_size": 4, "eval_batch_size": 2, **train}})


def test_the_word_level_vocabulary_marks_the_boundary_with_the_eos_it_drops():
    assert cc.sequence_format_lengths("vocab:synthetic") == (1, 1)


def test_trial_cost_of_a_config():
    cfg = trial(loss="label", eval_mode="rank")
    shape = shape_from_config(SHAPES["llama-gqa"])
    train = SplitLengths(np.array([10] * 8), np.array([2] * 8))
    held = SplitLengths(np.array([10, 12, 14]), np.array([2, 2, 2]))
    cost = cc.trial_cost(cfg, TaskLengths(train, held, (2, 2), "test"), shape=shape)
    kw = dict(prompt=P, separator=1, drop=1)
    step = cc.train_step(shape, [Batch(4, 10, 2)], label_tokens=(2, 2), **kw)
    assert step == sum(cc.backbone(shape, 4, P + 10)) + 2 * cc.head(shape, 4)  # input EOS gives way to the EOS mark
    assert cost.step_flops == pytest.approx(step) and cost.padding_share == pytest.approx(0.0, abs=1e-12)
    assert cost.evaluations == 4 and cost.eval_rows == 3
    assert cost.eval_flops == cc.rank_flops(shape, [Batch(2, 12, 2), Batch(1, 14, 2)], label_tokens=(2, 2), **kw)
    assert cost.total_flops == pytest.approx(100 * step + 4 * cost.eval_flops)
    assert cost.tokens_per_step == cost.real_tokens_per_step == 4 * (P + 10)
    ckpt = cc.trial_cost(trial(loss="label", eval_mode="rank", activation_checkpointing=True),
                         TaskLengths(train, held, (2, 2), "test"), shape=shape)
    assert ckpt.step_flops == pytest.approx(step + cc.replayed(shape, 4, P + 10))
    assert ckpt.eval_flops == cost.eval_flops


def test_a_tokenizer_that_cannot_be_loaded_counts_the_separators_bound(monkeypatch):
    def unavailable(spec):
        raise OSError(f"{spec} is not in the cache")

    monkeypatch.setattr(cc, "sequence_format_lengths", unavailable)
    lengths = TaskLengths(SplitLengths(np.array([10] * 8), np.array([2] * 8)), None, (2, 2), "test")
    cost = cc.trial_cost(trial(loss="label", eval_mode="rank"), lengths, shape=shape_from_config(SHAPES["llama-gqa"]))
    assert cost.tokens_per_step == 4 * (P + 10 + SEPARATOR_BOUND)
    assert any("could not be loaded" in n for n in cost.notes)


def test_padding_share_of_the_sequence_loss_counts_the_joined_rows():
    """Half the rows long input + short target, half the reverse: every row joins to the same length, so a batch
    pads nothing even though its longest input and longest target come from different rows (the LM head's share
    differs from the unpadded mean only by the sampling of the steps' rows)."""
    cfg = trial(loss="sequence", eval_mode="generate")
    shape = shape_from_config(SHAPES["llama-gqa"])
    n = 40
    long = np.arange(n) % 2 == 0
    lengths = TaskLengths(SplitLengths(np.where(long, 20, 5), np.where(long, 2, 17)), None, None, "test")
    cost = cc.trial_cost(cfg, lengths, shape=shape)
    assert abs(cost.padding_share) < 2e-3
    assert cost.tokens_per_step == cost.real_tokens_per_step == 4 * (P + 22 - 1 + 1)
    bound = cc.train_step(shape, [Batch(4, 20, 17)], prompt=P, separator=1, drop=1)  # longest input + target
    assert cost.step_flops < 0.8 * bound
    assert cost.eval_flops is None and cost.notes == ()


def test_dry_run_of_a_causal_sweep_prints_a_cost_table(tmp_path, capsys):
    from itsel_ray.sweep import cli

    code = cli.main(["transfer", "--sweep", "demo-causal", "--dry-run", "--set", "grid.sources=[syn_has0]",
                     "--set", "grid.targets=[syn_and45]", "--storage", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "not modelled" not in out
    assert "cost per trial (FLOPs of the model's matrix products)" in out and "sweep total:" in out
    rows = [line.split() for line in out.splitlines() if line.endswith("declared limits (upper bound)")]
    assert {(r[0], r[1], r[2]) for r in rows} == {("tune", "source", "syn_has0"), ("tune", "target", "syn_and45"),
                                               ("transfer", "transfer", "syn_and45")}


@pytest.mark.skipif(not T5_TOKENIZER.is_dir(), reason="the real T5 tokenizer anchor is not available")
def test_real_t5_tokenised_text_through_the_engines_own_model_is_counted_exactly():
    """The chain a trial runs, under the real T5 vocabulary: its tokenizer's separator and closing EOS (read by
    `sequence_format_lengths`), rows encoded as `prepare` encodes them, the backbone `build_model` makes, and the
    cost model applied to the batch shape engine/cost.py records from the rows' lengths."""
    from itsel_ray.data.encoded import encode_targets
    from itsel_ray.data.tokenizers import build_tokenizer
    from itsel_ray.engine.causal.model import build_model
    from itsel_ray.trial_config import ModelConfig

    spec = str(T5_TOKENIZER)
    tok = build_tokenizer(spec)
    config = {**SHAPES["llama-gqa"], "vocab_size": 64}
    lm = build_model(ModelConfig(config=config, tokenizer=spec), vocab_size=len(tok)).requires_grad_(False)
    shape = shape_from_config({**config, "vocab_size": lm.get_input_embeddings().weight.shape[0]})
    model = PromptedCausalLM(lm, torch.randn(P, shape.hidden))
    texts = ["sst2 sentence: a gripping, beautifully shot film", "sst2 sentence: dull", "sst2 sentence: it is fine"]
    inputs = tok(texts)["input_ids"]
    targets = encode_targets(tok, ["positive", "negative", "not entirely clear"])
    separator, drop = cc.sequence_format_lengths(spec)
    assert drop == 1 and separator == len(model.fmt.separator) >= 1
    ids, mask = padded(inputs)
    tgt, _ = padded(targets)
    model.backbone.train()
    box = {}
    flops = counted(lambda: box.update(loss=LOSSES.get("sequence")(model, TrainBatch(ids, mask, tgt, None), None,
                                                                    model.fmt.pad_id)))
    flops += counted(lambda: box["loss"].backward())
    b = shape_of(inputs, targets)
    assert cc.train_step(shape, [b], prompt=P, separator=separator, drop=drop) == flops
