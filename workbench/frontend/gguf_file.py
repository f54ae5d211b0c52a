"""GGUF model files (llama.cpp's format) read through the ``gguf`` package: architecture, hyper-parameters,
tensors kept packed as stored, tokenizer and chat template.

:func:`load_gguf` memory-maps the file (``gguf.GGUFReader``) and returns a :class:`GGUFFile`. Tensors are
:class:`GGUFTensor` views of the file's bytes, never copied or converted: ``F32``/``F16`` tensors as float32/
float16 arrays of their numpy shape, block-quantized ones (``Q4_0``, ``Q4_1``, ``Q8_0``; layouts in
:mod:`workbench.frontend.gguf_quants`) as ``uint8 [rows, packed_row_bytes]`` arrays of the stored blocks.
Shapes are in numpy order (``[out_features, in_features]`` for a matrix), the reverse of GGUF's ``ne``.

Errors are :class:`~workbench.frontend.errors.ModelFileError` naming the file and what is wrong: not a GGUF
file, truncated (header or tensor data cut off), an architecture with no definition
(:class:`~workbench.frontend.errors.UnsupportedArchitectureError`), a tensor type not supported yet
(:class:`UnsupportedTensorTypeError`, naming the tensor and its type), missing weights or wrong shapes.

>>> import os, tempfile, numpy as np, gguf
>>> path = os.path.join(tempfile.mkdtemp(), "tiny.gguf")
>>> w = gguf.GGUFWriter(path, "llama")
>>> q8 = gguf.GGMLQuantizationType.Q8_0
>>> w.add_tensor("token_embd.weight", gguf.quants.quantize(np.full((4, 32), 127.0, np.float32), q8), raw_dtype=q8)
>>> w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
>>> t = read_gguf_tensors(path)["token_embd.weight"]
>>> t.quant_type, t.shape, t.data.dtype, t.data.shape
('Q8_0', (4, 32), dtype('uint8'), (4, 34))
>>> float(t.dequantize()[3, 31])
127.0
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..backend.heap import return_free_memory
from .errors import ModelFileError, UnsupportedArchitectureError
from .gguf_quants import BLOCK_LAYOUTS, dequantize_blocks, packed_row_bytes
from .gguf_tokenizer import GGUFVocab, apply_chat_template, build_tokenizer
from .llama_config import LlamaConfig

__all__ = ["GGUFTensor", "GGUFFile", "load_gguf", "read_gguf_tensors", "read_gguf_metadata",
           "UnsupportedTensorTypeError", "SUPPORTED_TENSOR_TYPES", "SUPPORTED_GGUF_ARCHITECTURES"]

#: tensor types workbench reads: float ones as arrays, block-quantized ones packed
SUPPORTED_TENSOR_TYPES = ("F32", "F16", *BLOCK_LAYOUTS)

#: the tokenizer arrays, kept in :attr:`GGUFFile.vocab` rather than in :attr:`GGUFFile.metadata`
_VOCAB_ARRAYS = ("tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.ggml.token_type",
                 "tokenizer.ggml.scores")

_GGUF_MAGIC = b"GGUF"


class UnsupportedTensorTypeError(ModelFileError):
    """A tensor of the file is stored in a type workbench cannot read yet; the message names tensor and type."""


@dataclass(frozen=True)
class GGUFTensor:
    """One tensor of a GGUF file: ``data`` is a read-only view of the stored bytes (see the module docstring)."""

    name: str
    quant_type: str
    shape: tuple[int, ...]
    data: np.ndarray = field(repr=False)

    @property
    def is_quantized(self) -> bool:
        return self.quant_type in BLOCK_LAYOUTS

    @property
    def nbytes(self) -> int:
        """Bytes the tensor takes in the file (and in memory)."""
        return int(self.data.nbytes)

    def dequantize(self) -> np.ndarray:
        """A float32 copy of the tensor (numpy shape), decoded with :func:`gguf_quants.dequantize_blocks`."""
        if self.is_quantized:
            return dequantize_blocks(self.data, self.quant_type, self.shape)
        return self.data.astype(np.float32)


@dataclass(frozen=True)
class GGUFFile:
    """A loaded GGUF model: :func:`load_gguf`'s result."""

    path: str
    architecture: str
    config: LlamaConfig
    metadata: dict[str, Any] = field(repr=False)
    tensors: dict[str, GGUFTensor] = field(repr=False)
    vocab: GGUFVocab = field(repr=False)
    tokenizer: Any = field(repr=False)   # tokenizers.Tokenizer

    @property
    def chat_template(self) -> str | None:
        return self.vocab.chat_template

    def apply_chat_template(self, messages, add_generation_prompt: bool = True, renderer: str = "auto") -> str:
        """The prompt text of ``messages`` under the file's chat template."""
        if self.chat_template is None:
            raise ModelFileError(f"{self.path!r} has no tokenizer.chat_template")
        specials = {"bos_token": self.vocab.tokens[self.vocab.bos_id] if self.vocab.bos_id is not None else "",
                    "eos_token": self.vocab.tokens[self.vocab.eos_id] if self.vocab.eos_id is not None else ""}
        return apply_chat_template(self.chat_template, messages, add_generation_prompt, renderer, **specials)

    @property
    def file_size(self) -> int:
        return os.path.getsize(self.path)


