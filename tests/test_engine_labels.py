"""The 23 paper tasks under the real T5 vocabulary: label sets, rank scoring of multi-piece labels, golds as the
model can write them. Needs ../shared/anchors/t5_tokenizer (skipped without it); models are tiny, built here."""

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from itsel_ray.engine.labels import LabelSetError, as_generated, check_label_tokens, label_set, label_token_ids
from itsel_ray.engine.objectives import LabelSet
from itsel_ray.engine.t5.model import PromptedT5, label_scores
from itsel_ray.examples import Example
from itsel_ray.metrics.task_metrics import TASK_METRICS, normalize_answer
from itsel_ray.numbers import parse_number, score_digits, spell_number
from itsel_ray.tasks import SOURCE_TASKS, TARGET_TASKS, Labels, get_task
from itsel_ray.engine.t5 import T5
from tests.conftest import TEST_THREADS
from tests.test_engine_tasks import fixture_rows  # noqa: F401  (fixture rows in the datasets' schemas)

TOKENIZER = Path(__file__).resolve().parents[1] / ".." / "shared" / "anchors" / "t5_tokenizer"
FIXTURES = Path(__file__).parent / "fixtures" / "tasks"
PAPER_TASKS = [*SOURCE_TASKS, *TARGET_TASKS]
STYLES = ("text", "abstract")
PER_EXAMPLE_METRICS = ("accuracy", "squad_em", "squad_f1", "multirc_em")
LABELLED = [(n, s) for n in PAPER_TASKS for s in STYLES if get_task(n).label_words(s) is not None]

pytestmark = pytest.mark.skipif(not TOKENIZER.is_dir(), reason="the T5 tokenizer anchor is not present")


@pytest.fixture(scope="module")
def tok():
    from transformers import T5TokenizerFast

    return T5TokenizerFast.from_pretrained(str(TOKENIZER))


def fixture_examples(name: str, style: str, split: str = "validation") -> list[Example]:
    rows = json.loads((FIXTURES / f"{name}.json").read_text())[split]
    return get_task(name).examples_from_rows(rows, split=split, label_style=style)


def test_there_are_23_paper_tasks():
    assert len(PAPER_TASKS) == 23


# ------------------------------------------------------------------------------------------------ label sets


def test_the_free_text_task_styles_are_the_qa_and_similarity_ones():
    assert {(n, s) for n in PAPER_TASKS for s in STYLES if (n, s) not in LABELLED} == {
        (n, s) for n in ("record", "squad", "drop", "stsb", "cxc") for s in STYLES} | {("cosmosqa", "text")}


@pytest.mark.parametrize("name, style", LABELLED)
def test_label_targets_are_distinct_untruncated_and_round_trip(tok, name, style):
    task = get_task(name)
    words = task.label_words(style)
    ids = label_token_ids(tok, words)
    assert all(s[-1] == tok.eos_token_id for s in ids)
    assert max(len(s) for s in ids) <= task.max_target_length  # what encode_examples truncates to
    assert len({tuple(s) for s in ids}) == len(words)
    check_label_tokens(task, style, words, ids, tok)  # raises on truncation or collision
    # encoded with the trial's own truncation, each target is still its label's full token sequence
    truncated = tok(list(words), truncation=True, max_length=task.max_target_length)["input_ids"]
    assert [list(t) for t in truncated] == ids
    # generation decodes a label exactly back to its word, so generate-mode predictions can match it
    assert tok.batch_decode(ids, skip_special_tokens=True) == list(words)
    labels = label_set(task, tok, style, "cpu")
    assert labels.words == words and labels.ids.shape[0] == len(words)


def test_hellaswag_under_t5_labels_x_and_y_take_three_tokens(tok):
    pieces = [tok.convert_ids_to_tokens(s) for s in label_token_ids(tok, ["W", "X", "Y", "Z"])]
    assert pieces == [["▁W", "</s>"], ["▁", "X", "</s>"], ["▁", "Y", "</s>"], ["▁Z", "</s>"]]
    assert get_task("hellaswag").max_target_length == 3


def test_a_truncating_target_length_stops_the_trial_naming_task_and_labels(tok):
    old = dataclasses.replace(get_task("hellaswag"), max_target_length=2)  # the former declaration
    with pytest.raises(LabelSetError, match=r"task hellaswag, text labels: max_target_length 2 truncates 'X' -> "
                                            r"\[▁ X </s>\] \(3 tokens\), 'Y'.*at least 3"):
        label_set(old, tok, "text", "cpu")
    with pytest.raises(LabelSetError, match=r"abstract labels: .*'0'"):
        label_set(old, tok, "abstract", "cpu")


def test_labels_that_tokenise_alike_are_refused(tok):
    clash = dataclasses.replace(get_task("boolq"), labels=Labels(("True", "True ")))
    with pytest.raises(LabelSetError, match=r"task boolq, text labels: 'True' and 'True ' tokenise to the same ids"):
        label_set(clash, tok, "text", "cpu")


