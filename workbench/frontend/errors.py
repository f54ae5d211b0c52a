"""Errors raised while reading a model's files (weights, config.json, tokenizer.json)."""
from __future__ import annotations


class ModelFileError(ValueError):
    """A model file is missing, unreadable, corrupted or disagrees with another file.

    The message names the file and says what is wrong with it in one sentence.
    """


class UnsupportedArchitectureError(ModelFileError):
    """config.json names an architecture the frontend has no definition for; the message lists the supported ones."""
