"""The stand-in engine (`engine: fake`): the engine contract and the trial file layout without a model. The score
is a fixed function of (task, seed, source, step), so the sweep's plumbing (resume, retries, tables) runs in
seconds.

`train.max_steps`, `eval_every` and `save_every` behave as in the real engine: resume from state.pt (falling back to
state.prev.pt), and a result record that `recover_record` rebuilds from the state alone. It holds no model
(`has_model` False): no data to prepare, no memory to predict, no model-backed selector inputs; its prompts are
[prompt.length, 8].
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from pathlib import Path

import numpy as np

from itsel_ray.artifacts import StateError, TrialFiles, TrialResult, save_prompt, write_json
from itsel_ray.engine.base import Engine, ModelInfo, TrialError
from itsel_ray.trial_config import ModelConfig, TrialConfig

D_MODEL = 8


def validate_config(cfg: TrialConfig) -> None:
    from itsel_ray.tasks import get_task

    get_task(cfg.task)


def _score(cfg: TrialConfig, step: int, init_prompt: np.ndarray | None) -> float:
    h = hashlib.sha256(f"{cfg.task}|{cfg.seed}|{cfg.source}".encode()).digest()
    base = 40 + h[0] % 40
    bonus = 0.0 if init_prompt is None else float(np.tanh(init_prompt.mean())) * 5
    return round(min(100.0, base + bonus + 10 * step / cfg.train.max_steps), 4)


def _initial(cfg: TrialConfig, init_prompt: np.ndarray | None) -> np.ndarray:
    if init_prompt is not None:
        return np.asarray(init_prompt, dtype=np.float32).copy()
    rng = np.random.default_rng(cfg.seed)
    return rng.standard_normal((cfg.prompt.length, D_MODEL)).astype(np.float32)


def _record(cfg: TrialConfig, state: dict) -> dict:
    done = state["step"] >= cfg.train.max_steps
    return {"status": "done" if done else "running", "task": cfg.task, "source": cfg.source, "seed": cfg.seed,
            "best_score": state["best"], "best_step": state["best_step"], "best_metrics": {"accuracy": state["best"]},
            "steps": state["step"], "max_steps": cfg.train.max_steps, "wall_s": round(state["wall"], 3),
            "history": state["history"]}


def _load_state(files: TrialFiles) -> tuple[dict, Path] | None:
    """The newest readable resume state; StateError when there is state but none of it reads."""
    tried = []
    for path in files.state_candidates():
        try:
            raw = dict(np.load(io.BytesIO(path.read_bytes()), allow_pickle=False))
            meta = json.loads(str(raw["meta"]))
            return {"prompt": raw["prompt"], "step": int(raw["step"]), **meta}, path
        except Exception as err:  # truncated or foreign file
            tried.append(f"{path.name}: {type(err).__name__}")
    if tried:
        raise StateError(f"{files.root}: no readable resume state ({'; '.join(tried)})")
    return None


def recover_record(cfg: TrialConfig, work_dir) -> dict | None:
    """result.json rebuilt from the resume state (None when there is no readable state)."""
    try:
        loaded = _load_state(TrialFiles(work_dir))
    except StateError:
        return None
    return None if loaded is None else _record(cfg, loaded[0])


def run_trial(cfg: TrialConfig, work_dir, *, report=None, init_prompt=None) -> TrialResult:
    files = TrialFiles(work_dir)
    files.root.mkdir(parents=True, exist_ok=True)
    report = report or (lambda m, c: None)
    t0 = time.perf_counter()
    loaded = _load_state(files)
    if loaded is not None:
        state = loaded[0]
    else:
        state = {"prompt": _initial(cfg, init_prompt), "step": 0, "best": None, "best_step": None, "history": [],
                 "wall": 0.0}
        write_json(files.config, {"config": cfg.to_dict(), "engine": "fake"})
        save_prompt(files.snapshot(0), state["prompt"])
    wall_before = float(state["wall"])
    train, prompt, step = cfg.train, state["prompt"], state["step"]
    while step < train.max_steps:
        step += 1
        prompt = prompt + np.float32(0.01)
        if step % train.save_every == 0:
            save_prompt(files.snapshot(step), prompt)
        if step % train.eval_every == 0 or step == train.max_steps:
            score = _score(cfg, step, init_prompt)
            if state["best"] is None or score > state["best"]:
                state["best"], state["best_step"] = score, step
                save_prompt(files.best_prompt, prompt)
            state["history"].append({"step": step, "loss": 1.0 / step, "score": score, "accuracy": score})
            state.update(prompt=prompt, step=step, wall=wall_before + time.perf_counter() - t0)
            buf = io.BytesIO()
            meta = {k: state[k] for k in ("best", "best_step", "history", "wall")}
            np.savez(buf, prompt=prompt, step=np.int64(step), meta=np.array(json.dumps(meta)))
            files.write_state(buf.getvalue())
            record = _record(cfg, state)
            write_json(files.result, record)
            report({"step": step, "score": score, "best_score": state["best"], "best_step": state["best_step"],
                    "loss": 1.0 / step, "wall_s": state["wall"], "done": record["status"] == "done",
                    "eval_accuracy": score}, True)
    record = _record(cfg, state)
    write_json(files.result, record)  # also mends a damaged record of a run that had already finished
    return TrialResult(status="done", best_score=record["best_score"], best_step=record["best_step"],
                       best_metrics=record["best_metrics"], steps=step, wall_s=record["wall_s"],
                       history=record["history"])


class FakeEngine(Engine):
    """The stand-in: the module's functions behind the engine contract."""

    name = "fake"
    has_model = False

    def validate_config(self, cfg: TrialConfig) -> None:
        validate_config(cfg)

    def run_trial(self, cfg: TrialConfig, work_dir, *, report=None, init_prompt=None) -> TrialResult:
        return run_trial(cfg, work_dir, report=report, init_prompt=init_prompt)

    def recover_record(self, cfg: TrialConfig, work_dir) -> dict | None:
        return recover_record(cfg, work_dir)

    def describe_model(self, model: ModelConfig) -> ModelInfo:
        return ModelInfo(name="none", family="stand-in", d_model=D_MODEL, vocab_size=None, parameters=0,
                         source="the stand-in engine trains no model")

    def predict_memory(self, cfg: TrialConfig, *, device: str = "cuda", bf16_capable: bool = True) -> None:
        return None

    def readout(self, cfg: TrialConfig, prompts, *, max_examples: int):
        raise TrialError("engine 'fake' holds no model, so it cannot score prompts through one (use engine: t5)")


FAKE = FakeEngine()
