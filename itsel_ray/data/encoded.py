"""Tokenised examples as flat int32 arrays plus offsets, whether built in memory or memory-mapped from the cache.

A Python list of lists costs about 36 bytes per token id; a flat int32 array costs 4, and a memory-mapped one costs
nothing until a batch touches it. Views (`head`, `take`) index into the same arrays without copying them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from itsel_ray.examples import Example

NO_LABEL = -1  # Encoded.labels where an example has no label index (free-text targets)


@dataclass(frozen=True, eq=False)
class Ragged:
    """Variable-length int sequences: sequence i is values[offsets[j]:offsets[j+1]] for j = index[i] (or i).

    values: [total] int32; offsets: [n+1] int64, offsets[0] == 0; index: [m] int64 or None (all n in order).
    """

    values: np.ndarray
    offsets: np.ndarray
    index: np.ndarray | None = None

    @classmethod
    def from_lists(cls, seqs: Iterable[Sequence[int]]) -> "Ragged":
        seqs = list(seqs)
        lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
        offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        values = np.fromiter((t for s in seqs for t in s), dtype=np.int32, count=int(offsets[-1]))
        return cls(values, offsets)

    @classmethod
    def concat(cls, parts: Sequence["Ragged"]) -> "Ragged":
        """One Ragged of the parts' sequences in order (views are resolved)."""
        parts = [p.compact() for p in parts]
        if not parts:
            return cls.from_lists([])
        values = np.concatenate([p.values for p in parts]).astype(np.int32, copy=False)
        shifts = np.cumsum([0] + [int(p.offsets[-1]) for p in parts[:-1]])
        offsets = np.concatenate([[0]] + [p.offsets[1:] + s for p, s in zip(parts, shifts)]).astype(np.int64)
        return cls(values, offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1 if self.index is None else len(self.index)

    def _row(self, i: int) -> int:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"sequence {i} out of range for {n} sequences")
        i = i % n if n else i
        return i if self.index is None else int(self.index[i])

    def __getitem__(self, i: int) -> np.ndarray:
        j = self._row(int(i))
        return self.values[self.offsets[j] : self.offsets[j + 1]]

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def lengths(self) -> np.ndarray:
        """[m] int64 length of each sequence."""
        all_lengths = np.diff(self.offsets)
        return all_lengths if self.index is None else all_lengths[self.index]

    def take(self, rows: Sequence[int] | np.ndarray) -> "Ragged":
        """A view of the sequences at positions `rows` (of this view), in that order."""
        rows = np.asarray(rows, dtype=np.int64)
        return Ragged(self.values, self.offsets, rows if self.index is None else self.index[rows])

    def head(self, n: int) -> "Ragged":
        """A view of the first `n` sequences."""
        if self.index is None and n >= len(self):
            return self
        return self.take(np.arange(min(n, len(self)), dtype=np.int64))

    def compact(self) -> "Ragged":
        """The same sequences in fresh contiguous arrays (no index): what gets written to the cache."""
        if self.index is None:
            return self
        lengths = self.lengths()
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        starts = self.offsets[self.index]
        gather = np.repeat(starts - offsets[:-1], lengths) + np.arange(int(offsets[-1]), dtype=np.int64)
        return Ragged(np.ascontiguousarray(self.values[gather], dtype=np.int32), offsets)

    def tolist(self) -> list[list[int]]:
        return [s.tolist() for s in self]

    @property
    def nbytes(self) -> int:
        """Bytes of the arrays this view reads (memory-mapped arrays cost only the pages a batch touches)."""
        return int(self.values.nbytes + self.offsets.nbytes + (0 if self.index is None else self.index.nbytes))


