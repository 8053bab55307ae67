"""What one trial computes, before it runs: the batch shapes its data gives and the FLOPs an engine's formula puts on
them (`Engine.trial_cost`).

Pure (numpy, no torch): the driver and `--dry-run` call it. Shared by every engine; only the FLOP formula is the
model family's (`engine/t5/cost.py`, `engine/causal/cost.py`); the evaluation loop and the notes on what stays an
upper bound are shared (`evaluation_cost`, `schedule_notes`).

A trial's lengths are those of its data, as tokenised: the prepared data's real lengths when `prepare` has run, or
the task's declared limits before it (every row at its max source length, every target at its max target length or
at a bound on its label words' tokens: an upper bound). A training batch is padded to its longest row
(`engine/batching.py`), so its cost depends on which rows meet in a batch; `train_batches` draws batches of the
sweep's batching (`random`: rows drawn uniformly; `bucketed`: `engine/batching.py`'s pools of length-sorted rows)
from the lengths with a fixed seed, so the estimate is a deterministic mean over the batch shapes the trial will
see. Evaluation batches are formed as `engine/trial.py` forms them (rows sorted by input length, in chunks of the
eval batch size), so their shapes are exact.

FLOPs here are the matrix products of the model (`torch.utils.flop_counter.FlopCounterMode`'s count on the
attention's math path): elementwise work (norms, softmax, the loss) and the scores that fused attention kernels
recompute in their backward pass are left out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from itsel_ray.trial_config import BATCHINGS

BUCKET_POOL = 64  # batches per length-sorted pool of `bucketed` batching (engine/batching.py)
SAMPLED_BATCHES = 512  # training batches drawn to estimate the mean cost of a step


@dataclass(frozen=True)
class SplitLengths:
    """Token counts of one split's examples as a trial reads them: `inputs` (text tokens, EOS included, truncated to
    the task's max source length; the prompt comes on top) and `targets` (EOS included)."""

    inputs: np.ndarray
    targets: np.ndarray

    def __post_init__(self):
        if len(self.inputs) != len(self.targets):
            raise ValueError(f"{len(self.inputs)} input lengths but {len(self.targets)} target lengths")

    def __len__(self) -> int:
        return len(self.inputs)

    def head(self, n: int | None) -> "SplitLengths":
        return self if n is None or n >= len(self) else SplitLengths(self.inputs[:n], self.targets[:n])


@dataclass(frozen=True)
class TaskLengths:
    """A task's lengths for the cost model. train: the training rows; eval: the evaluation rows (None when their
    number is unknown: neither prepared nor declared); labels: token counts of the closed label set's words (EOS
    included), None for free-text targets; source: where the lengths come from, for `--dry-run`; upper_bound: the
    declared limits stand in for the real lengths."""

    train: SplitLengths
    eval: SplitLengths | None
    labels: tuple[int, ...] | None
    source: str
    upper_bound: bool = False


@dataclass(frozen=True)
class Batch:
    """One (micro-)batch's shape: `rows` examples padded to `inputs` text tokens and `targets` target tokens.

    A decoder-only engine joins each row's input and target into one sequence, padded to the longest joined row
    (`longest`, input + target tokens, at most inputs + targets), and reads the LM head at its real target tokens only
    (`target_tokens`, at most rows x targets); 0 (not recorded) stands for those bounds."""

    rows: int
    inputs: int
    targets: int
    longest: int = field(default=0, compare=False)
    target_tokens: int = field(default=0, compare=False)

    @property
    def joined(self) -> int:
        return self.longest or self.inputs + self.targets

    @property
    def real_targets(self) -> int:
        return self.target_tokens or self.rows * self.targets


