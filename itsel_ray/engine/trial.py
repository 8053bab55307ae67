"""One prompt-tuning trial from a config: train, evaluate, keep the best prompt, checkpoint, resume.

The loop every prompt-tuning engine shares: the engine (`engine/tuning.py`) brings its backbone and its
`PromptedModel`, this module the rest (batches, optimiser, precision, evaluation, the trial folder). `run_trial` is a
plain function with a reporting callback and no Ray import; the sweep wraps it in a Tune trainable, tests call it
directly. Everything it produces lives in one work folder (`TrialFiles`), which is also the unit the sweep
checkpoints: copying the folder and calling `run_trial` on it again resumes the run exactly.
"""

from __future__ import annotations

import io
import json
import math
import platform
import subprocess
import time
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from itsel_ray.artifacts import StateError, TrialFiles, TrialResult, load_prompt, read_json, save_prompt, write_json
from itsel_ray.engine.base import ModelInfo, Report, TrialError  # noqa: F401  (TrialError re-exported)
from itsel_ray.engine.backbone import Backbone, set_activation_checkpointing
from itsel_ray.engine.batching import bucket_keys, pad, training_batch
from itsel_ray.engine.data import TrialData, make_batch, prepare_data  # noqa: F401  (re-exported)
from itsel_ray.engine.labels import as_generated
from itsel_ray.engine.objectives import EVAL_MODES, LOSSES, Loss
from itsel_ray.engine.optim import OPTIMIZERS, SCHEDULES, build_optimizer
from itsel_ray.engine.precision import PRECISIONS, autocast, resolve_precision
from itsel_ray.engine.prompt import PROMPT_INITS, PromptedModel, initial_prompt, population_size
from itsel_ray.examples import Example
from itsel_ray.registry import UnknownNameError
from itsel_ray.tasks import TaskSpec, get_task
from itsel_ray.tasks.spec import EVAL_SPLITS, LABEL_STYLES
from itsel_ray.trial_config import TrialConfig


def validate_options(cfg: TrialConfig, model: ModelInfo) -> None:
    """Check `cfg` against its task, the shared options and the model's shape without loading the model, so that
    nothing that would fail inside a trial starts: names (raising with the valid ones), the task x label style x
    loss x eval mode combination, the prompt's id range, file and shape."""
    task = get_task(cfg.task)
    for registry, name in (
        (PROMPT_INITS, cfg.prompt.init),
        (OPTIMIZERS, cfg.optim.name),
        (SCHEDULES, cfg.optim.schedule),
        (LOSSES, cfg.train.loss),
        (EVAL_MODES, cfg.train.eval_mode),
    ):
        registry.get(name)
    if cfg.train.precision != "auto":
        PRECISIONS.get(cfg.train.precision)
    for kind, name, valid in (("label style", cfg.data.label_style, LABEL_STYLES), ("eval split", cfg.data.eval_split, EVAL_SPLITS)):
        if name not in valid:
            raise UnknownNameError(kind, name, sorted(valid))
    check_task_options(task, cfg)
    check_prompt_options(cfg, model)


# What needs a closed label set in the trial's label style (the label words score each example).
NEEDS_LABELS = {"train.loss": ("label",), "train.eval_mode": ("rank",)}


def check_task_options(task: TaskSpec, cfg: TrialConfig) -> None:
    """Refuse a loss or eval mode the task cannot use in its label style (CosmosQA's text targets are free text)."""
    if task.label_words(cfg.data.label_style) is not None:
        return
    for key, names in NEEDS_LABELS.items():
        value = getattr(cfg.train, key.split(".")[1])
        if value in names:
            raise TrialError(
                f"task {task.name} has free-text targets in the {cfg.data.label_style!r} label style: {key} "
                f"{value!r} needs a closed label set (use train.loss 'sequence' and train.eval_mode 'generate'"
                + (", or data.label_style 'abstract')" if task.label_words("abstract") is not None else ")"))