@dataclass(frozen=True, eq=False)
class Encoded:
    """Tokenised examples: input and target ids (padded per batch) and label indices ([n] int32, NO_LABEL = none)."""

    inputs: Ragged
    targets: Ragged
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.inputs)

    def take(self, rows) -> "Encoded":
        rows = np.asarray(rows, dtype=np.int64)
        return Encoded(self.inputs.take(rows), self.targets.take(rows), self.labels[rows])

    def head(self, n: int) -> "Encoded":
        if n >= len(self):
            return self
        return Encoded(self.inputs.head(n), self.targets.head(n), self.labels[:n])

    @classmethod
    def concat(cls, parts: Sequence["Encoded"]) -> "Encoded":
        labels = np.concatenate([p.labels for p in parts]) if parts else np.zeros(0, dtype=np.int32)
        return cls(Ragged.concat([p.inputs for p in parts]), Ragged.concat([p.targets for p in parts]),
                   labels.astype(np.int32, copy=False))

    @property
    def nbytes(self) -> int:
        return self.inputs.nbytes + self.targets.nbytes + int(self.labels.nbytes)


ENCODE_CHUNK = 4096  # examples per tokenizer call: the tokenizer's Python lists are temporary, per chunk


def encode_targets(tokenizer, texts: Sequence[str], *, max_length: int | None = None) -> list[list[int]]:
    """Target token ids as every engine scores them: a continuation that ends with EOS and has no BOS.

    T5's tokenizer (and the word-level ones) already write a target that way. A causal LM's does not: GPT-2's
    appends no EOS, so a model trained on its ids would never learn to stop, and the label set could not drop a
    closing EOS it never had; Llama's puts a BOS in front, which would train the model to emit a document start
    mid-sequence. So a leading BOS (distinct from EOS) is dropped and a missing EOS appended, within `max_length`
    ids when given (the EOS replaces the last token of a truncated target). A tokenizer without an EOS is left as
    it is.
    """
    kw = {"truncation": True, "max_length": max_length} if max_length else {}
    ids = tokenizer(list(texts), **kw)["input_ids"] if len(texts) else []
    bos, eos = getattr(tokenizer, "bos_token_id", None), getattr(tokenizer, "eos_token_id", None)
    out = []
    for seq in ids:
        seq = list(seq)
        if bos is not None and bos != eos and seq[:1] == [bos]:
            seq = seq[1:]
        if eos is not None and seq[-1:] != [eos]:
            seq = seq[: max_length - 1] + [eos] if max_length else seq + [eos]
        out.append(seq)
    return out


def encode_examples(tokenizer, examples: Sequence[Example], *, max_source: int, max_target: int) -> Encoded:
    """Tokenise inputs (truncated to `max_source` tokens, with the tokenizer's own special tokens: T5's closing EOS,
    Llama's BOS) and targets (`encode_targets`: ending with EOS, `max_target` ids at most)."""
    if len(examples) > ENCODE_CHUNK:
        return Encoded.concat([encode_examples(tokenizer, examples[i : i + ENCODE_CHUNK], max_source=max_source,
                                               max_target=max_target) for i in range(0, len(examples), ENCODE_CHUNK)])
    if not examples:
        empty = Ragged.from_lists([])
        return Encoded(empty, empty, np.zeros(0, dtype=np.int32))
    src = tokenizer([e.input for e in examples], truncation=True, max_length=max_source)["input_ids"]
    # a closed label set repeats a handful of targets: tokenise each distinct one once
    distinct = list(dict.fromkeys(e.target for e in examples))
    ids = dict(zip(distinct, encode_targets(tokenizer, distinct, max_length=max_target)))
    labels = np.array([NO_LABEL if e.label is None else e.label for e in examples], dtype=np.int32)
    return Encoded(Ragged.from_lists(src), Ragged.from_lists(ids[e.target] for e in examples), labels)


def scoring_examples(examples: Sequence[Example]) -> list[Example]:
    """What scoring reads of each evaluation example (target, label, answers, group); the input text is dropped,
    since the model reads the token ids."""
    return [Example("", e.target, e.label, tuple(e.answers), e.group) for e in examples]
