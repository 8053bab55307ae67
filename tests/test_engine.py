"""The prompt-tuning engine on a tiny frozen T5: only the prompt trains, transfer, resume, evaluation, errors."""

import math

import numpy as np
import pytest
import torch

from itsel_ray.artifacts import PromptFileError, TrialFiles, load_prompt, read_json, save_prompt
from itsel_ray.engine.prompt import initial_prompt
from itsel_ray.engine.t5.model import PromptedT5
from itsel_ray.engine.trial import TrialError
from itsel_ray.engine.batching import batch_indices
from itsel_ray.engine.objectives import LOSSES
from itsel_ray.engine.trial import make_batch, predict, prepare_data
from itsel_ray.registry import UnknownNameError
from itsel_ray.tasks import get_task
from itsel_ray.engine.t5 import T5
from tests.conftest import tiny_trial


def _setup(cfg):
    bb = T5.backbone(cfg.model)
    task = get_task(cfg.task)
    data = prepare_data(cfg, task, bb)
    prompt = initial_prompt(cfg.prompt, bb.model.get_input_embeddings().weight, seed=cfg.seed)
    return bb, task, data, PromptedT5(bb.model, prompt)


@pytest.mark.parametrize("loss", ["label", "sequence"])
def test_a_training_step_changes_only_the_prompt(loss):
    cfg = tiny_trial(train={"loss": loss})
    bb, task, data, model = _setup(cfg)
    before = {k: v.clone() for k, v in bb.model.state_dict().items()}
    prompt_before = model.prompt.detach().clone()
    opt = torch.optim.Adam([model.prompt], lr=0.3)
    batch = make_batch(data.train, batch_indices(len(data.train), 8, seed=0, step=0), 0, bb.device)
    LOSSES.get(loss)(model, batch, data.labels, 0).backward()
    grads = [n for n, p in model.named_parameters() if p.grad is not None]
    assert grads == ["prompt"]
    opt.step()
    assert not torch.equal(model.prompt.detach(), prompt_before)
    after = bb.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["prompt"]


def test_the_prompt_is_prepended_to_the_encoder_input_only():
    cfg = tiny_trial()
    bb, _, data, model = _setup(cfg)
    ids = torch.tensor([[5, 6, 7, 1]])
    embeds, mask = model.encoder_inputs(ids, torch.ones_like(ids))
    assert embeds.shape == (1, 10 + 4, bb.d_model) and mask.tolist() == [[1] * 14]
    assert torch.equal(embeds[0, :10], model.prompt.detach())
    assert torch.equal(embeds[0, 10:], bb.model.get_input_embeddings()(ids)[0])
    # the decoder sees only the label tokens: logits have one row per target position
    enc, emask = model.encode(ids, torch.ones_like(ids))
    logits = model.decode_logits(enc, emask, torch.tensor([[0, 3]]))
    assert logits.shape[:2] == (1, 2)


def test_vocab_sample_init_draws_distinct_rows_of_the_population():
    cfg = tiny_trial(prompt={"population": 12, "population_start": 20})
    bb = T5.backbone(cfg.model)
    emb = bb.model.get_input_embeddings().weight.detach()
    prompt = initial_prompt(cfg.prompt, emb, seed=3)
    rows = emb[20:32]
    hits = [[i for i, r in enumerate(rows) if torch.equal(p, r)] for p in prompt]
    assert all(len(h) == 1 for h in hits)
    assert len({h[0] for h in hits}) == 10  # without replacement: 10 different ids of the 12
    assert torch.equal(prompt, initial_prompt(cfg.prompt, emb, seed=3))
    assert not torch.equal(prompt, initial_prompt(cfg.prompt, emb, seed=4))
    first = initial_prompt(tiny_trial(prompt={"init": "first_ids"}).prompt, emb, seed=0)
    assert torch.equal(first, emb[:10])


def test_vocab_sample_with_replacement_is_the_earlier_draw():
    cfg = tiny_trial(prompt={"population": 5, "population_start": 20, "sample_with_replacement": True})
    emb = T5.backbone(cfg.model).model.get_input_embeddings().weight.detach()
    prompt = initial_prompt(cfg.prompt, emb, seed=3)
    ids = torch.randint(20, 25, (10,), generator=torch.Generator().manual_seed(3))  # the draw before the option
    assert torch.equal(prompt, emb[ids])
    assert len(torch.unique(ids)) < 10  # 10 draws from 5 ids repeat some


def test_transfer_starts_exactly_from_the_source_prompt(tmp_path):
    source = np.random.default_rng(0).normal(size=(10, 128)).astype(np.float32)
    T5.run_trial(tiny_trial(train={"max_steps": 2, "eval_every": 2}), tmp_path / "a", init_prompt=source)
    assert np.array_equal(load_prompt(TrialFiles(tmp_path / "a").snapshot(0)), source)
    path = save_prompt(tmp_path / "src.npy", source)
    T5.run_trial(tiny_trial(prompt={"init": "from_file", "path": str(path)}, train={"max_steps": 2, "eval_every": 2}),
              tmp_path / "b")
    assert np.array_equal(load_prompt(TrialFiles(tmp_path / "b").snapshot(0)), source)


def test_a_prompt_file_of_the_wrong_shape_is_refused(tmp_path):
    path = save_prompt(tmp_path / "bad.safetensors", np.zeros((7, 128), np.float32))
    cfg = tiny_trial(prompt={"init": "from_file", "path": str(path)})
    with pytest.raises(PromptFileError, match=r"shape \(7, 128\).*expects \(10, 128\)"):
        T5.run_trial(cfg, tmp_path / "run")
    with pytest.raises(PromptFileError, match="shape"):
        T5.run_trial(tiny_trial(), tmp_path / "run2", init_prompt=np.zeros((10, 64), np.float32))