def check_prompt_options(cfg: TrialConfig, model: ModelInfo) -> None:
    """The prompt file must exist and hold a [length, d_model] prompt; the sampled ids must fit the vocabulary,
    where it is known without loading."""
    p = cfg.prompt
    if p.init == "from_file":
        if not Path(p.path).expanduser().is_file():
            raise TrialError(f"prompt.path {p.path!r} (prompt.init 'from_file') is not a file")
        load_prompt(Path(p.path).expanduser(), shape=(p.length, model.d_model))
    vocab = model.vocab_size
    if vocab is None:
        return
    if p.init == "vocab_sample":
        try:
            population_size(p, vocab)
        except ValueError as err:
            raise TrialError(f"{err} (model {cfg.model.name if cfg.model.config is None else 'model.config'})") from None
    if p.init == "first_ids" and p.length > vocab:
        raise TrialError(f"prompt.length {p.length} exceeds the vocabulary size {vocab} (prompt.init 'first_ids')")


# ------------------------------------------------------------------------------------------------- evaluation


def predict(model: PromptedModel, cfg: TrialConfig, task: TaskSpec, data: TrialData, bb: Backbone,
            mode: str | None = None) -> list[str]:
    """Predicted strings for every eval example, in order (`mode` defaults to cfg.train.eval_mode)."""
    fn = EVAL_MODES.get(mode or cfg.train.eval_mode)
    max_new = cfg.train.max_new_tokens or task.max_target_length
    order = sorted(range(len(data.eval)), key=lambda i: len(data.eval.inputs[i]))  # less padding per batch
    preds: list[str] = [""] * len(order)
    was_training = model.backbone.training
    model.backbone.eval()
    try:
        with torch.no_grad(), autocast(cfg.train.precision, bb.device):
            for start in range(0, len(order), cfg.train.eval_batch_size):
                chunk = order[start : start + cfg.train.eval_batch_size]
                ids, mask = pad([data.eval.inputs[i] for i in chunk], bb.tokenizer.pad_token_id)
                out = fn(model, ids.to(bb.device), mask.to(bb.device), labels=data.labels,
                         tokenizer=bb.tokenizer, max_new_tokens=max_new)
                for i, p in zip(chunk, out):
                    preds[i] = p
    finally:
        model.backbone.train(was_training)
    return preds


def evaluate(model: PromptedModel, cfg: TrialConfig, task: TaskSpec, data: TrialData, bb: Backbone,
             golds: list[Example] | None = None) -> dict:
    """Task metrics on the eval split (x100) plus "valid": the share of predictions inside the label set.

    golds: the eval examples as scored (default: free-text golds in the form the tokenizer can produce).
    """
    preds = predict(model, cfg, task, data, bb)
    if golds is None:
        golds = as_generated(bb.tokenizer, data.eval_examples, max_target=task.max_target_length)
    metrics = task.score(preds, golds, label_style=cfg.data.label_style)
    if data.labels is not None:
        metrics["valid"] = 100.0 * sum(p in data.labels.words for p in preds) / len(preds)
    return metrics


# ------------------------------------------------------------------------------------------------- the trial


def run_trial(
    cfg: TrialConfig, work_dir: str | Path, *, engine, report: Report | None = None,
    init_prompt: np.ndarray | None = None
) -> TrialResult:
    """Train `cfg` with `engine`'s model in `work_dir`, resuming from `work_dir/state.pt` when present.

    report(metrics, checkpointed) is called after every evaluation, once the resume state for that step is on disk.
    init_prompt ([P, H]) starts the prompt from a given array (transfer); otherwise cfg.prompt.init decides.
    """
    files = TrialFiles(work_dir)
    files.root.mkdir(parents=True, exist_ok=True)
    engine.validate_config(cfg)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    try:
        return _Trainer(cfg, files, report or (lambda m, c: None), init_prompt, engine).run()
    except BaseException as err:
        if not isinstance(err, (KeyboardInterrupt, SystemExit)):
            _mark_failed(files, err)
        raise


def _saved_config(files: TrialFiles) -> dict | None:
    """The folder's trial identity with today's defaults filled in, so a folder written before an option existed
    (and so run with its default) still resumes; None when there is none or it no longer parses."""
    if not files.config.is_file():
        return None
    try:
        return TrialConfig.from_dict(read_json(files.config)["config"]).identity()
    except (KeyError, TypeError, ValueError):
        return None


