"""Reductions: ``sum``, ``mean``, ``max`` over ``axis`` (None for all, an int, or a list) with
``keepdims``, as numpy. ``mean`` needs a float tensor; ``sum`` and ``max`` keep the input dtype.

>>> import workbench as wb
>>> from workbench.ir.graph.op import get_op
>>> from workbench.ir.graph.types import TensorType
>>> n = wb.var("n")
>>> get_op("mean").infer([TensorType((n, 8, 4), "float32")], {"axis": [1, 2], "keepdims": True})
Tensor((n, 1, 1), "float32")
"""
from __future__ import annotations

import numpy as np

from ... import te
from ...expr import IntImm
from ...op_library import reduce as reduce_lib
from ..op import register_op
from ..types import TensorType
from ._common import check_arity, norm_axes, require_float, require_numeric, tensor_arg


def _reduce_infer(op: str, float_only: bool):
    def infer(args, attrs):
        check_arity(op, args, ("x",))
        x = tensor_arg(op, args[0], "x")
        (require_float if float_only else require_numeric)(op, x, "x")
        axes = norm_axes(op, attrs.get("axis"), x.ndim)
        if attrs.get("keepdims", False):
            shape = tuple(IntImm(1, "int32") if k in axes else d for k, d in enumerate(x.shape))
        else:
            shape = tuple(d for k, d in enumerate(x.shape) if k not in axes)
        return TensorType(shape, x.dtype)

    return infer


def _register(op: str, lib_fn, np_fn, float_only: bool = False) -> None:
    def legalize(tensors, attrs):
        (x,) = tensors
        axes = norm_axes(op, attrs.get("axis"), x.ndim)
        if not axes:  # axis=[]: nothing to reduce, as numpy
            return te.compute(x.shape, lambda *i: x[i], name=op)
        return lib_fn(x, axis=axes, keepdims=bool(attrs.get("keepdims", False)), name=op)

    def reference(arrays, attrs):
        x = arrays[0]
        axes = tuple(norm_axes(op, attrs.get("axis"), x.ndim))
        return np.asarray(np_fn(x, axis=axes, keepdims=bool(attrs.get("keepdims", False)))).astype(x.dtype)

    register_op(op, infer=_reduce_infer(op, float_only), legalize=legalize, reference=reference,
                pattern="reduction", doc=f"{op}(x, axis=None, keepdims=False): numpy.{op} over axis")


_register("sum", reduce_lib.sum, np.sum)
_register("mean", reduce_lib.mean, np.mean, float_only=True)
_register("max", reduce_lib.max, np.max)
