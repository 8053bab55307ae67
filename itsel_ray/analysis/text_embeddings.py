"""Averaged sentence embeddings of each task's training inputs (for SEMB), cached on disk.

The cache key is (encoder, task, example cap): `<cache>/<encoder slug>/<task>__n<cap or all>.npy`. The encoder is
loaded only on a cache miss; the texts come from the tasks package unless a `load_texts` function is given.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from itsel_ray.artifacts import atomic_write_bytes
from itsel_ray.selection.semb import EncoderUnavailable, embed_texts, encoder_unavailable, load_encoder

LoadTexts = Callable[[str, "int | None"], Sequence[str]]
CACHE_ENV = "ITSEL_RAY_CACHE"


def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "itsel_ray")) / "semb"


def texts_from_tasks(task: str, limit: int | None) -> list[str]:
    """The `.input` strings of the task's first `limit` training examples (the tasks package)."""
    from itsel_ray.tasks import get_task

    return [example.input for example in get_task(task).load("train", limit=limit)]


def cache_path(cache_dir: str | Path, encoder: str, task: str, cap: int | None) -> Path:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", encoder).strip("_")
    return Path(cache_dir) / slug / f"{task}__n{'all' if cap is None else cap}.npy"


def task_embeddings(tasks: Iterable[str], encoder_name: str, *, max_examples: int | None,
                    cache_dir: str | Path | None = None, load_texts: LoadTexts | None = None,
                    encoder=None, batch_size: int = 64) -> dict[str, np.ndarray]:
    """task -> [D] mean sentence embedding of its first `max_examples` training inputs.

    Args:
        encoder: an object with SentenceTransformer's `encode`; loaded from `encoder_name` on the first cache
            miss when not given.
        load_texts: (task, cap) -> texts; default: the tasks package.
    """
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    load_texts = load_texts or texts_from_tasks
    out = {}
    for task in tasks:
        path = cache_path(cache_dir, encoder_name, task, max_examples)
        if path.is_file():
            out[task] = np.load(path, allow_pickle=False)
            continue
        if encoder is None:  # before any text is loaded: an encoder that cannot be had fails at once
            reason = encoder_unavailable(encoder_name)
            if reason:
                raise EncoderUnavailable(reason)
        texts = load_texts(task, max_examples)
        if not texts:
            raise ValueError(f"task {task!r}: no training texts to embed")
        if encoder is None:
            encoder = load_encoder(encoder_name)
        vec = embed_texts(texts, encoder, batch_size=batch_size)
        buf = io.BytesIO()
        np.save(buf, vec, allow_pickle=False)
        atomic_write_bytes(path, buf.getvalue())
        out[task] = vec
    return out