class Interrupt(Exception):
    pass


def test_resume_reproduces_an_uninterrupted_run_bit_for_bit(tmp_path):
    cfg = tiny_trial(train={"max_steps": 30, "eval_every": 10, "save_every": 10}, optim={"name": "adafactor",
                     "lr": 0.5, "schedule": "linear", "weight_decay": 1e-5, "max_grad_norm": 1.0})
    full = T5.run_trial(cfg, tmp_path / "full")

    def crash_at_10(metrics, checkpointed):
        if metrics["step"] == 10:
            raise Interrupt

    with pytest.raises(Interrupt):
        T5.run_trial(cfg, tmp_path / "part", report=crash_at_10)
    assert read_json(TrialFiles(tmp_path / "part").result)["status"] == "failed"
    resumed_reports = []
    resumed = T5.run_trial(cfg, tmp_path / "part", report=lambda m, c: resumed_reports.append(m["step"]))
    assert resumed_reports == [20, 30]  # nothing before the checkpoint ran again
    a, b = TrialFiles(tmp_path / "full"), TrialFiles(tmp_path / "part")
    for step in (10, 20, 30):
        assert np.array_equal(load_prompt(a.snapshot(step)), load_prompt(b.snapshot(step)))
    assert np.array_equal(load_prompt(a.best_prompt), load_prompt(b.best_prompt))
    strip = lambda h: [{k: v for k, v in e.items()} for e in h]  # noqa: E731
    assert strip(full.history) == strip(resumed.history)
    assert (full.best_score, full.best_step, full.steps) == (resumed.best_score, resumed.best_step, resumed.steps)
    # a finished trial run again returns at once, without training
    again = T5.run_trial(cfg, tmp_path / "part", report=lambda m, c: pytest.fail("no new evaluation expected"))
    assert again.steps == 30 and again.best_score == full.best_score


def test_trial_folder_records_everything(tmp_path):
    cfg = tiny_trial(train={"max_steps": 20, "eval_every": 10, "save_every": 10})
    reports = []
    result = T5.run_trial(cfg, tmp_path, report=lambda m, c: reports.append((m, c)))
    files = TrialFiles(tmp_path)
    record = read_json(files.result)
    assert record["status"] == "done" and record["steps"] == 20 and len(record["history"]) == 2
    assert record["best_score"] == result.best_score == max(h["score"] for h in record["history"])
    assert sorted(files.snapshots()) == [0, 10, 20]
    assert read_json(files.config)["config"] == cfg.to_dict()
    assert [c for _, c in reports] == [True, True] and reports[-1][0]["done"] is True
    assert {"step", "score", "loss", "best_score", "best_step", "eval_accuracy", "eval_valid"} <= set(reports[0][0])
    assert files.log.read_text().count("step=") == 2


def test_rank_and_generation_agree_where_generation_is_valid(tmp_path):
    cfg = tiny_trial(train={"max_steps": 40, "eval_every": 40, "max_eval_examples": 128, "loss": "sequence"})
    T5.run_trial(cfg, tmp_path)
    bb, task, data, model = _setup(cfg)
    with torch.no_grad():
        model.prompt.copy_(torch.from_numpy(load_prompt(TrialFiles(tmp_path).best_prompt)))
    ranked = predict(model, cfg, task, data, bb, mode="rank")
    generated = predict(model, cfg, task, data, bb, mode="generate")
    valid = [i for i, g in enumerate(generated) if g in data.labels.words]
    assert len(valid) >= len(generated) // 2
    assert all(ranked[i] == generated[i] for i in valid)


def test_a_short_run_learns_a_synthetic_task_well_above_chance(tmp_path):
    cfg = tiny_trial(train={"max_steps": 150, "batch_size": 32, "eval_every": 50, "max_eval_examples": 200})
    result = T5.run_trial(cfg, tmp_path)
    assert result.best_score >= 70.0, result.history  # chance is 50 on this balanced task


def test_nan_loss_stops_with_an_error(tmp_path):
    bad = np.full((10, 128), np.nan, dtype=np.float32)
    with pytest.raises(TrialError, match="loss is nan at step 1"):
        T5.run_trial(tiny_trial(), tmp_path, init_prompt=bad)
    record = read_json(TrialFiles(tmp_path).result)
    assert record["status"] == "failed" and "loss is nan" in record["error"]


def test_unknown_options_list_the_valid_names():
    with pytest.raises(UnknownNameError, match="valid names: label, sequence"):
        T5.validate_config(tiny_trial(train={"loss": "hinge"}))
    with pytest.raises(UnknownNameError, match="first_ids, from_file, random, vocab_sample"):
        T5.validate_config(tiny_trial(prompt={"init": "zeros"}))
    with pytest.raises(UnknownNameError, match="unknown task 'nope'"):
        T5.validate_config(tiny_trial(task="nope"))
    with pytest.raises(UnknownNameError, match="abstract, text"):
        T5.validate_config(tiny_trial(data={"label_style": "numbers"}))


def test_resuming_with_a_different_config_is_refused(tmp_path):
    T5.run_trial(tiny_trial(train={"max_steps": 10}), tmp_path)
    with pytest.raises(TrialError, match="different trial config"):
        T5.run_trial(tiny_trial(train={"max_steps": 10}, seed=1), tmp_path)


def test_identical_runs_are_deterministic(tmp_path):
    a = T5.run_trial(tiny_trial(), tmp_path / "a")
    b = T5.run_trial(tiny_trial(), tmp_path / "b")
    assert a.history == b.history
    assert not math.isnan(a.best_score)
