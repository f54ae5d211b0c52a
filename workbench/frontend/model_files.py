"""A model folder (config.json, safetensors weights, tokenizer.json): locate its files and load them checked.

:func:`load_checkpoint` is everything :func:`workbench.frontend.load` needs before building the graph:
the architecture's config, the weights by canonical name with the shapes the config implies, and the
tokenizer. Weights are ``model.safetensors``, or the shards listed by ``model.safetensors.index.json``;
pickled checkpoints (``pytorch_model.bin``) are refused, never loaded.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np

from .config import ArchitectureConfig, check_weights, read_config
from .errors import ModelFileError
from .tokenizer import Tokenizer, load_tokenizer
from .weights import load_safetensors

__all__ = ["ModelFiles", "Checkpoint", "locate_model_files", "load_checkpoint", "load_weights"]

_SINGLE = "model.safetensors"
_INDEX = "model.safetensors.index.json"
_PICKLES = ("pytorch_model.bin", "pytorch_model.bin.index.json", "tf_model.h5")


@dataclass(frozen=True)
class ModelFiles:
    """Paths of a model folder's files; ``weights`` is model.safetensors or the shard index; ``tokenizer`` may be None."""

    folder: str
    config: str
    weights: str
    tokenizer: str | None


@dataclass(frozen=True)
class Checkpoint:
    """A loaded model folder: its files, config, checked weights (canonical names, memory-mapped) and tokenizer."""

    files: ModelFiles
    config: ArchitectureConfig
    weights: dict[str, np.ndarray]
    tokenizer: Tokenizer | None


def locate_model_files(folder: str | os.PathLike, require_tokenizer: bool = True) -> ModelFiles:
    """The files of the model folder ``folder``; a missing one raises :class:`ModelFileError` listing what is there.

    >>> import tempfile
    >>> locate_model_files(tempfile.mkdtemp(prefix="empty"))     # doctest: +ELLIPSIS
    Traceback (most recent call last):
      ...
    workbench.frontend.errors.ModelFileError: model folder '...' has no config.json (it holds: nothing)
    """
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise ModelFileError(f"model folder {folder!r} does not exist or is not a folder")
    present = sorted(os.listdir(folder))
    holds = ", ".join(present) if present else "nothing"
    if "config.json" not in present:
        raise ModelFileError(f"model folder {folder!r} has no config.json (it holds: {holds})")
    weights = _SINGLE if _SINGLE in present else _INDEX if _INDEX in present else None
    if weights is None:
        pickles = [name for name in _PICKLES if name in present]
        hint = (f"; {pickles[0]} is not read (workbench loads only safetensors, never pickles)" if pickles else "")
        raise ModelFileError(f"model folder {folder!r} has no {_SINGLE} (it holds: {holds}){hint}")
    tokenizer = os.path.join(folder, "tokenizer.json") if "tokenizer.json" in present else None
    if tokenizer is None and require_tokenizer:
        raise ModelFileError(f"model folder {folder!r} has no tokenizer.json (it holds: {holds})")
    return ModelFiles(folder=folder, config=os.path.join(folder, "config.json"),
                      weights=os.path.join(folder, weights), tokenizer=tokenizer)


def load_weights(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The tensors of a safetensors file, or of all shards named by a ``*.safetensors.index.json`` file."""
    path = os.fspath(path)
    if not path.endswith(".index.json"):
        return load_safetensors(path)
    weight_map = _weight_map(path)
    weights: dict[str, np.ndarray] = {}
    for shard in sorted(set(weight_map.values())):
        tensors = load_safetensors(os.path.join(os.path.dirname(path), shard))
        absent = [name for name, s in weight_map.items() if s == shard and name not in tensors]
        if absent:
            raise ModelFileError(f"weight index {path!r} places {absent[0]!r} in {shard!r}, which does not hold it")
        weights.update(tensors)
    return weights


def load_checkpoint(folder: str | os.PathLike, require_tokenizer: bool = True) -> Checkpoint:
    """Load a model folder: config.json's architecture, the weights checked against it, and tokenizer.json.

    Every fault (a missing file, a corrupted safetensors file, an unsupported architecture, a weight whose
    shape disagrees with config.json, a malformed tokenizer) raises :class:`ModelFileError` naming the file.
    """
    files = locate_model_files(folder, require_tokenizer=require_tokenizer)
    config = read_config(files.config)
    weights = check_weights(config, load_weights(files.weights), source=files.weights)
    tokenizer = load_tokenizer(files.tokenizer) if files.tokenizer else None
    return Checkpoint(files=files, config=config, weights=weights, tokenizer=tokenizer)


def _weight_map(index_path: str) -> dict[str, str]:
    try:
        with open(index_path, encoding="utf-8") as f:
            weight_map = json.load(f).get("weight_map")
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError) as e:
        raise ModelFileError(f"weight index {index_path!r} is not a JSON object ({e})") from None
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise ModelFileError(f"weight index {index_path!r} has no 'weight_map' object of weight name -> file")
    outside = [v for v in weight_map.values() if os.path.basename(v) != v]
    if outside:
        raise ModelFileError(f"weight index {index_path!r} names shard {outside[0]!r} outside its folder")
    return weight_map