def _load_state(files: TrialFiles) -> tuple[dict, Path]:
    """The newest readable resume state (state.pt, else state.prev.pt); StateError naming both when none reads."""
    tried = []
    for path in files.state_candidates():
        try:
            return torch.load(path, map_location="cpu", weights_only=True), path
        except Exception as err:  # truncated, or not a state at all
            tried.append(f"{path.name}: {type(err).__name__}")
    raise StateError(f"{files.root}: no readable resume state ({'; '.join(tried) or 'none saved'})")


def recover_record(cfg: TrialConfig, work_dir) -> dict | None:
    """result.json rebuilt from the resume state (None when no state reads): the record a damaged one replaces."""
    files = TrialFiles(work_dir)
    try:
        state, _ = _load_state(files)
    except StateError:
        return None
    step, best_step = int(state["step"]), int(state["best_step"])
    done = step >= cfg.train.max_steps or Patience.of(json.loads(state.get("patience", "{}"))).stopped
    return {"status": "done" if done else "running", "task": cfg.task, "source": cfg.source,
            "seed": cfg.seed, "best_score": float(state["best_score"]) if best_step >= 0 else None,
            "best_step": best_step if best_step >= 0 else None, "best_metrics": json.loads(state["best_metrics"]),
            "steps": step, "max_steps": cfg.train.max_steps, "wall_s": round(float(state["wall_s"]), 3),
            "history": json.loads(state["history"]), "rebuilt": "from the resume state"}


def _mark_failed(files: TrialFiles, err: BaseException) -> None:
    record = read_json(files.result) if files.result.is_file() else {}
    record.update(status="failed", error=f"{type(err).__name__}: {err}")
    write_json(files.result, record)
    _log(files, f"FAILED {record['error']}")


def _log(files: TrialFiles, line: str) -> None:
    with open(files.log, "a", encoding="utf-8") as f:
        f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")


class Patience:
    """Early stopping's count (train.early_stop_patience): evaluations in a row since the score last beat `ref`, the
    score of the last evaluation that improved by more than min_delta. Saved with the resume state, so a resumed
    trial stops where an uninterrupted one would."""

    def __init__(self, ref: float = -math.inf, stale: int = 0, stopped: bool = False):
        self.ref, self.stale, self.stopped = ref, stale, stopped

    def update(self, score: float, min_delta: float, patience: int) -> bool:
        """Count one evaluation; True once `patience` evaluations in a row have not improved (then `stopped`)."""
        if math.isfinite(score) and score > self.ref + min_delta:
            self.ref, self.stale = score, 0
        else:
            self.stale += 1
        self.stopped = self.stale >= patience
        return self.stopped

    def state(self) -> dict:
        return {"ref": None if self.ref == -math.inf else self.ref, "stale": self.stale, "stopped": self.stopped}

    @classmethod
    def of(cls, state: dict) -> "Patience":
        ref = state.get("ref")
        return cls(-math.inf if ref is None else float(ref), int(state.get("stale", 0)), bool(state.get("stopped")))


