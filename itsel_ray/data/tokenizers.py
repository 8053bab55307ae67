"""Tokenizers by name: a Hub id or folder, or "vocab:<name>", a word-level tokenizer over a registered vocabulary.

The prepare step tokenises the tasks' data with it and the engines score and decode with it, so it lives with the
data (below the engines): the same name gives the same ids on both sides.
"""

from __future__ import annotations

PAD, EOS, UNK = "<pad>", "</s>", "<unk>"
WORD_VOCAB = "vocab:"


def build_tokenizer(spec: str):
    """A Hub/folder tokenizer, or "vocab:<name>": a word-level tokenizer over a registered vocabulary."""
    if spec.startswith(WORD_VOCAB):
        return word_tokenizer(vocabulary_words(spec))
    from transformers import AutoTokenizer

    return with_pad_token(AutoTokenizer.from_pretrained(spec))


def with_pad_token(tokenizer):
    """`tokenizer`, its EOS also its pad token when it has none (GPT-2's and Llama's have none).

    Batches are padded with the pad id, but every engine reads which positions are real from the masks, never from
    the id, so a pad id equal to EOS is safe; adding a new token instead would grow a pretrained embedding table.
    """
    if tokenizer.pad_token_id is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def vocabulary_words(spec: str) -> list[str]:
    """The words of registered vocabulary "vocab:<name>" (an unknown name lists the valid ones)."""
    from itsel_ray.tasks.synthetic import VOCABULARIES

    return VOCABULARIES.get(spec[len(WORD_VOCAB):])()


def word_vocab_size(spec: str) -> int:
    """Token ids of the word-level tokenizer "vocab:<name>" (pad, eos, unk and each distinct word), without
    building it."""
    return 3 + len(set(vocabulary_words(spec)) - {PAD, EOS, UNK})


def word_tokenizer(words: list[str]):
    """A word-level tokenizer (pad=0, eos=1, unk=2, then `words`) that appends EOS, built fully offline."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {PAD: 0, EOS: 1, UNK: 2}
    for w in words:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins word tokens with single spaces
    tok.post_processor = processors.TemplateProcessing(single=f"$A {EOS}", special_tokens=[(EOS, 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD, eos_token=EOS, unk_token=UNK)
