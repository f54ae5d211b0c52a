"""Elementwise and broadcasting ops: add, subtract, multiply, divide, where, negative, exp, tanh, erf,
sqrt, rsqrt, gelu, silu, relu, astype.

Binary ops and ``where`` follow numpy broadcasting; a symbolic dimension matches a provably equal
one or 1. Both operands of a binary op must have the same dtype (no implicit promotion: cast with
``astype``); ``divide`` is float only (numpy's ``/`` on ints gives floats).

>>> import workbench as wb
>>> from workbench.ir.graph.op import get_op
>>> from workbench.ir.graph.types import TensorType
>>> n = wb.var("n")
>>> get_op("add").infer([TensorType((n, 4), "float32"), TensorType((4,), "float32")], {})
Tensor((n, 4), "float32")
>>> get_op("gelu").pattern, get_op("add").pattern
('elementwise', 'broadcast')
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from ... import te
from ...dtype import to_numpy
from ...op_library import nn as nn_lib
from ..op import register_op
from ..types import GraphTypeError, TensorType
from ._common import (as_type, broadcast_index, broadcast_shape, check_arity, dtype_attr, require_float,
                      require_numeric, same_dtype, shape_str, tensor_arg)

# -- binary ----------------------------------------------------------------------------------------


def _binary_infer(op: str, float_only: bool):
    def infer(args, attrs):
        check_arity(op, args, ("x1", "x2"))
        x1, x2 = (tensor_arg(op, a, n) for a, n in zip(args, ("x1", "x2")))
        dtype = same_dtype(op, [("x1", x1), ("x2", x2)])
        for t, name in ((x1, "x1"), (x2, "x2")):
            (require_float if float_only else require_numeric)(op, t, name)
        return TensorType(broadcast_shape(op, [("x1", x1), ("x2", x2)]), dtype)

    return infer


def _binary_legalize(op: str, fn: Callable):
    infer = _binary_infer(op, False)

    def legalize(tensors, attrs):
        a, b = tensors
        out = infer([as_type(a), as_type(b)], attrs)
        n = len(out.shape)
        return te.compute(out.shape, lambda *i: fn(a[broadcast_index(a.shape, n, i)],
                                                   b[broadcast_index(b.shape, n, i)]), name=op)

    return legalize


def _register_binary(op: str, fn: Callable, np_fn: Callable, float_only: bool = False) -> None:
    register_op(op, infer=_binary_infer(op, float_only), legalize=_binary_legalize(op, fn),
                reference=lambda arrays, attrs: np_fn(arrays[0], arrays[1]).astype(arrays[0].dtype),
                pattern="broadcast", doc=f"{op}(x1, x2): elementwise with numpy broadcasting; same dtypes")


_register_binary("add", lambda x, y: x + y, np.add)
_register_binary("subtract", lambda x, y: x - y, np.subtract)
_register_binary("multiply", lambda x, y: x * y, np.multiply)
_register_binary("divide", lambda x, y: x / y, np.divide, float_only=True)


# -- where ---------------------------------------------------------------------------------------

def _where_infer(args, attrs):
    check_arity("where", args, ("condition", "x1", "x2"))
    named = [(n, tensor_arg("where", a, n)) for a, n in zip(args, ("condition", "x1", "x2"))]
    if named[0][1].dtype != "bool":
        raise GraphTypeError(f"where: the argument condition must be a bool tensor, got {named[0][1].dtype} "
                             f"{shape_str(named[0][1].shape)}")
    dtype = same_dtype("where", named[1:])
    return TensorType(broadcast_shape("where", named), dtype)


def _where_legalize(tensors, attrs):
    c, a, b = tensors
    out = _where_infer([as_type(t) for t in tensors], attrs)
    n = len(out.shape)
    return te.compute(out.shape, lambda *i: te.if_then_else(c[broadcast_index(c.shape, n, i)],
                                                            a[broadcast_index(a.shape, n, i)],
                                                            b[broadcast_index(b.shape, n, i)]), name="where")


register_op("where", infer=_where_infer, legalize=_where_legalize,
            reference=lambda arrays, attrs: np.where(arrays[0], arrays[1], arrays[2]).astype(arrays[1].dtype),
            pattern="broadcast", doc="where(condition, x1, x2): x1 where condition holds, else x2 (broadcasting)")


# -- unary -----------------------------------------------------------------------------------------

def _unary_infer(op: str, float_only: bool):
    def infer(args, attrs):
        check_arity(op, args, ("x",))
        x = tensor_arg(op, args[0], "x", ranked=False)
        (require_float if float_only else require_numeric)(op, x, "x")
        return x

    return infer


def _unary_legalize(op: str, fn: Callable):
    def legalize(tensors, attrs):
        (x,) = tensors
        return te.compute(x.shape, lambda *i: fn(x[i], x.dtype), name=op)

    return legalize


def _erf_np(x: np.ndarray) -> np.ndarray:
    return np.vectorize(math.erf, otypes=[np.float64])(x.astype(np.float64))


def _gelu_np(x: np.ndarray, approximate: str) -> np.ndarray:
    x64 = x.astype(np.float64)
    if approximate == "tanh":
        return 0.5 * x64 * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x64 + 0.044715 * x64 ** 3)))
    return 0.5 * x64 * (1.0 + _erf_np(x64 / math.sqrt(2.0)))


def _float_unary(name: str, fn: Callable, np_fn: Callable, doc: str) -> None:
    register_op(name, infer=_unary_infer(name, True), legalize=_unary_legalize(name, fn),
                reference=lambda arrays, attrs: np_fn(arrays[0].astype(np.float64)).astype(arrays[0].dtype),
                pattern="elementwise", doc=doc)


_float_unary("exp", lambda v, dt: te.exp(v), np.exp, "exp(x), elementwise; float")
_float_unary("tanh", lambda v, dt: te.tanh(v), np.tanh, "tanh(x), elementwise; float")
_float_unary("erf", lambda v, dt: te.erf(v), _erf_np, "the error function erf(x), elementwise; float")
_float_unary("sqrt", lambda v, dt: te.sqrt(v), np.sqrt, "sqrt(x), elementwise; float")
_float_unary("rsqrt", lambda v, dt: te.rsqrt(v), lambda v: 1.0 / np.sqrt(v), "1 / sqrt(x), elementwise; float")
_float_unary("silu", lambda v, dt: v * te.sigmoid(v), lambda v: v / (1.0 + np.exp(-v)),
             "silu(x) = x * sigmoid(x) (swish); float")


def _negative_legalize(tensors, attrs):
    (x,) = tensors
    return te.compute(x.shape, lambda *i: te.const(0, x.dtype) - x[i], name="negative")


register_op("negative", infer=_unary_infer("negative", False), legalize=_negative_legalize,
            reference=lambda arrays, attrs: np.negative(arrays[0]), pattern="elementwise", doc="-x, elementwise")


def _relu_legalize(tensors, attrs):
    return nn_lib.relu(tensors[0])


register_op("relu", infer=_unary_infer("relu", False), legalize=_relu_legalize,
            reference=lambda arrays, attrs: np.maximum(arrays[0], 0).astype(arrays[0].dtype),
            pattern="elementwise", doc="max(x, 0), elementwise")


def _approximate(attrs) -> str:
    a = attrs.get("approximate", "none")
    if a not in ("none", "tanh"):
        raise GraphTypeError(f"gelu: approximate must be 'none' (erf form) or 'tanh', got {a!r}")
    return a


def _gelu_infer(args, attrs):
    _approximate(attrs)
    return _unary_infer("gelu", True)(args, attrs)


register_op("gelu", infer=_gelu_infer,
            legalize=lambda tensors, attrs: nn_lib.gelu(tensors[0], approximate=_approximate(attrs)),
            reference=lambda arrays, attrs: _gelu_np(arrays[0], _approximate(attrs)).astype(arrays[0].dtype),
            pattern="elementwise",
            doc="gelu(x, approximate='none'|'tanh'): 0.5 x (1 + erf(x / sqrt 2)) or its tanh approximation")


# -- astype ------------------------------------------------------------------------------------------

def _astype_infer(args, attrs):
    check_arity("astype", args, ("x",))
    x = tensor_arg("astype", args[0], "x", ranked=False)
    if "dtype" not in attrs:
        raise GraphTypeError("astype: the attribute dtype is missing (astype(x, dtype='float16'))")
    return TensorType(x.shape, dtype_attr("astype", attrs["dtype"]))


def _astype_legalize(tensors, attrs):
    (x,) = tensors
    dtype = dtype_attr("astype", attrs["dtype"])
    return te.compute(x.shape, lambda *i: te.cast(x[i], dtype), name="astype")


register_op("astype", infer=_astype_infer, legalize=_astype_legalize,
            reference=lambda arrays, attrs: arrays[0].astype(to_numpy(dtype_attr("astype", attrs["dtype"]))),
            pattern="elementwise", doc="astype(x, dtype): convert every element to dtype")
