"""tokenizer.json through the ``tokenizers`` library, batch-encoded to padded numpy arrays.

Files exported from Hugging Face often pad every sequence to a fixed length (all-MiniLM-L6-v2's pads
to 128); :class:`Tokenizer` turns that off and pads each batch only to its longest sequence, on the
right, with the file's pad id. The file's truncation setting is kept unless ``max_length`` is given.

>>> import tokenizers, tempfile, os
>>> from tokenizers.models import WordLevel
>>> from tokenizers.pre_tokenizers import Whitespace
>>> backend = tokenizers.Tokenizer(WordLevel({"[PAD]": 0, "[UNK]": 1, "hello": 2, "big": 3, "world": 4},
...                                          unk_token="[UNK]"))
>>> backend.pre_tokenizer = Whitespace()
>>> backend.enable_padding(length=16, pad_id=0, pad_token="[PAD]")   # fixed padding, as exported files have
>>> path = os.path.join(tempfile.mkdtemp(), "tokenizer.json")
>>> backend.save(path)
>>> batch = load_tokenizer(path)(["hello world", "hello big big world"])
>>> batch.input_ids
array([[2, 4, 0, 0],
       [2, 3, 3, 4]])
>>> batch.attention_mask
array([[1, 1, 0, 0],
       [1, 1, 1, 1]])
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import tokenizers

from .errors import ModelFileError

__all__ = ["BatchEncoding", "Tokenizer", "load_tokenizer"]

_PAD_TOKENS = ("[PAD]", "<pad>", "<|pad|>")


@dataclass(frozen=True)
class BatchEncoding:
    """A tokenized batch, each array ``[batch, seq]``: token ids (pad id past a sentence's end), mask (1 for a
    real token, 0 for padding) and token type ids."""

    input_ids: np.ndarray
    attention_mask: np.ndarray
    token_type_ids: np.ndarray


class Tokenizer:
    """A ``tokenizers.Tokenizer`` that encodes batches of sentences to numpy arrays padded to the longest."""

    def __init__(self, backend: tokenizers.Tokenizer, source: str = "tokenizer", max_length: int | None = None):
        self.source = source
        self.pad_id = _pad_id(backend)
        self.backend = backend
        backend.no_padding()
        if max_length is not None:
            backend.enable_truncation(max_length)

    @classmethod
    def from_file(cls, path: str | os.PathLike, max_length: int | None = None) -> Tokenizer:
        """The tokenizer of a tokenizer.json file (see :func:`load_tokenizer`)."""
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise ModelFileError(f"tokenizer file {path!r} does not exist")
        with open(path, encoding="utf-8") as f:
            text = f.read()
        try:
            backend = tokenizers.Tokenizer.from_str(text)
        except Exception as e:  # the tokenizers library raises a bare Exception for any malformed file
            raise ModelFileError(f"tokenizer file {path!r} is not a valid tokenizer.json ({e})") from None
        return cls(backend, source=path, max_length=max_length)

    @property
    def vocab_size(self) -> int:
        """Number of tokens, added tokens included."""
        return self.backend.get_vocab_size(with_added_tokens=True)

    def __call__(self, sentences: Sequence[str], dtype: str = "int64") -> BatchEncoding:
        """Encode ``sentences`` (a non-empty list of strings) into ``[batch, longest]`` arrays of ``dtype``."""
        _check_sentences(sentences)
        encodings = self.backend.encode_batch(list(sentences))
        seq_len = max(len(e.ids) for e in encodings)
        ids = np.full((len(encodings), seq_len), self.pad_id, dtype=dtype)
        mask = np.zeros((len(encodings), seq_len), dtype=dtype)
        types = np.zeros((len(encodings), seq_len), dtype=dtype)
        for row, e in enumerate(encodings):
            n = len(e.ids)
            ids[row, :n], mask[row, :n], types[row, :n] = e.ids, e.attention_mask, e.type_ids
        return BatchEncoding(input_ids=ids, attention_mask=mask, token_type_ids=types)

    encode_batch = __call__

    def encode(self, sentence: str) -> list[int]:
        """Token ids of one sentence, special tokens included, unpadded."""
        _check_sentences([sentence])
        return self.backend.encode(sentence).ids

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        """The text of token ids."""
        return self.backend.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)

    def __repr__(self) -> str:
        return f"Tokenizer({self.source!r}, vocab_size={self.vocab_size}, pad_id={self.pad_id})"


def load_tokenizer(path: str | os.PathLike, max_length: int | None = None) -> Tokenizer:
    """The tokenizer of ``path``: a tokenizer.json file or a model folder holding one.

    ``max_length`` truncates longer sentences (None keeps the file's own truncation setting). A missing
    or malformed file raises :class:`ModelFileError` naming it.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, "tokenizer.json")
    return Tokenizer.from_file(path, max_length=max_length)


def _pad_id(backend: tokenizers.Tokenizer) -> int:
    """The file's padding id, else the id of a conventional pad token, else 0 (padding is masked out anyway)."""
    if backend.padding is not None:
        return int(backend.padding["pad_id"])
    for token in _PAD_TOKENS:
        token_id = backend.token_to_id(token)
        if token_id is not None:
            return token_id
    return 0


def _check_sentences(sentences: object) -> None:
    if isinstance(sentences, str) or not isinstance(sentences, Sequence):
        raise TypeError(f"expected a list of sentences (strings), got {type(sentences).__name__}")
    if len(sentences) == 0:
        raise ValueError("expected at least one sentence, got an empty list")
    for i, s in enumerate(sentences):
        if not isinstance(s, str):
            raise TypeError(f"sentence {i} is a {type(s).__name__}, not a string")
