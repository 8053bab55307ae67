"""SEMB's text side: the embedding cache (with a stand-in encoder) and one quick run of the packaged encoder."""

import numpy as np
import pytest

from itsel_ray.analysis.text_embeddings import cache_path, task_embeddings
from itsel_ray.analysis.text_embeddings import embed_texts, load_encoder
from itsel_ray.selection.semb import OFFLINE_ENCODER


class CountingEncoder:
    """Embeds a text as [len(text), number of words]; counts calls."""

    def __init__(self):
        self.calls = 0

    def encode(self, texts, **_):
        self.calls += 1
        return np.array([[len(t), len(t.split())] for t in texts], dtype=float)


def test_task_embeddings_average_and_cache(tmp_path):
    texts = {"mnli": ["a b", "abcd"], "cb": ["x y z"]}
    loads = []

    def load_texts(task, cap):
        loads.append((task, cap))
        return texts[task][:cap]

    enc = CountingEncoder()
    out = task_embeddings(["mnli", "cb"], "fake-encoder", max_examples=2, cache_dir=tmp_path,
                          load_texts=load_texts, encoder=enc)
    # mnli: [3, 2] and [4, 1] -> mean [3.5, 1.5]; cb: [5, 3]
    np.testing.assert_allclose(out["mnli"], [3.5, 1.5])
    np.testing.assert_allclose(out["cb"], [5.0, 3.0])
    assert cache_path(tmp_path, "fake-encoder", "mnli", 2).is_file()
    # second call: served from the cache, no texts loaded, no encoder needed
    again = task_embeddings(["mnli", "cb"], "fake-encoder", max_examples=2, cache_dir=tmp_path,
                            load_texts=lambda *a: pytest.fail("texts loaded despite the cache"))
    np.testing.assert_allclose(again["mnli"], [3.5, 1.5])
    assert loads == [("mnli", 2), ("cb", 2)] and enc.calls == 2
    # another cap is another cache entry
    assert not cache_path(tmp_path, "fake-encoder", "mnli", None).exists()


def test_packaged_encoder_loads_offline_and_ranks_paraphrase_first():
    encoder = load_encoder(OFFLINE_ENCODER)
    target = embed_texts(["A man is playing a guitar.", "The cat sleeps on the sofa."], encoder)
    near = embed_texts(["Someone plays the guitar.", "A kitten is napping on the couch."], encoder)
    far = embed_texts(["Quarterly revenue rose by four percent.", "Compile the kernel with gcc."], encoder)
    assert target.shape == (384,)
    cos = lambda a, b: float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))  # noqa: E731
    assert cos(target, near) > cos(target, far)