def test_label_set_build_refuses_duplicate_rows():
    with pytest.raises(ValueError, match="token sequence of \\['Y'\\] repeats"):
        LabelSet.build(["X", "Y"], [[3, 1], [3, 1]], 0, "cpu")
    with pytest.raises(ValueError, match="word of \\['a'\\] repeats"):
        LabelSet.build(["a", "a"], [[5, 1], [6, 1]], 0, "cpu")


# ------------------------------------------------------------------------------------------------ rank scoring


@pytest.fixture(scope="module")
def vocab_model():
    """A narrow T5 whose embedding table has the real vocabulary's 32,128 rows."""
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(0)
    cfg = T5Config(vocab_size=32128, d_model=16, d_ff=32, d_kv=8, num_heads=2, num_layers=1, num_decoder_layers=2,
                   dropout_rate=0.0, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    backbone = T5ForConditionalGeneration(cfg).requires_grad_(False).eval()
    return PromptedT5(backbone, torch.randn(4, 16))


def _independent_log_prob(model: PromptedT5, embeds, mask, ids: list[int]) -> float:
    """Sum of log p(y_t | y_<t), one decoder call per token through the backbone's own forward (its LM head)."""
    total = 0.0
    for t, y in enumerate(ids):
        prefix = torch.tensor([[0, *ids[:t]]])
        logits = model.backbone(inputs_embeds=embeds, attention_mask=mask, decoder_input_ids=prefix).logits
        total += float(torch.log_softmax(logits[0, -1].double(), dim=-1)[y])
    return total


@pytest.mark.parametrize("name", ["rte", "cb", "hellaswag"])
def test_rank_scores_equal_the_summed_token_log_probabilities(tok, vocab_model, name):
    labels = label_set(get_task(name), tok, "text", "cpu")
    words = labels.words
    if name == "rte":
        assert [len(s) - 1 for s in label_token_ids(tok, words)] == [4, 5]  # entailment / not_entailment pieces
    text = fixture_examples(name, "text")[0].input
    enc_ids = tok([text], return_tensors="pt")
    with torch.no_grad():
        embeds, mask = vocab_model.encoder_inputs(enc_ids["input_ids"], enc_ids["attention_mask"])
        enc, emask = vocab_model.encode(enc_ids["input_ids"], enc_ids["attention_mask"])
        scores = label_scores(vocab_model, enc, emask, labels)[0]
        for j, word in enumerate(words):
            scored = labels.ids[j][labels.mask[j].bool()].tolist()  # EOS left out unless labels share a prefix
            expected = _independent_log_prob(vocab_model, embeds, mask, scored)
            assert math.isclose(float(scores[j]), expected, rel_tol=1e-5, abs_tol=1e-4), (word, scored)


def test_rank_scores_are_fp32_under_bf16_autocast(tok, vocab_model):
    labels = label_set(get_task("rte"), tok, "text", "cpu")
    ids = tok(["rte sentence1: a sentence2: b"], return_tensors="pt")
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        enc, mask = vocab_model.encode(ids["input_ids"], ids["attention_mask"])
        logits = vocab_model.decode_logits(enc, mask, torch.zeros(1, 3, dtype=torch.long))
        scores = label_scores(vocab_model, enc, mask, labels)
    assert logits.dtype == torch.float32 and scores.dtype == torch.float32


# ------------------------------------------------------------------------------------------------ golds and inputs


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("name", PAPER_TASKS)
def test_fixture_inputs_and_golds_survive_the_tokenizer(tok, name, style):
    """Inputs keep their text (no unknown pieces, the task prefix first); every gold fits the target length and,
    written back from its ids, scores 100 with the task's metric against the gold in that form: what a model that
    produces the gold's tokens would score."""
    task = get_task(name)
    for split in ("train", "validation"):
        examples = fixture_examples(name, style, split)
        inputs = tok([e.input for e in examples])["input_ids"]
        assert all(tok.unk_token_id not in ids for ids in inputs)
        decoded = tok.batch_decode(inputs, skip_special_tokens=True)
        assert all(d.startswith(task.prefix) for d in decoded)
        golds = [g for e in examples for g in e.golds]
        assert max(len(ids) for ids in tok(golds)["input_ids"]) <= task.max_target_length
    golds = as_generated(tok, examples, max_target=task.max_target_length)
    perfect = [g.target for g in golds]
    score = task.score(perfect, golds, label_style=style)
    per_example = [m for m in task.metrics if m in PER_EXAMPLE_METRICS]  # F1, MCC and correlations need more rows
    assert all(score[m] == pytest.approx(100.0) for m in per_example), score
    assert TASK_METRICS.get("accuracy")(perfect, golds) == 100.0
    for raw, gen in zip(examples, golds):
        if task.category == "qa" or name == "record":  # normalised comparisons see the same answer either way
            assert {normalize_answer(a) for a in raw.golds} == {normalize_answer(a) for a in gen.golds}
        if raw.label is not None:
            assert gen == raw  # closed label sets are compared as written


@pytest.mark.parametrize("name", ["stsb", "cxc"])
@pytest.mark.parametrize("style", STYLES)
def test_every_similarity_target_round_trips_within_the_target_length(tok, name, style):
    task = get_task(name)
    grid = [round(0.1 * i, 1) for i in range(51)]
    texts = [spell_number(v) if style == "text" else score_digits(v) for v in grid]
    ids = tok(texts)["input_ids"]
    assert max(len(s) for s in ids) <= task.max_target_length
    assert [parse_number(t) for t in tok.batch_decode(ids, skip_special_tokens=True)] == grid


def test_cosmosqa_text_golds_are_compared_in_the_form_the_model_can_produce(tok):
    """A gold holding characters outside T5's vocabulary ('{', '~', '½') can never be generated: against the raw
    gold a perfect model would score 0, against the gold written back from its token ids it scores 100."""
    task = get_task("cosmosqa")
    row = json.loads((FIXTURES / "cosmosqa.json").read_text())["validation"][0]
    row = {**row, "answer1": "She sold it for ~½ the price {again}."}
    [example] = task.examples_from_rows([row], split="validation", label_style="text")
    assert example.label is None and "{" in example.target
    produced = tok.batch_decode(tok([example.target])["input_ids"], skip_special_tokens=True)[0].strip()
    assert "{" not in produced
    assert task.score([produced], [example])["accuracy"] == 0.0
    golds = as_generated(tok, [example], max_target=task.max_target_length)
    assert golds[0].target == produced
    assert task.score([produced], golds)["accuracy"] == 100.0
    assert task.score(["She will sell the car."], golds)["accuracy"] == 0.0


def test_rank_and_label_loss_on_the_real_vocabulary_train_hellaswag_to_distinct_targets(tok, vocab_model):
    """With the fixed declaration X and Y are different training targets and rank evaluation can answer Y."""
    task = get_task("hellaswag")
    ids = tok(list(task.label_words("text")), truncation=True, max_length=task.max_target_length)["input_ids"]
    assert len({tuple(s) for s in ids}) == 4
    labels = label_set(task, tok, "text", "cpu")
    rows = labels.ids.tolist()
    # "X" and "Y" share their first piece "▁", so the scores differ only through their second piece
    assert rows[1][0] == rows[2][0] and rows[1][1] != rows[2][1]
    with torch.no_grad():
        enc = torch.randn(3, 5, 16)
        scores = label_scores(vocab_model, enc, torch.ones(3, 5, dtype=torch.long), labels)
    assert np.unique(scores.numpy().round(6), axis=1).shape[1] == 4


# ------------------------------------------------------------------------------------------------ whole trials


def _real_vocab_trial(task: str, loss: str, mode: str, style: str = "text"):
    from itsel_ray.trial_config import TrialConfig

    return TrialConfig.from_dict({
        "task": task, "seed": 1, "data": {"label_style": style},
        "model": {"config": {"d_model": 16, "d_ff": 32, "d_kv": 8, "num_heads": 2, "num_layers": 1,
                             "num_decoder_layers": 1, "dropout_rate": 0.0}, "tokenizer": str(TOKENIZER)},
        "prompt": {"length": 4}, "optim": {"name": "adafactor", "lr": 0.5},
        "train": {"max_steps": 2, "batch_size": 2, "eval_every": 2, "save_every": 2, "loss": loss,
                  "eval_mode": mode, "max_new_tokens": 4, "threads": TEST_THREADS},
    })


@pytest.fixture
def fresh_data_cache():
    from itsel_ray.engine.data import clear_cache

    clear_cache()  # the cache is keyed by task name, not by its declaration
    yield
    clear_cache()


@pytest.mark.parametrize("style", STYLES)
def test_hellaswag_trains_and_ranks_under_the_real_vocabulary(style, fixture_rows, fresh_data_cache, tmp_path):  # noqa: F811
    from itsel_ray.artifacts import TrialFiles, read_json

    T5.run_trial(_real_vocab_trial("hellaswag", "label", "rank", style), tmp_path)
    record = read_json(TrialFiles(tmp_path).result)
    assert record["status"] == "done" and record["history"][0]["valid"] == 100.0


def test_a_trial_whose_target_length_truncates_a_label_stops_at_the_start(fixture_rows, fresh_data_cache,  # noqa: F811
                                                                            monkeypatch, tmp_path):
    from itsel_ray.artifacts import TrialFiles, read_json
    from itsel_ray.tasks import spec as spec_module

    monkeypatch.setitem(spec_module.TASKS._items, "hellaswag",
                        dataclasses.replace(get_task("hellaswag"), max_target_length=2))
    with pytest.raises(LabelSetError, match="task hellaswag, text labels: max_target_length 2 truncates 'X'"):
        T5.run_trial(_real_vocab_trial("hellaswag", "sequence", "generate"), tmp_path)
    record = read_json(TrialFiles(tmp_path).result)
    assert record["status"] == "failed" and "truncates 'X'" in record["error"]
    assert not TrialFiles(tmp_path).snapshots()  # nothing trained
