"""The stand-in engine (`engine: fake`): the real engine's contract and file layout without a model. The score is a
fixed function of (task, seed, source, step), so the sweep's plumbing (resume, retries, tables) runs in seconds.

`train.max_steps`, `eval_every` and `save_every` behave as in the real engine (resume from state.pt included).
"""

from __future__ import annotations

import hashlib
import io
import time

import numpy as np

from itsel_ray.artifacts import TrialFiles, TrialResult, atomic_write_bytes, read_json, save_prompt, write_json
from itsel_ray.trial_config import TrialConfig

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


def run_trial(cfg: TrialConfig, work_dir, *, report=None, init_prompt=None) -> TrialResult:
    files = TrialFiles(work_dir)
    files.root.mkdir(parents=True, exist_ok=True)
    report = report or (lambda m, c: None)
    t0 = time.perf_counter()
    if files.state.is_file():
        state = dict(np.load(io.BytesIO(files.state.read_bytes()), allow_pickle=False))
        prompt, step = state["prompt"], int(state["step"])
        record = read_json(files.result)
        best, best_step, history = record["best_score"], record["best_step"], record["history"]
        wall_before = float(record["wall_s"])
    else:
        prompt, step, best, best_step, history, wall_before = _initial(cfg, init_prompt), 0, None, None, [], 0.0
        write_json(files.config, {"config": cfg.to_dict(), "engine": "fake"})
        save_prompt(files.snapshot(0), prompt)
    train = cfg.train
    while step < train.max_steps:
        step += 1
        prompt = prompt + np.float32(0.01)
        if step % train.save_every == 0:
            save_prompt(files.snapshot(step), prompt)
        if step % train.eval_every == 0 or step == train.max_steps:
            score = _score(cfg, step, init_prompt)
            if best is None or score > best:
                best, best_step = score, step
                save_prompt(files.best_prompt, prompt)
            history.append({"step": step, "loss": 1.0 / step, "score": score, "accuracy": score})
            done = step >= train.max_steps
            wall = wall_before + time.perf_counter() - t0
            buf = io.BytesIO()
            np.savez(buf, prompt=prompt, step=np.int64(step))
            atomic_write_bytes(files.state, buf.getvalue())
            write_json(files.result, {"status": "done" if done else "running", "task": cfg.task, "source": cfg.source,
                                      "seed": cfg.seed, "best_score": best, "best_step": best_step,
                                      "best_metrics": {"accuracy": best}, "steps": step, "wall_s": round(wall, 3),
                                      "history": history})
            report({"step": step, "score": score, "best_score": best, "best_step": best_step, "loss": 1.0 / step,
                    "wall_s": wall, "done": done, "eval_accuracy": score}, True)
    record = read_json(files.result)
    return TrialResult(status="done", best_score=record["best_score"], best_step=record["best_step"],
                       best_metrics=record["best_metrics"], steps=step, wall_s=record["wall_s"],
                       history=record["history"])

