"""The authors' draw of rows carved from a training split (ReCoRD's 1,000 validation queries; eval_split heldout).

Their task loader shuffles with `torch.randperm(n, generator=g)` where `g` is a CPU `torch.Generator` seeded with
the run's data seed (the trial seed), takes the first rows of the permutation as validation and the rest as
training rows. The same call here gives the same rows for the same seed, as long as torch's CPU randperm draws
the same permutation as the authors' torch 1.8 (the algorithm for a CPU generator has been kept across releases
as far as the changelogs say; `tests/test_tasks.py` pins a few draws so that a change shows up).
"""

from __future__ import annotations


def authors_permutation(n: int, seed: int) -> list[int]:
    """`torch.randperm(n)` under a CPU generator seeded with `seed`, as a list of row indices."""
    import torch

    generator = torch.Generator(device="cpu")
    generator.manual_seed(int(seed))
    return torch.randperm(int(n), generator=generator).tolist()
