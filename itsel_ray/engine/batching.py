"""Examples -> padded tensors, and a batch order that depends only on (seed, step).

Because batch `s` is a pure function of the seed and `s`, a resumed run sees exactly the batches an uninterrupted
run would have seen, with no sampler state to save.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch


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
