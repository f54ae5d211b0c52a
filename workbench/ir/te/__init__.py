"""te: tensor expressions, the compute-description way to write a tensor program.

    >>> import workbench as wb
    >>> from workbench import te
    >>> A = te.placeholder((64, 64), "float32", name="A")
    >>> B = te.placeholder((64, 64), "float32", name="B")
    >>> k = te.reduce_axis(64, name="k")
    >>> C = te.compute((64, 64), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    >>> matmul = wb.create_prim_func([A, B, C])

Reducers: ``te.sum`` / ``te.max`` / ``te.min`` reduce with ``axis=`` (a reduce axis or a
list of them, optional ``where=`` predicate and ``init=`` value); with two plain values
they combine elementwise as in TVM (``te.max(x, 0.0)`` is a relu). ``te.max_value(dtype)``
is the largest value of a dtype.
"""
from __future__ import annotations

from ..dtype import DTypeError
from .create_prim_func import create_prim_func
from .intrin import *  # noqa: F401,F403
from .intrin import __all__ as _intrin_all
from .reduction import CommReducer, Reduce, comm_reducer, reduce_axis
from .reduction import max, min, sum  # noqa: A004
from .tensor import (AxisVar, ComputeOp, Operation, PlaceholderOp, TEError, Tensor, compute, placeholder,
                     size_var, var)

__all__ = ["placeholder", "compute", "Tensor", "Operation", "PlaceholderOp", "ComputeOp", "AxisVar", "TEError",
           "var", "size_var", "reduce_axis", "sum", "max", "min", "comm_reducer", "CommReducer", "Reduce",
           "create_prim_func", "DTypeError"] + list(_intrin_all)
