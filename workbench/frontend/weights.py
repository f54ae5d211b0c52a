"""Weights from safetensors files, memory-mapped as read-only numpy arrays.

A safetensors file is an 8-byte little-endian header length ``N``, ``N`` bytes of JSON header
(``{"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {...}}``)
and a data section that the offsets index into. :func:`load_safetensors` parses and checks the
header here and maps the data section with ``mmap``, so a 90 MB checkpoint costs no copy and no
time until its tensors are read (the ``safetensors`` package's numpy API copies every tensor).
Nothing is ever unpickled.

>>> import tempfile, os, numpy as np
>>> from safetensors.numpy import save_file
>>> path = os.path.join(tempfile.mkdtemp(), "w.safetensors")
>>> save_file({"w": np.arange(6, dtype="float32").reshape(2, 3)}, path)
>>> w = load_safetensors(path)["w"]
>>> w
array([[0., 1., 2.],
       [3., 4., 5.]], dtype=float32)
>>> w.flags.writeable
False
"""
from __future__ import annotations

import json
import mmap
import os
import struct
from dataclasses import dataclass

import ml_dtypes
import numpy as np

from .errors import ModelFileError

__all__ = ["TensorInfo", "SafetensorsHeader", "read_safetensors_header", "load_safetensors", "SAFETENSORS_DTYPES"]

#: safetensors dtype name -> numpy dtype (little-endian, as the format stores them)
SAFETENSORS_DTYPES: dict[str, np.dtype] = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"),
    "BF16": np.dtype(ml_dtypes.bfloat16),
    "F8_E4M3": np.dtype(ml_dtypes.float8_e4m3fn), "F8_E5M2": np.dtype(ml_dtypes.float8_e5m2),
    "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "I16": np.dtype("<i2"), "I8": np.dtype("i1"),
    "U64": np.dtype("<u8"), "U32": np.dtype("<u4"), "U16": np.dtype("<u2"), "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}

_LENGTH_BYTES = 8
_MAX_HEADER_BYTES = 100 * 1024 * 1024   # the safetensors library's own limit


@dataclass(frozen=True)
class TensorInfo:
    """One tensor's entry in a safetensors header: numpy dtype, shape and byte range in the data section."""

    dtype: np.dtype
    shape: tuple[int, ...]
    begin: int
    end: int


@dataclass(frozen=True)
class SafetensorsHeader:
    """A checked safetensors header: tensors in file order, the free-form metadata and where the data starts."""

    tensors: dict[str, TensorInfo]
    metadata: dict[str, str]
    data_start: int
    data_size: int


def read_safetensors_header(path: str | os.PathLike) -> SafetensorsHeader:
    """Read and check the header of the safetensors file ``path`` (reads no tensor data).

    Raises :class:`ModelFileError`, naming the file, when it is missing, truncated, has a header that
    is not JSON or whose offsets fall outside the data section, or holds a dtype numpy cannot represent.

    >>> import tempfile, os, numpy as np
    >>> from safetensors.numpy import save_file
    >>> path = os.path.join(tempfile.mkdtemp(), "w.safetensors")
    >>> save_file({"b": np.zeros(3, "float16")}, path, metadata={"format": "np"})
    >>> h = read_safetensors_header(path)
    >>> h.tensors["b"].shape, h.tensors["b"].dtype, h.metadata
    ((3,), dtype('float16'), {'format': 'np'})
    """
    path = os.fspath(path)
    file_size = _file_size(path)
    with open(path, "rb") as f:
        length_field = f.read(_LENGTH_BYTES)
        if len(length_field) < _LENGTH_BYTES:
            raise ModelFileError(f"safetensors file {path!r} is truncated: it has {file_size} bytes, "
                                 f"fewer than the {_LENGTH_BYTES}-byte header length")
        (header_len,) = struct.unpack("<Q", length_field)
        if header_len > file_size - _LENGTH_BYTES or header_len > _MAX_HEADER_BYTES:
            raise ModelFileError(f"safetensors file {path!r} is truncated or not a safetensors file: its header "
                                 f"length field says {header_len} bytes but only {file_size - _LENGTH_BYTES} "
                                 f"bytes follow")
        raw_header = f.read(header_len)
    entries = _parse_header_json(path, raw_header)
    data_start = _LENGTH_BYTES + header_len
    data_size = file_size - data_start
    metadata = entries.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict):
        raise ModelFileError(f"safetensors file {path!r} has a corrupted header: '__metadata__' is "
                             f"{type(metadata).__name__}, not an object")
    tensors = {name: _tensor_info(path, name, entry) for name, entry in entries.items()}
    _check_offsets(path, tensors, data_size)
    return SafetensorsHeader(tensors=tensors, metadata=metadata, data_start=data_start, data_size=data_size)


