"""What a sweep will cost, before it starts: each (role, task)'s trial FLOPs from its data's lengths, and the sweep's
total in GPU-hours at a stated or measured throughput (`--dry-run` prints `cost_lines`).

The lengths come from the prepared data when `prepare` has run (the real token counts of the rows each trial reads,
`prepared_lengths`), else from the task's declaration (`declared_lengths`: every row at its max source length, every
target at its max target length or at a bound on its label words' tokens, the declared split sizes): an upper bound,
labelled as such. The FLOPs are the engine's (`Engine.trial_cost`), so nothing here knows a model family.

GPU-hours need a throughput: the achieved FLOP/s of a trial's work on the cluster's GPU. A calibration measured
there (`benchmarks/gpu_check.py` writes it) is read from `$ITSEL_RAY_CALIBRATION` or `<sweep>/calibration.json`;
without one the figure is the stated assumption `ASSUMED`, and `--dry-run` says which it used. No Ray, no torch.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from itsel_ray.engine import get_engine
from itsel_ray.engine.cost import SplitLengths, TaskLengths, TrialCost
from itsel_ray.runs.plan import STAGES, plan_stage
from itsel_ray.runs.storage import Storage, is_uri
from itsel_ray.schema import ConfigError

CALIBRATION_ENV = "ITSEL_RAY_CALIBRATION"
CALIBRATION = "calibration.json"


@dataclass(frozen=True)
class Throughput:
    """Achieved FLOP/s of trial work per precision ("bf16", "fp32"), and where the figure comes from."""

    flops: dict
    source: str
    measured: bool

    def of(self, precision: str) -> float:
        return self.flops[gpu_precision(precision)]


def gpu_precision(precision: str) -> str:
    """What `train.precision` runs as on a GPU: fp32, or bf16 (`auto` on a bf16-capable GPU, as the cluster's)."""
    return "fp32" if precision == "fp32" else "bf16"


# The stated assumption: 35 % of an NVIDIA A10G's dense peak (70 TFLOP/s bf16 tensor cores, 31.2 TFLOP/s fp32
# without TF32, which PyTorch leaves off for matrix products by default). Prompt tuning's small batches and short
# sequences keep a GPU far from its peak; the calibration replaces this guess with a measurement.
ASSUMED = Throughput({"bf16": 0.35 * 70e12, "fp32": 0.35 * 31.2e12},
                     "assumed: 35 % of an A10G's dense peak (bf16 70, fp32 31.2 TFLOP/s)", measured=False)


def throughput(storage: Storage | None = None) -> Throughput:
    """The measured calibration when one is found ($ITSEL_RAY_CALIBRATION, else <sweep>/calibration.json), else
    the stated assumption. A calibration file that does not read raises ConfigError naming it."""
    path = os.environ.get(CALIBRATION_ENV)
    data, where = None, None
    if path:
        where = path
        try:
            data = json.loads(Path(path).read_text("utf-8"))
        except (OSError, ValueError) as err:
            raise ConfigError(f"{CALIBRATION_ENV}={path}: cannot read the calibration ({err})") from None
    elif storage is not None:
        data, where = storage.read_json(CALIBRATION), storage.path(CALIBRATION)
    if data is None:
        return ASSUMED
    try:
        flops = {k: float(data["tflops"][k]) * 1e12 for k in ("bf16", "fp32")}
        if not all(v > 0 and np.isfinite(v) for v in flops.values()):
            raise ValueError("tflops must be positive")
        device = str(data.get("device", "a GPU"))
    except (KeyError, TypeError, ValueError) as err:
        raise ConfigError(f"calibration {where}: needs tflops.bf16 and tflops.fp32 (positive numbers): {err}") from None
    return Throughput(flops, f"measured on {device} ({where})", measured=True)


# ------------------------------------------------------------------------------------------------- lengths


def label_token_bound(word: str, max_target: int) -> int:
    """An upper bound on a label word's tokens without its tokenizer: one piece per character, a word-start piece,
    EOS (a subword vocabulary never needs more pieces than characters), capped by the task's max target length."""
    return min(max_target, len(word) + 2)


def declared_lengths(cfg) -> TaskLengths:
    """The task's declared limits as lengths: `train_size` training rows and, for evaluation, the carved size or
    the task's declared `validation_size`, capped by max_eval_examples (max_eval_examples alone when neither is
    known); every input at
    max_source_length, every target at max_target_length or at its label words' bound. An upper bound: real rows
    are shorter."""
    from itsel_ray.tasks import get_task

    spec = get_task(cfg.task)
    words = spec.label_words(cfg.data.label_style)
    labels = None if words is None else tuple(label_token_bound(w, spec.max_target_length) for w in words)
    target = spec.max_target_length if labels is None else max(labels)
    carve = spec.carve_size(cfg.data.eval_split, cfg.data.heldout_size)
    n_train = spec.train_size - (carve or 0)
    n_train = min(n_train, cfg.train.max_train_examples or n_train)
    n_eval = carve or spec.validation_size
    if cfg.train.max_eval_examples:
        n_eval = min(n_eval or cfg.train.max_eval_examples, cfg.train.max_eval_examples)

    def split(n):
        return SplitLengths(np.full(n, spec.max_source_length), np.full(n, target))

    return TaskLengths(split(max(n_train, 1)), None if n_eval is None else split(n_eval), labels,
                       "declared limits (upper bound)", upper_bound=True)


def prepared_lengths(cfg, folder: Path) -> TaskLengths | None:
    """The real token counts of the rows trial `cfg` reads from the prepared task `folder` (None when a part it
    needs is missing)."""
    from itsel_ray.data.cache import trial_splits
    from itsel_ray.tasks import get_task

    spec = get_task(cfg.task)
    splits = trial_splits(folder, spec, eval_split=cfg.data.eval_split, heldout_size=cfg.data.heldout_size,
                          seed=cfg.seed, max_train=cfg.train.max_train_examples, max_eval=cfg.train.max_eval_examples)
    if splits is None:
        return None
    words = spec.label_words(cfg.data.label_style)
    labels = None
    if words is not None:  # a closed set's targets are its label words: each label's length as its rows have it
        known = {}
        for enc in (splits.train, splits.eval):
            lab, tgt = np.asarray(enc.labels), enc.targets.lengths()
            for k in range(len(words)):
                hit = np.flatnonzero(lab == k)
                if len(hit) and k not in known:
                    known[k] = int(tgt[hit[0]])
        labels = tuple(known.get(k, label_token_bound(w, spec.max_target_length)) for k, w in enumerate(words))

    def split(enc):
        return SplitLengths(np.asarray(enc.inputs.lengths()), np.asarray(enc.targets.lengths()))

    return TaskLengths(split(splits.train), split(splits.eval), labels, f"prepared data ({folder})")


def prepared_folders(storage: Storage) -> dict[str, Path]:
    """{task: prepared folder} from the sweep's last prepare report (local folders only; tasks with problems out)."""
    from itsel_ray.runs.prepared import REPORT

    try:
        reports = storage.read_json(REPORT)
    except (OSError, ValueError):
        return {}
    out = {}
    for r in reports if isinstance(reports, list) else []:
        cache = r.get("cache") if isinstance(r, dict) else None
        if cache and not r.get("problems") and not is_uri(str(cache)) and Path(cache).is_dir():
            out.setdefault(r["task"], Path(cache))
    return out


def task_lengths(cfg, folders: dict[str, Path]) -> TaskLengths:
    """The prepared lengths of trial `cfg` when its task was prepared, else the declared ones."""
    folder = folders.get(cfg.task)
    found = prepared_lengths(cfg, folder) if folder is not None else None
    return found or declared_lengths(cfg)


# ------------------------------------------------------------------------------------------------- the sweep


@dataclass(frozen=True)
class TaskCost:
    """One (stage, role, task): its trials and the cost of one of them."""

    stage: str
    role: str
    task: str
    trials: int
    cost: TrialCost
    lengths: TaskLengths
    precision: str


def sweep_costs(sweep, storage: Storage | None = None) -> list[TaskCost] | None:
    """Per (stage, role, task) trial costs of the sweep; None when its engine models no cost."""
    engine = get_engine(sweep.spec.engine)
    folders = prepared_folders(storage) if storage is not None else {}
    out, seen = [], {}
    for stage in STAGES:
        groups: dict[tuple[str, str], list] = {}
        for t in plan_stage(sweep, stage):
            groups.setdefault((t.role, t.task), []).append(t)
        for (role, task), trials in groups.items():
            first = trials[0]
            cfg = sweep.trial_config(role, task=task, seed=first.seed, source=first.source or None)
            key = (role, task)
            if key not in seen:
                lengths = task_lengths(cfg, folders)
                cost = engine.trial_cost(cfg, lengths)
                if cost is None:
                    return None
                seen[key] = (cost, lengths)
            cost, lengths = seen[key]
            out.append(TaskCost(stage, role, task, len(trials), cost, lengths, cfg.train.precision))
    return out


def gpu_hours(flops: float, precision: str, rate: Throughput) -> float:
    return flops / rate.of(precision) / 3600.0


def _eng(x: float) -> str:
    for unit, scale in (("E", 1e18), ("P", 1e15), ("T", 1e12), ("G", 1e9)):
        if abs(x) >= scale:
            return f"{x / scale:.3g} {unit}"
    return f"{x:.3g} "


def cost_lines(sweep, storage: Storage | None = None, rate: Throughput | None = None) -> list[str]:
    """--dry-run's cost table: per stage, role and task the tokens of a step, the padding share, the training and
    evaluation FLOPs of one trial, and the GPU-hours of all its trials; then the sweep's total."""
    costs = sweep_costs(sweep, storage)
    if costs is None:
        return [f"cost: not modelled (engine {sweep.spec.engine!r})"]
    rate = rate or throughput(storage)
    precisions = sorted({gpu_precision(c.precision) for c in costs})
    speed = ", ".join(f"{p} {rate.of(p) / 1e12:.1f}" for p in precisions)
    lines = [f"cost per trial (FLOPs of the model's matrix products) and GPU-hours at {speed} TFLOP/s, "
             f"{rate.source}:",
             f"    {'stage':<8} {'role':<8} {'task':<12} {'trials':>6} {'tok/step':>8} {'pad':>4} {'train':>9} "
             f"{'evals':>5} {'eval':>9} {'eval%':>5} {'GPU-h':>8}  lengths"]
    total_flops, total_hours, unknown = 0.0, 0.0, []
    for c in costs:
        t = c.cost
        hours = c.trials * gpu_hours(t.total_flops, c.precision, rate)
        total_flops += c.trials * t.total_flops
        total_hours += hours
        ev = "?" if t.eval_total_flops is None else _eng(t.eval_total_flops)
        share = "?" if t.eval_total_flops is None else f"{100 * t.eval_total_flops / t.total_flops:.0f}%"
        if t.eval_total_flops is None:
            unknown.append(c.task)
        lines.append(f"    {c.stage:<8} {c.role:<8} {c.task:<12} {c.trials:>6} {t.tokens_per_step:>8.0f} "
                     f"{100 * t.padding_share:>3.0f}% {_eng(t.train_flops):>9} {t.evaluations:>5} {ev:>9} {share:>5} "
                     f"{hours:>8.2f}  {c.lengths.source}")
    lines.append(f"sweep total: {_eng(total_flops)}FLOP, {total_hours:,.1f} GPU-hours ({rate.source})")
    if unknown:
        lines.append(f"    evaluation not counted for {', '.join(sorted(set(unknown)))}: the size of the evaluation "
                     "split is neither prepared nor declared (declare the task's `validation_size`)")
    if any(c.lengths.upper_bound for c in costs):
        lines.append("    'declared limits' rows are upper bounds (every row at the task's max lengths); "
                     "run `prepare` for the real lengths")
    notes = sorted({n for c in costs for n in c.cost.notes})
    lines += [f"    note: {n}" for n in notes]
    return lines