class _Trainer:
    """The loop's state, kept in one place so that checkpoint and resume cover all of it."""

    def __init__(self, cfg: TrialConfig, files: TrialFiles, report: Report, init_prompt, engine):
        self.cfg, self.files, self.report = cfg, files, report
        self.task = get_task(cfg.task)
        self.bb = engine.backbone(cfg.model, cfg.train.device)
        self.data = prepare_data(cfg, self.task, self.bb)
        emb = self.bb.model.get_input_embeddings().weight
        prompt = initial_prompt(cfg.prompt, emb, seed=cfg.seed, init_prompt=init_prompt)
        self.model = engine.prompted(self.bb.model, prompt.to(self.bb.device))
        self.precision = resolve_precision(cfg.train.precision, self.bb.device)
        self.golds = as_generated(self.bb.tokenizer, self.data.eval_examples, max_target=self.task.max_target_length)
        self.opt, self.sched = build_optimizer([self.model.prompt], cfg.optim, max_steps=cfg.train.max_steps)
        self.step, self.wall_before = 0, 0.0
        self.best_score, self.best_step, self.best_metrics = -math.inf, None, {}
        self.patience = Patience()
        self.keys = None  # bucketed batching's sort keys: the training rows' lengths
        if cfg.train.batching == "bucketed":
            self.keys = bucket_keys(self.data.train.inputs.lengths(), self.data.train.targets.lengths())
        self.history: list[dict] = []
        self.loss_sum, self.loss_n = 0.0, 0

    # -------------------------------------------------------------- checkpoint / resume
    def _state(self) -> dict:
        state = {
            "prompt": self.model.prompt.detach().cpu().clone(),
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(),
            "step": self.step,
            "rng_cpu": torch.get_rng_state(),
            "best_score": self.best_score,
            "best_step": -1 if self.best_step is None else self.best_step,
            "best_metrics": json.dumps(self.best_metrics),
            "history": json.dumps(self.history),
            "wall_s": self._wall(),
            "patience": json.dumps(self.patience.state()),
        }
        if self.bb.device.type == "cuda":
            state["rng_cuda"] = torch.cuda.get_rng_state(self.bb.device)
        return state

    def _restore(self) -> None:
        if _saved_config(self.files) != self.cfg.identity():
            raise TrialError(f"{self.files.root} holds the state of a different trial config; use a fresh folder")
        state, path = _load_state(self.files)
        if path != self.files.state:
            _log(self.files, f"{self.files.STATE} is unreadable: resuming from {path.name}")
        with torch.no_grad():
            self.model.prompt.copy_(state["prompt"].to(self.bb.device))
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng_cpu"])
        if "rng_cuda" in state and self.bb.device.type == "cuda":
            torch.cuda.set_rng_state(state["rng_cuda"], self.bb.device)
        self.step, self.wall_before = int(state["step"]), float(state["wall_s"])
        self.best_score = float(state["best_score"])
        self.best_step = None if int(state["best_step"]) < 0 else int(state["best_step"])
        self.best_metrics, self.history = json.loads(state["best_metrics"]), json.loads(state["history"])
        self.patience = Patience.of(json.loads(state.get("patience", "{}")))
        _log(self.files, f"resumed at step {self.step}")

    def _checkpoint(self, status: str) -> None:
        buf = io.BytesIO()
        torch.save(self._state(), buf)
        self.files.write_state(buf.getvalue())  # the state it replaces stays as state.prev.pt
        write_json(self.files.result, self._record(status))

    def _record(self, status: str) -> dict:
        return {
            "status": status,
            "task": self.cfg.task,
            "source": self.cfg.source,
            "seed": self.cfg.seed,
            "best_score": self.best_score if self.best_step is not None else None,
            "best_step": self.best_step,
            "best_metrics": self.best_metrics,
            "steps": self.step,
            "max_steps": self.cfg.train.max_steps,
            **({"stopped_early": self.patience.stopped} if self.cfg.train.early_stop_patience else {}),
            "precision": self.precision,
            "wall_s": round(self._wall(), 3),
            "history": self.history,
        }

    def _wall(self) -> float:
        return self.wall_before + (time.perf_counter() - self.t0)

    # -------------------------------------------------------------- main loop
    def run(self) -> TrialResult:
        self.t0 = time.perf_counter()
        if self.files.state_candidates():
            self._restore()
        else:
            torch.manual_seed(self.cfg.seed)  # dropout stream; the prompt init has its own generator
            write_json(self.files.config, provenance(self.cfg))
            self._snapshot(0)
            _log(self.files, f"start task={self.cfg.task} seed={self.cfg.seed} source={self.cfg.source} "
                             f"precision={self.precision}")
        _log(self.files, f"data: {self.data.source}")
        if self._finished():  # finished earlier: make sure the record says so (and is whole)
            try:
                done = read_json(self.files.result).get("status") == "done"
            except (OSError, ValueError, AttributeError):
                done = False
            if not done:
                write_json(self.files.result, self._record("done"))
            return self._result("done")
        train = self.cfg.train
        loss, pad_id = LOSSES.get(train.loss), self.bb.tokenizer.pad_token_id
        self.bb.model.train()  # dropout as configured; the weights stay frozen
        set_activation_checkpointing(self.bb.model, train.activation_checkpointing)
        try:
            while not self._finished():
                self._train_step(loss, pad_id)
                self.step += 1
                if self.step % train.save_every == 0:
                    self._snapshot(self.step)
                if self.step % train.eval_every == 0 or self.step == train.max_steps:
                    self._eval_and_checkpoint()
        finally:
            set_activation_checkpointing(self.bb.model, False)
            self.bb.model.eval()
        return self._result("done")

    def _train_step(self, loss: Loss, pad_id: int) -> None:
        """One update from batch `self.step`, accumulated over micro-batches.

        Each micro-batch's mean loss is weighted by its share of the batch's units (target tokens or examples), so
        the summed gradient is the full batch's up to float rounding, whatever the micro-batch size.
        """
        cfg, train = self.cfg, self.cfg.train
        idx = training_batch(train.batching, self.keys, len(self.data.train), train.batch_size, seed=cfg.seed,
                             step=self.step)
        size = train.micro_batch
        parts = [make_batch(self.data.train, idx[i : i + size], pad_id, self.bb.device) for i in range(0, len(idx), size)]
        units = [loss.units(b, pad_id) for b in parts]
        total = sum(units)
        self.opt.zero_grad(set_to_none=True)
        value = 0.0
        for batch, n in zip(parts, units):
            with autocast(self.precision, self.bb.device):
                part = loss(self.model, batch, self.data.labels, pad_id)
            weight = n / total
            value += float(part.item()) * weight
            if not math.isfinite(value):
                raise TrialError(f"task {cfg.task} seed {cfg.seed}: loss is {value} at step {self.step + 1} "
                                 f"(lr {self.sched.get_last_lr()[0]:g}); lower optim.lr or check the data")
            (part * weight).backward()
        if cfg.optim.max_grad_norm:
            torch.nn.utils.clip_grad_norm_([self.model.prompt], cfg.optim.max_grad_norm)
        self.opt.step()
        self.sched.step()
        self.loss_sum, self.loss_n = self.loss_sum + value, self.loss_n + 1

    def _eval_and_checkpoint(self) -> None:
        metrics = evaluate(self.model, self.cfg, self.task, self.data, self.bb, self.golds)
        score = metrics["score"]
        if math.isfinite(score) and score > self.best_score:  # strict: the earliest step wins ties
            self.best_score, self.best_step = score, self.step
            self.best_metrics = {k: v for k, v in metrics.items() if k != "score"}
            save_prompt(self.files.best_prompt, self._prompt_array(), metadata={"step": self.step, "score": score})
        loss = self.loss_sum / max(1, self.loss_n)
        self.loss_sum, self.loss_n = 0.0, 0
        entry = {"step": self.step, "loss": loss, "lr": self.sched.get_last_lr()[0], **metrics}
        self.history.append(entry)
        train = self.cfg.train
        if train.early_stop_patience and self.patience.update(score, train.early_stop_min_delta,
                                                              train.early_stop_patience):
            _log(self.files, f"early stop at step {self.step}: {train.early_stop_patience} evaluations without an "
                             f"improvement over {train.early_stop_min_delta:g} (best {self._best_or_nan():.4g} at "
                             f"step {self.best_step})")
        done = self._finished()
        self._checkpoint("done" if done else "running")
        _log(self.files, " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in entry.items()))
        out = {"step": self.step, "score": score, "loss": loss, "best_score": self._best_or_nan(),
               "best_step": self.best_step, "wall_s": self._wall(), "done": done,
               **{f"eval_{k}": v for k, v in metrics.items() if k != "score"}}
        self.report(out, True)

    def _finished(self) -> bool:
        return self.step >= self.cfg.train.max_steps or self.patience.stopped

    def _best_or_nan(self) -> float:
        return self.best_score if self.best_step is not None else float("nan")

    def _prompt_array(self) -> np.ndarray:
        return self.model.prompt.detach().float().cpu().numpy()

    def _snapshot(self, step: int) -> None:
        save_prompt(self.files.snapshot(step), self._prompt_array(), metadata={"step": step})

    def _result(self, status: str) -> TrialResult:
        return TrialResult(status=status, best_score=self._best_or_nan(), best_step=self.best_step,
                           best_metrics=self.best_metrics, steps=self.step, wall_s=self._wall(), history=self.history)


def provenance(cfg: TrialConfig) -> dict:
    """The resolved config plus what produced it, so a trial folder explains itself."""
    import transformers

    from itsel_ray import __version__

    return {
        "config": cfg.to_dict(),
        "versions": {"itsel_ray": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
                     "python": platform.python_version()},
        "git_sha": _git_sha(),
        "host": platform.node(),
    }


@lru_cache(maxsize=1)
def _git_sha() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True,
                             timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None
