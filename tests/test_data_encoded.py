"""Flat token arrays: the views a trial reads behave like the lists they replace, on disk and in memory."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from itsel_ray.data.cache import read_part, write_part
from itsel_ray.data.encoded import NO_LABEL, Encoded, Ragged, encode_examples, scoring_examples
from itsel_ray.data.tokenizers import word_tokenizer
from itsel_ray.engine.batching import pad
from itsel_ray.engine.data import make_batch
from itsel_ray.examples import Example

seqs = st.lists(st.lists(st.integers(0, 2**31 - 1), max_size=6), max_size=8)


@given(seqs)
def test_ragged_round_trips_lists(s):
    r = Ragged.from_lists(s)
    assert r.tolist() == s and len(r) == len(s) and r.lengths().tolist() == [len(x) for x in s]
    assert r.values.dtype == np.int32 and r.offsets.dtype == np.int64


@given(seqs, st.data())
def test_views_select_like_list_indexing(s, data):
    r = Ragged.from_lists(s)
    rows = data.draw(st.lists(st.integers(0, max(len(s) - 1, 0)), max_size=10)) if s else []
    view = r.take(rows)
    assert view.tolist() == [s[i] for i in rows]
    again = data.draw(st.lists(st.integers(0, max(len(rows) - 1, 0)), max_size=5)) if rows else []
    assert view.take(again).tolist() == [s[rows[i]] for i in again]  # views of views compose
    assert view.compact().tolist() == view.tolist() and view.compact().index is None
    n = data.draw(st.integers(0, len(s) + 2))
    assert r.head(n).tolist() == s[:n]


@given(st.lists(seqs, max_size=4))
def test_concat_is_list_concatenation(parts):
    assert Ragged.concat([Ragged.from_lists(p) for p in parts]).tolist() == [x for p in parts for x in p]


def test_index_errors_and_negative_indices():
    r = Ragged.from_lists([[1], [2, 3]])
    assert r[-1].tolist() == [2, 3]
    with pytest.raises(IndexError, match="sequence 2 out of range for 2 sequences"):
        r[2]


@settings(max_examples=25, deadline=None)
@given(seqs, st.data())
def test_a_part_reads_back_memory_mapped(tmp_path_factory, s, data):
    folder = tmp_path_factory.mktemp("cache")
    labels = np.array(data.draw(st.lists(st.integers(-1, 3), min_size=len(s), max_size=len(s))), dtype=np.int32)
    enc = Encoded(Ragged.from_lists(s), Ragged.from_lists(list(reversed(s))), labels)
    rows = np.arange(len(s), dtype=np.int32) // 2
    golds = [Example("", f"t{i}", None if lab < 0 else int(lab), (f"a{i}",), f"g{i % 2}")
             for i, lab in enumerate(labels)]
    write_part(folder, "validation", enc, rows, n_rows=(len(s) + 1) // 2, golds=golds)
    part = read_part(folder, "validation")
    assert isinstance(part.encoded.inputs.values, np.memmap)
    assert part.encoded.inputs.tolist() == s and part.encoded.targets.tolist() == list(reversed(s))
    assert part.encoded.labels.tolist() == labels.tolist() and part.golds == golds
    assert part.count_below(None) == len(s) and part.count_below(1) == min(2, len(s))
    assert read_part(folder, "train") is None


def test_encode_examples_matches_the_tokenizer_and_marks_missing_labels():
    tok = word_tokenizer(["a", "b", "c", "yes", "no"])
    ex = [Example("a b c a b", "yes", 1), Example("c", "no no", None)]
    enc = encode_examples(tok, ex, max_source=3, max_target=4)
    assert enc.inputs.tolist() == tok([e.input for e in ex], truncation=True, max_length=3)["input_ids"]
    assert enc.targets.tolist() == tok([e.target for e in ex], truncation=True, max_length=4)["input_ids"]
    assert enc.labels.tolist() == [1, NO_LABEL]
    assert len(encode_examples(tok, [], max_source=3, max_target=4)) == 0
    assert scoring_examples(ex) == [Example("", "yes", 1), Example("", "no no", None)]


def test_batches_from_read_only_arrays_and_labels_only_when_every_row_has_one():
    values = np.array([5, 6, 1, 7, 1, 8, 9, 1], dtype=np.int32)
    values.setflags(write=False)  # as a memory-mapped cache file
    r = Ragged(values, np.array([0, 3, 5, 8]))
    ids, mask = pad([r[0], r[1]], 0)
    assert ids.tolist() == [[5, 6, 1], [7, 1, 0]] and mask.tolist() == [[1, 1, 1], [1, 1, 0]]
    enc = Encoded(r, r, np.array([2, NO_LABEL, 0], dtype=np.int32))
    assert make_batch(enc, [2, 0], 0, "cpu").labels.tolist() == [0, 2]
    assert make_batch(enc, [0, 1], 0, "cpu").labels is None


def test_encoding_in_chunks_gives_what_one_call_gives(monkeypatch):
    from itsel_ray.data import encoded

    tok = word_tokenizer(["a", "b", "c", "yes", "no"])
    ex = [Example(" ".join("abc"[j % 3] for j in range(i % 5 + 1)), ("yes", "no")[i % 2], i % 2) for i in range(11)]
    whole = encode_examples(tok, ex, max_source=4, max_target=3)
    monkeypatch.setattr(encoded, "ENCODE_CHUNK", 3)
    chunked = encode_examples(tok, ex, max_source=4, max_target=3)
    assert chunked.inputs.tolist() == whole.inputs.tolist() and chunked.targets.tolist() == whole.targets.tolist()
    assert chunked.labels.tolist() == whole.labels.tolist() == [i % 2 for i in range(11)]