def load_gguf(path: str | os.PathLike) -> GGUFFile:
    """Read the model in the GGUF file ``path``: hyper-parameters, packed tensors (checked against the shapes
    the architecture needs), tokenizer and chat template."""
    path = os.fspath(path)
    reader = _open(path)
    metadata = _metadata(reader)
    architecture = metadata.get("general.architecture")
    if architecture not in SUPPORTED_GGUF_ARCHITECTURES:
        raise UnsupportedArchitectureError(
            f"GGUF file {path!r} holds a {architecture!r} model; supported architectures: "
            f"{', '.join(SUPPORTED_GGUF_ARCHITECTURES)}")
    tensors = _tensors(reader, path)
    vocab = GGUFVocab.from_metadata(_vocab_metadata(reader, metadata), source=f"GGUF file {path!r}")
    config = SUPPORTED_GGUF_ARCHITECTURES[architecture](metadata, tensors, vocab, path)
    _check_shapes(config.tensor_shapes(), tensors, path)
    model = GGUFFile(path=path, architecture=architecture, config=config, metadata=metadata, tensors=tensors,
                     vocab=vocab, tokenizer=build_tokenizer(vocab))
    del reader
    vocab.repack_strings()   # after the reader is gone (it collects the garbage before re-making the strings)
    return_free_memory()     # the parse of the vocabulary (hundreds of MB at its peak) leaves the process
    return model


def read_gguf_tensors(path: str | os.PathLike) -> dict[str, GGUFTensor]:
    """Only the tensors of a GGUF file (any architecture), by name, in file order."""
    path = os.fspath(path)
    return _tensors(_open(path), path)


def read_gguf_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """Only the key/value metadata of a GGUF file (the tokenizer arrays left out)."""
    return _metadata(_open(os.fspath(path)))


def _llama_config(metadata: dict[str, Any], tensors: dict[str, GGUFTensor], vocab: GGUFVocab,
                  path: str) -> LlamaConfig:
    return LlamaConfig.from_gguf_metadata(metadata, vocab_size=len(vocab.tokens),
                                          tie_word_embeddings="output.weight" not in tensors,
                                          source=f"GGUF file {path!r}")


#: architecture name (``general.architecture``) -> config reader
SUPPORTED_GGUF_ARCHITECTURES: dict[str, Callable[..., LlamaConfig]] = {"llama": _llama_config}


def _open(path: str):
    import gguf

    if not os.path.isfile(path):
        raise ModelFileError(f"GGUF file {path!r} does not exist")
    with open(path, "rb") as f:
        magic = f.read(4)
    if len(magic) < len(_GGUF_MAGIC):
        raise ModelFileError(f"GGUF file {path!r} is truncated: {len(magic)} bytes, too short for a GGUF header")
    if magic != _GGUF_MAGIC:
        raise ModelFileError(f"{path!r} is not a GGUF file: it starts with {magic!r}, not {_GGUF_MAGIC!r}")
    try:
        return gguf.GGUFReader(path, "r")
    except (ValueError, IndexError, KeyError, OverflowError, UnicodeDecodeError, MemoryError) as e:
        # the reader indexes past the end of a truncated memory map, or reads garbage lengths from a corrupted one
        raise ModelFileError(f"GGUF file {path!r} is truncated or corrupted: the gguf reader failed with "
                             f"{type(e).__name__}: {e}") from None


def _metadata(reader) -> dict[str, Any]:
    return {name: f.contents() for name, f in reader.fields.items()
            if not name.startswith("GGUF.") and name not in _VOCAB_ARRAYS}


def _vocab_metadata(reader, metadata: dict[str, Any]) -> dict[str, Any]:
    arrays = {name: reader.fields[name].contents() for name in _VOCAB_ARRAYS if name in reader.fields}
    return {**metadata, **arrays}


def _tensors(reader, path: str) -> dict[str, GGUFTensor]:
    tensors = {}
    for t in reader.tensors:
        quant_type = t.tensor_type.name
        if quant_type not in SUPPORTED_TENSOR_TYPES:
            raise UnsupportedTensorTypeError(
                f"GGUF file {path!r}: tensor {t.name!r} is stored as {quant_type}, which is not supported yet "
                f"(supported: {', '.join(SUPPORTED_TENSOR_TYPES)})")
        shape = tuple(int(d) for d in reversed(t.shape))
        tensors[t.name] = GGUFTensor(t.name, quant_type, shape, _stored_view(t.data, quant_type, shape))
    return tensors


def _stored_view(data: np.ndarray, quant_type: str, shape: tuple[int, ...]) -> np.ndarray:
    data = data.view(np.ndarray)
    if quant_type in BLOCK_LAYOUTS:
        return data.reshape(*shape[:-1], packed_row_bytes(quant_type, shape[-1]))
    return data.reshape(shape)


def _check_shapes(expected: dict[str, tuple[int, ...]], tensors: dict[str, GGUFTensor], path: str) -> None:
    missing = [name for name in expected if name not in tensors]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise ModelFileError(f"GGUF file {path!r} lacks tensor(s) {', '.join(missing[:3])}{more}")
    for name, shape in expected.items():
        if tensors[name].shape != shape:
            raise ModelFileError(f"GGUF file {path!r}: tensor {name!r} has shape {tensors[name].shape}, the "
                                 f"model's hyper-parameters need {shape}")
