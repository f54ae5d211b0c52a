"""Linear algebra ops: ``matmul`` (batched, numpy semantics) and ``linear`` (``x @ w.T + b``).

``matmul(x, w)`` follows ``numpy.matmul``: the last two dimensions multiply, the leading (batch)
dimensions broadcast, a 1-D ``x`` is a row vector and a 1-D ``w`` a column vector whose unit
dimension is dropped from the result. ``out_dtype`` (attribute) casts the elements before
multiplying (int8 inputs, int32 sums). ``linear(x, w, b=None)`` is a linear layer: ``x`` is
``(..., K)``, the weight ``w`` is ``(N, K)`` (PyTorch's layout), the optional bias ``b`` ``(N,)``.

>>> import workbench as wb
>>> from workbench.ir.graph.op import get_op
>>> from workbench.ir.graph.types import TensorType
>>> n = wb.var("n")
>>> get_op("matmul").infer([TensorType((2, n, 784), "float32"), TensorType((784, 10), "float32")], {})
Tensor((2, n, 10), "float32")
>>> get_op("matmul").infer([TensorType((n, 784), "float32"), TensorType((128, 10), "float32")], {})
Traceback (most recent call last):
    ...
workbench.ir.graph.types.GraphTypeError: matmul: the inner dimensions of x (n, 784) and w (128, 10) differ: 784 vs 128
"""
from __future__ import annotations

import numpy as np

from ... import te
from ...dtype import to_numpy
from ..op import register_op
from ..types import GraphTypeError, TensorType
from ._common import (as_type, broadcast_index, broadcast_shape, check_arity, dim_str, dims_differ, dims_equal,
                      dtype_attr, require_numeric, same_dtype, shape_str, tensor_arg)


def _check_inner(op: str, x: TensorType, w: TensorType, dx, dw, what: str) -> None:
    if not dims_equal(dx, dw):
        why = "differ" if dims_differ(dx, dw) else "are not provably equal"
        raise GraphTypeError(f"{op}: {what} of x {shape_str(x.shape)} and w {shape_str(w.shape)} {why}: "
                             f"{dim_str(dx)} vs {dim_str(dw)}")


def _out_dtype(op: str, attrs, dtype: str) -> str:
    out = attrs.get("out_dtype")
    return dtype if out is None else dtype_attr(op, out)


def _matmul_infer(args, attrs):
    check_arity("matmul", args, ("x", "w"))
    x, w = tensor_arg("matmul", args[0], "x"), tensor_arg("matmul", args[1], "w")
    dtype = same_dtype("matmul", [("x", x), ("w", w)])
    for t, name in ((x, "x"), (w, "w")):
        require_numeric("matmul", t, name)
        if t.ndim == 0:
            raise GraphTypeError(f"matmul: the argument {name} must have at least one dimension, got a scalar")
    _check_inner("matmul", x, w, x.shape[-1], w.shape[0] if w.ndim == 1 else w.shape[-2], "the inner dimensions")
    batch = broadcast_shape("matmul", [("x", x), ("w", w)], [x.shape[:-2], w.shape[:-2]])
    rows = (x.shape[-2],) if x.ndim >= 2 else ()
    cols = (w.shape[-1],) if w.ndim >= 2 else ()
    return TensorType(batch + rows + cols, _out_dtype("matmul", attrs, dtype))


def _matmul_legalize(tensors, attrs):
    x, w = tensors
    out = _matmul_infer([as_type(x), as_type(w)], attrs)
    dt = out.dtype
    nb = len(out.shape) - (x.ndim >= 2) - (w.ndim >= 2)
    k = te.reduce_axis(x.shape[-1], name="k")

    def body(*idx):
        b = idx[:nb]
        rest = idx[nb:]
        i = rest[:1] if x.ndim >= 2 else ()
        j = rest[-1:] if w.ndim >= 2 else ()
        xi = broadcast_index(x.shape[:-2], nb, b) + tuple(i) + (k,)
        wi = broadcast_index(w.shape[:-2], nb, b) + (k,) + tuple(j)
        return te.sum(te.cast(x[xi], dt) * te.cast(w[wi], dt), axis=k)

    return te.compute(out.shape, body, name="matmul")


def _matmul_reference(arrays, attrs):
    x, w = arrays
    dt = to_numpy(_out_dtype("matmul", attrs, str(x.dtype)))
    return np.matmul(x.astype(dt), w.astype(dt))


register_op("matmul", infer=_matmul_infer, legalize=_matmul_legalize, reference=_matmul_reference,
            pattern="out_ewise_fusible",
            doc="matmul(x, w, out_dtype=None): numpy.matmul (batch dimensions broadcast, 1-D operands as numpy)")


def _linear_infer(args, attrs):
    check_arity("linear", args, ("x", "w", "b"), optional=1)
    x, w = tensor_arg("linear", args[0], "x"), tensor_arg("linear", args[1], "w")
    named = [("x", x), ("w", w)]
    if x.ndim < 1:
        raise GraphTypeError("linear: the argument x must have at least one dimension, got a scalar")
    if w.ndim != 2:
        raise GraphTypeError(f"linear: the weight w must be 2-D (out_features, in_features), got {shape_str(w.shape)}")
    _check_inner("linear", x, w, x.shape[-1], w.shape[1], "the last dimension (in_features)")
    if len(args) == 3 and args[2] is not None:
        b = tensor_arg("linear", args[2], "b")
        named.append(("b", b))
        if b.ndim != 1 or not dims_equal(b.shape[0], w.shape[0]):
            raise GraphTypeError(f"linear: the bias b {shape_str(b.shape)} must be ({dim_str(w.shape[0])},) to "
                                 f"match the weight w {shape_str(w.shape)}")
    dtype = same_dtype("linear", named)
    require_numeric("linear", x, "x")
    return TensorType(tuple(x.shape[:-1]) + (w.shape[0],), dtype)


def _linear_legalize(tensors, attrs):
    x, w = tensors[0], tensors[1]
    b = tensors[2] if len(tensors) == 3 else None
    out = _linear_infer([as_type(t) for t in tensors if t is not None], attrs)
    k = te.reduce_axis(x.shape[-1], name="k")
    y = te.compute(out.shape, lambda *i: te.sum(x[i[:-1] + (k,)] * w[i[-1], k], axis=k),
                   name="linear" if b is None else "linear_matmul")
    if b is None:
        return y
    return te.compute(out.shape, lambda *i: y[i] + b[i[-1]], name="linear")


def _linear_reference(arrays, attrs):
    x, w = arrays[0], arrays[1]
    y = x @ w.T
    if len(arrays) == 3 and arrays[2] is not None:
        y = y + arrays[2]
    return y.astype(x.dtype)


register_op("linear", infer=_linear_infer, legalize=_linear_legalize, reference=_linear_reference,
            pattern="out_ewise_fusible",
            doc="linear(x, w, b=None): x @ w.T + b; x (..., K), w (N, K) as PyTorch's weight, b (N,)")