def train_batches(lengths: SplitLengths, *, batch_size: int, micro_batch: int | None = None,
                  batching: str = "random", samples: int = SAMPLED_BATCHES, seed: int = 0) -> list[list[Batch]]:
    """`samples` training steps' micro-batch shapes, drawn from `lengths` under `batching` with a fixed seed.

    random: each step's rows drawn uniformly (the per-epoch permutations of engine/batching.py, seen from one step).
    bucketed: pools of BUCKET_POOL x batch_size rows (fewer when the data has fewer), each sorted by length and cut
    into consecutive batches, as engine/batching.py builds them.
    """
    if batching not in BATCHINGS:
        raise ValueError(f"batching must be one of {', '.join(BATCHINGS)}, got {batching!r}")
    n = len(lengths)
    if n == 0:
        raise ValueError("no training rows")
    rng = np.random.default_rng(seed)
    if batching == "random":
        idx = rng.integers(0, n, size=(samples, batch_size))
    else:
        pool = pool_batches(n, batch_size) * batch_size
        pools = -(-samples * batch_size // pool)
        rows = np.concatenate([rng.permutation(n) for _ in range(-(-pools * pool // n))])[: pools * pool]
        rows = rows.reshape(pools, pool)
        order = np.argsort(bucket_keys(lengths.inputs[rows], lengths.targets[rows]), axis=1, kind="stable")
        idx = np.take_along_axis(rows, order, axis=1).reshape(-1, batch_size)[:samples]
    size = micro_batch or batch_size
    out = []
    for step in idx:
        parts = [step[i : i + size] for i in range(0, batch_size, size)]
        out.append([_batch(lengths, p) for p in parts])
    return out


def pool_batches(n: int, batch_size: int) -> int:
    """Batches per sorted pool of `bucketed` batching: BUCKET_POOL, fewer when the data holds fewer batches."""
    return max(1, min(BUCKET_POOL, n // batch_size))


def bucket_keys(inputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """The sort key of `bucketed` batching: input length first, target length to break ties (one int64)."""
    return inputs.astype(np.int64) * (1 << 20) + targets.astype(np.int64)


def eval_batches(lengths: SplitLengths, *, batch_size: int) -> list[Batch]:
    """The evaluation batches engine/trial.py forms: rows sorted by input length, in chunks of `batch_size`."""
    order = np.argsort(lengths.inputs, kind="stable")
    out = []
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        out.append(_batch(lengths, chunk))
    return out


def _batch(lengths: SplitLengths, rows: np.ndarray) -> Batch:
    inputs, targets = lengths.inputs[rows], lengths.targets[rows]
    return Batch(len(rows), int(inputs.max()), int(targets.max()), int((inputs + targets).max()), int(targets.sum()))


def check_label_set(cfg, lengths: TaskLengths) -> None:
    """The label loss and rank evaluation read a closed label set: refuse a task without one, naming both."""
    train = cfg.train
    if (train.loss == "label" or train.eval_mode == "rank") and lengths.labels is None:
        raise ValueError(f"task {cfg.task}: train.loss {train.loss!r} / eval_mode {train.eval_mode!r} need a closed "
                         "label set")


def evaluation_cost(cfg, lengths: TaskLengths, *, rank: Callable[[list[Batch]], float],
                    generate: Callable[[list[Batch], int], float]) -> tuple[float | None, int | None, list[str]]:
    """(FLOPs of one evaluation, its rows, notes) over the trial's evaluation split, batched as the trial loop does;
    `rank(batches)` and `generate(batches, max_new_tokens)` are the engine's formulas. (None, None, []) when the
    split's size is unknown."""
    from itsel_ray.tasks import get_task

    train = cfg.train
    if lengths.eval is None:
        return None, None, []
    held = lengths.eval.head(train.max_eval_examples)
    batches = eval_batches(held, batch_size=train.eval_batch_size)
    if train.eval_mode == "rank":
        return rank(batches), len(held), []
    cap = train.max_new_tokens or get_task(cfg.task).max_target_length
    return generate(batches, cap), len(held), [
        "generation counted up to the longest gold target of each batch; a prompt that has not learnt to stop "
        "decodes up to train.max_new_tokens (or the task's max target length)"]


def schedule_notes(cfg) -> list[str]:
    """What the cost leaves as an upper bound because of how long the trial really runs."""
    if cfg.train.early_stop_patience:
        return ["early stopping is on: training and evaluation are counted to max_steps, an upper bound"]
    return []


def evaluations(max_steps: int, eval_every: int) -> int:
    """Evaluations of a full-length trial: every `eval_every` steps and at the last step."""
    return max_steps // eval_every + (1 if max_steps % eval_every else 0)


@dataclass(frozen=True)
class TrialCost:
    """FLOPs of one trial (`Engine.trial_cost`).

    step_flops: a training step's forward and backward, averaged over the sampled batch shapes; unpadded_step_flops:
    the same rows without padding (each row alone at its own length), so 1 - unpadded / padded is the share of
    training FLOPs spent on padding. tokens_per_step / real_tokens_per_step: encoder + decoder positions of a step
    with and without padding (the prompt included). eval_flops: one evaluation over the whole eval split (None when
    the eval rows are unknown). notes: the assumptions that matter (e.g. how long generation runs).
    """

    steps: int
    step_flops: float
    unpadded_step_flops: float
    tokens_per_step: float
    real_tokens_per_step: float
    evaluations: int
    eval_flops: float | None
    eval_rows: int | None
    eval_mode: str
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def train_flops(self) -> float:
        return self.steps * self.step_flops

    @property
    def eval_total_flops(self) -> float | None:
        return None if self.eval_flops is None else self.evaluations * self.eval_flops

    @property
    def total_flops(self) -> float:
        return self.train_flops + (self.eval_total_flops or 0.0)

    @property
    def padding_share(self) -> float:
        return 1.0 - self.unpadded_step_flops / self.step_flops if self.step_flops else 0.0
