"""Examples -> padded tensors, and a batch order that depends only on (seed, step): random (the paper: slices of
per-epoch permutations) or bucketed (the same rows, pooled and sorted by length so a batch pads less).

Because batch `s` is a pure function of the seed and `s`, a resumed run sees exactly the batches an uninterrupted
run would have seen, with no sampler state to save.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from itsel_ray.engine.cost import bucket_keys, pool_batches  # noqa: F401  (bucket_keys: the key trials sort by)


def pad(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """[B, Lmax] ids and mask, right-padded to the longest sequence in the batch."""
    width = max(len(s) for s in seqs)
    ids = np.full((len(seqs), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(seqs), width), dtype=np.int64)
    for i, s in enumerate(seqs):  # lists or (read-only, memory-mapped) arrays alike
        ids[i, : len(s)] = s
        mask[i, : len(s)] = 1
    return torch.from_numpy(ids), torch.from_numpy(mask)


def batch_indices(n: int, batch_size: int, *, seed: int, step: int) -> list[int]:
    """Example indices of training batch `step` (0-based): consecutive slices of per-epoch permutations."""
    out: list[int] = []
    pos = step * batch_size
    while len(out) < batch_size:
        epoch, offset = divmod(pos, n)
        perm = _permutation(n, seed, epoch)
        take = min(batch_size - len(out), n - offset)
        out.extend(perm[offset : offset + take])
        pos += take
    return out


_PERM_CACHE: dict[tuple[int, int, int], list[int]] = {}


def _permutation(n: int, seed: int, epoch: int) -> list[int]:
    key = (n, seed, epoch)
    if key not in _PERM_CACHE:
        if len(_PERM_CACHE) > 64:
            _PERM_CACHE.clear()
        gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        _PERM_CACHE[key] = torch.randperm(n, generator=gen).tolist()
    return _PERM_CACHE[key]


def bucketed_batch_indices(keys: np.ndarray, batch_size: int, *, seed: int, step: int) -> list[int]:
    """Example indices of training batch `step` under `train.batching: bucketed`: rows of similar length together.

    The same stream of per-epoch permutations as `batch_indices` is cut into pools of `pool_batches` batches; each
    pool's rows are sorted by `keys` (bucket_keys of their lengths) and cut into batches, which the pool visits in a
    seeded random order, so a step's length does not drift with its position in the pool. Batch `step` is still a
    pure function of (seed, step) and the data, so a resumed run sees the batches an uninterrupted one sees, and
    every epoch still visits every row once (up to the pool straddling the epoch's end).
    """
    n = len(keys)
    per_pool = pool_batches(n, batch_size)
    pool, slot = divmod(step, per_pool)
    batches = _sorted_pool(keys, batch_size, per_pool, seed, pool)
    order = np.random.default_rng([seed, pool, 1]).permutation(per_pool)
    return batches[int(order[slot])]


# the last pools sorted, each kept with the keys array it was sorted by (held, so its id cannot be reused)
_POOL_CACHE: dict[tuple, tuple[np.ndarray, list[list[int]]]] = {}


def _sorted_pool(keys: np.ndarray, batch_size: int, per_pool: int, seed: int, pool: int) -> list[list[int]]:
    cache_key = (id(keys), batch_size, per_pool, seed, pool)
    hit = _POOL_CACHE.get(cache_key)
    if hit is not None and hit[0] is keys:
        return hit[1]
    if len(_POOL_CACHE) > 4:
        _POOL_CACHE.clear()
    rows = np.asarray(batch_indices(len(keys), batch_size * per_pool, seed=seed, step=pool), dtype=np.int64)
    rows = rows[np.argsort(keys[rows], kind="stable")]
    batches = [rows[i : i + batch_size].tolist() for i in range(0, len(rows), batch_size)]
    _POOL_CACHE[cache_key] = (keys, batches)
    return batches


def training_batch(batching: str, keys: np.ndarray | None, n: int, batch_size: int, *, seed: int,
                   step: int) -> list[int]:
    """Batch `step` under `train.batching` (random: `batch_indices`; bucketed: `bucketed_batch_indices`)."""
    if batching == "bucketed":
        return bucketed_batch_indices(keys, batch_size, seed=seed, step=step)
    return batch_indices(n, batch_size, seed=seed, step=step)