def load_safetensors(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every tensor of the safetensors file ``path``, by name, as read-only numpy arrays mapped from the file.

    The arrays share the file's pages (no copy); ``np.array(w)`` makes a writable copy. Errors are those
    of :func:`read_safetensors_header` (a :class:`ModelFileError` naming the file and the fault).

    >>> import tempfile, os, numpy as np
    >>> from safetensors.numpy import save_file
    >>> path = os.path.join(tempfile.mkdtemp(), "w.safetensors")
    >>> save_file({"ids": np.array([[1, 2]], "int64"), "x": np.ones(2, "float32")}, path)
    >>> {name: (a.dtype.name, a.shape) for name, a in load_safetensors(path).items()}
    {'ids': ('int64', (1, 2)), 'x': ('float32', (2,))}
    """
    path = os.fspath(path)
    header = read_safetensors_header(path)
    with open(path, "rb") as f:
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    return {name: _view(mapped, header.data_start, info) for name, info in header.tensors.items()}


def _file_size(path: str) -> int:
    if not os.path.exists(path):
        raise ModelFileError(f"safetensors file {path!r} does not exist")
    if not os.path.isfile(path):
        raise ModelFileError(f"safetensors path {path!r} is not a file")
    return os.path.getsize(path)


def _parse_header_json(path: str, raw_header: bytes) -> dict:
    try:
        entries = json.loads(raw_header.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelFileError(f"safetensors file {path!r} has a corrupted header: it is not valid UTF-8 JSON "
                             f"({e})") from None
    if not isinstance(entries, dict):
        raise ModelFileError(f"safetensors file {path!r} has a corrupted header: it is a JSON "
                             f"{type(entries).__name__}, not an object")
    return entries


def _tensor_info(path: str, name: str, entry: object) -> TensorInfo:
    where = f"safetensors file {path!r}, tensor {name!r}"
    if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= entry.keys():
        raise ModelFileError(f"{where}: corrupted header entry {entry!r} (needs 'dtype', 'shape' and "
                             f"'data_offsets')")
    dtype_name, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if dtype_name not in SAFETENSORS_DTYPES:
        raise ModelFileError(f"{where}: unsupported dtype {dtype_name!r} (supported: "
                             f"{', '.join(SAFETENSORS_DTYPES)})")
    if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
        raise ModelFileError(f"{where}: corrupted header, shape {shape!r} is not a list of non-negative integers")
    if (not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_count(o) for o in offsets)
            or offsets[0] > offsets[1]):
        raise ModelFileError(f"{where}: corrupted header, data_offsets {offsets!r} is not [begin, end] with "
                             f"0 <= begin <= end")
    dtype = SAFETENSORS_DTYPES[dtype_name]
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if offsets[1] - offsets[0] != nbytes:
        raise ModelFileError(f"{where}: corrupted header, data_offsets {offsets} span {offsets[1] - offsets[0]} "
                             f"bytes but a {dtype_name} tensor of shape {tuple(shape)} needs {nbytes}")
    return TensorInfo(dtype=dtype, shape=tuple(shape), begin=offsets[0], end=offsets[1])


def _is_count(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def _check_offsets(path: str, tensors: dict[str, TensorInfo], data_size: int) -> None:
    previous_name, previous_end = None, 0
    for name, info in sorted(tensors.items(), key=lambda item: (item[1].begin, item[1].end)):
        if info.end > data_size:
            raise ModelFileError(f"safetensors file {path!r} is truncated or corrupted: tensor {name!r} needs "
                                 f"data bytes {info.begin}..{info.end} but the data section has {data_size} bytes")
        if info.begin < previous_end:
            raise ModelFileError(f"safetensors file {path!r} has a corrupted header: tensor {name!r} "
                                 f"(bytes {info.begin}..{info.end}) overlaps tensor {previous_name!r}")
        if info.begin > previous_end:
            raise ModelFileError(f"safetensors file {path!r} has a corrupted header: data bytes "
                                 f"{previous_end}..{info.begin} belong to no tensor (the format allows no holes)")
        previous_name, previous_end = name, info.end
    if previous_end != data_size:
        raise ModelFileError(f"safetensors file {path!r} is corrupted: its data section has {data_size} bytes but "
                             f"the tensors use {previous_end}")


def _view(mapped: mmap.mmap, data_start: int, info: TensorInfo) -> np.ndarray:
    count = (info.end - info.begin) // info.dtype.itemsize
    flat = np.frombuffer(mapped, dtype=info.dtype, count=count, offset=data_start + info.begin)
    return flat.reshape(info.shape)
