"""Run-time support of the virtual machine: aligned allocation and the ``call_dps_library`` table.

``call_dps_library("numpy.matmul", (a, b), out=...)`` calls a routine of a fixed table
in destination-passing style: the VM allocates the output and the routine writes it
(``numpy.matmul(a, b, out=out)``). Only names in :data:`LIBRARY` can be called; the VM
refuses any other name when it is constructed.

>>> import numpy as np
>>> out = aligned_empty((2, 3), np.dtype("float32"))
>>> out.ctypes.data % ALIGNMENT, out.shape, out.flags.c_contiguous
(0, (2, 3), True)
>>> sorted(LIBRARY)[:3]
['numpy.abs', 'numpy.add', 'numpy.divide']
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

#: byte alignment of every array the VM allocates (one AVX-512 vector / cache line)
ALIGNMENT = 64


def aligned_empty(shape: tuple, dtype: np.dtype) -> np.ndarray:
    """An uninitialised C-contiguous array whose data starts on an :data:`ALIGNMENT`-byte boundary."""
    nbytes = math.prod(shape) * dtype.itemsize
    raw = np.empty(nbytes + ALIGNMENT, np.uint8)
    start = -raw.ctypes.data % ALIGNMENT
    return raw[start:start + nbytes].view(dtype).reshape(shape)


def aligned_storage(nbytes: int) -> np.ndarray:
    """An uninitialised, :data:`ALIGNMENT`-aligned byte buffer (a storage several tensors share over time)."""
    return aligned_empty((nbytes,), np.dtype(np.uint8))


def view_of(storage: np.ndarray, offset: int, shape: tuple, dtype: np.dtype) -> np.ndarray:
    """The tensor of ``shape``/``dtype`` that lives in ``storage`` from byte ``offset`` on."""
    nbytes = math.prod(shape) * dtype.itemsize
    return storage[offset:offset + nbytes].view(dtype).reshape(shape)


class LibraryRoutine:
    """A named routine called as ``fn(*inputs, out=output)``; ``arity`` is its number of inputs."""

    def __init__(self, name: str, fn: Callable, arity: int):
        self.name, self.fn, self.arity = name, fn, arity

    def __call__(self, *args) -> None:
        *inputs, out = args
        self.fn(*inputs, out=out)

    def __repr__(self) -> str:
        return f"<library routine {self.name}({self.arity} input(s), out)>"


def _table() -> dict[str, LibraryRoutine]:
    binary = ("matmul", "add", "subtract", "multiply", "divide", "maximum", "minimum", "power")
    unary = ("negative", "exp", "tanh", "sqrt", "abs", "log")
    table = {f"numpy.{n}": LibraryRoutine(f"numpy.{n}", getattr(np, n), 2) for n in binary}
    table.update({f"numpy.{n}": LibraryRoutine(f"numpy.{n}", getattr(np, n), 1) for n in unary})
    return table


#: the routines ``call_dps_library`` may name
LIBRARY: dict[str, LibraryRoutine] = _table()


__all__ = ["ALIGNMENT", "LIBRARY", "LibraryRoutine", "aligned_empty", "aligned_storage", "view_of"]
