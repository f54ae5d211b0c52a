"""Neural-network ops: softmax, log_softmax (``axis``), layer_norm and rms_norm (``axes``, ``eps``).

``softmax`` subtracts the maximum before ``exp`` (numerically stable). ``layer_norm(x, gamma, beta)``
and ``rms_norm(x, weight)`` normalise over ``axes`` (default ``[-1]``); ``gamma``/``beta``/``weight``
have the shape of those dimensions of ``x``. Both compute in float32 whatever the input's float
type, and cast the result back.

>>> import workbench as wb
>>> from workbench.ir.graph.op import get_op
>>> from workbench.ir.graph.types import TensorType
>>> n = wb.var("n")
>>> x, g = TensorType((n, 384), "float32"), TensorType((384,), "float32")
>>> get_op("layer_norm").infer([x, g, g], {"eps": 1e-12})
Tensor((n, 384), "float32")
"""
from __future__ import annotations

import numpy as np

from ... import te
from ..op import register_op
from ..types import GraphTypeError
from ._common import (check_arity, dims_equal, float_count, norm_axes, norm_axis, product, require_float,
                      same_dtype, shape_str, tensor_arg)


def full_index(outer, reduced, axes, ndim) -> tuple:
    """The index of ``x`` from the kept dimensions' index ``outer`` and one value per reduced axis."""
    it_o, it_r = iter(outer), iter(reduced)
    return tuple(next(it_r) if k in axes else next(it_o) for k in range(ndim))


def drop_axes(idx, axes) -> tuple:
    return tuple(v for k, v in enumerate(idx) if k not in axes)


def reduce_over(x, axes, reducer, name: str, value=None):
    """A stage over the kept dimensions of ``x``: ``reducer(value(x[full]), axis=reduce axes)``."""
    kept = drop_axes(x.shape, axes)
    raxes = [te.reduce_axis(x.shape[a], name=f"k{a}") for a in axes]
    value = value or (lambda v, i: v)
    return te.compute(kept, lambda *i: reducer(value(x[full_index(i, raxes, axes, x.ndim)], i), axis=raxes),
                      name=name)


# -- softmax ---------------------------------------------------------------------------------------

def _softmax_infer(op: str):
    def infer(args, attrs):
        check_arity(op, args, ("x",))
        x = tensor_arg(op, args[0], "x")
        require_float(op, x, "x")
        if x.ndim == 0:
            raise GraphTypeError(f"{op}: the argument x must have at least one dimension, got a scalar")
        norm_axis(op, attrs.get("axis", -1), x.ndim)
        return x

    return infer


def _softmax_stages(op: str, x, attrs):
    axis = norm_axis(op, attrs.get("axis", -1), x.ndim)
    mx = reduce_over(x, [axis], te.max, f"{op}_maxelem")
    ex = te.compute(x.shape, lambda *i: te.exp(x[i] - mx[drop_axes(i, [axis])]), name=f"{op}_exp")
    s = reduce_over(ex, [axis], te.sum, f"{op}_expsum")
    return axis, mx, ex, s


def _softmax_legalize(tensors, attrs):
    (x,) = tensors
    axis, _, ex, s = _softmax_stages("softmax", x, attrs)
    return te.compute(x.shape, lambda *i: ex[i] / s[drop_axes(i, [axis])], name="softmax")


def _log_softmax_legalize(tensors, attrs):
    (x,) = tensors
    axis, mx, _, s = _softmax_stages("log_softmax", x, attrs)
    return te.compute(x.shape, lambda *i: x[i] - mx[drop_axes(i, [axis])] - te.log(s[drop_axes(i, [axis])]),
                      name="log_softmax")


def _softmax_np(x: np.ndarray, axis: int) -> np.ndarray:
    x64 = x.astype(np.float64)
    e = np.exp(x64 - x64.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _log_softmax_np(x: np.ndarray, axis: int) -> np.ndarray:
    x64 = x.astype(np.float64)
    shifted = x64 - x64.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


register_op("softmax", infer=_softmax_infer("softmax"), legalize=_softmax_legalize,
            reference=lambda a, attrs: _softmax_np(a[0], attrs.get("axis", -1)).astype(a[0].dtype),
            pattern="reduction", doc="softmax(x, axis=-1): exp(x - max) / sum(exp(x - max)) along axis")
register_op("log_softmax", infer=_softmax_infer("log_softmax"), legalize=_log_softmax_legalize,
            reference=lambda a, attrs: _log_softmax_np(a[0], attrs.get("axis", -1)).astype(a[0].dtype),
            pattern="reduction", doc="log_softmax(x, axis=-1): x - max - log(sum(exp(x - max))) along axis")


# -- layer_norm / rms_norm -------------------------------------------------------------------------

def _norm_infer(op: str, param_names: tuple):
    def infer(args, attrs):
        check_arity(op, args, ("x",) + param_names)
        x = tensor_arg(op, args[0], "x")
        require_float(op, x, "x")
        named = [("x", x)]
        axes = norm_axes(op, attrs.get("axes", [-1]), x.ndim, "axes")
        if not axes:
            raise GraphTypeError(f"{op}: axes must name at least one axis of x {shape_str(x.shape)}")
        want = tuple(x.shape[a] for a in axes)
        for t, name in zip(args[1:], param_names):
            t = tensor_arg(op, t, name)
            named.append((name, t))
            if t.ndim != len(want) or not all(dims_equal(a, b) for a, b in zip(t.shape, want)):
                raise GraphTypeError(f"{op}: the argument {name} {shape_str(t.shape)} must have the shape "
                                     f"{shape_str(want)} of the normalised axes {axes} of x {shape_str(x.shape)}")
        same_dtype(op, named)
        return x

    return infer


def _to_f32(v):
    return v if v.dtype == "float32" else te.cast(v, "float32")


def _layer_norm_legalize(tensors, attrs):
    x, gamma, beta = tensors
    axes = norm_axes("layer_norm", attrs.get("axes", [-1]), x.ndim, "axes")
    eps = te.const(float(attrs.get("eps", 1e-5)), "float32")
    count = float_count(product(x.shape[a] for a in axes), "float32")
    s = reduce_over(x, axes, te.sum, "layer_norm_sum", lambda v, i: _to_f32(v))
    v = reduce_over(x, axes, te.sum, "layer_norm_varsum",
                    lambda e, i: (_to_f32(e) - s[i] / count) * (_to_f32(e) - s[i] / count))

    def out(*i):
        o, p = drop_axes(i, axes), tuple(i[a] for a in axes)
        y = (_to_f32(x[i]) - s[o] / count) * te.rsqrt(v[o] / count + eps) * _to_f32(gamma[p]) + _to_f32(beta[p])
        return y if x.dtype == "float32" else te.cast(y, x.dtype)

    return te.compute(x.shape, out, name="layer_norm")


def _rms_norm_legalize(tensors, attrs):
    x, weight = tensors
    axes = norm_axes("rms_norm", attrs.get("axes", [-1]), x.ndim, "axes")
    eps = te.const(float(attrs.get("eps", 1e-5)), "float32")
    count = float_count(product(x.shape[a] for a in axes), "float32")
    sq = reduce_over(x, axes, te.sum, "rms_norm_sqsum", lambda e, i: _to_f32(e) * _to_f32(e))

    def out(*i):
        o, p = drop_axes(i, axes), tuple(i[a] for a in axes)
        y = _to_f32(x[i]) * te.rsqrt(sq[o] / count + eps) * _to_f32(weight[p])
        return y if x.dtype == "float32" else te.cast(y, x.dtype)

    return te.compute(x.shape, out, name="rms_norm")


def _norm_axes_np(x: np.ndarray, attrs) -> tuple:
    axes = attrs.get("axes", [-1])
    return tuple(sorted(a % x.ndim for a in ([axes] if isinstance(axes, int) else axes)))


def _param_np(p: np.ndarray, x: np.ndarray, axes: tuple) -> np.ndarray:
    """``p`` (shaped as the normalised axes) reshaped to broadcast against ``x``."""
    shape = [x.shape[k] if k in axes else 1 for k in range(x.ndim)]
    return p.astype(np.float64).reshape(shape)


def _layer_norm_np(arrays, attrs):
    x, gamma, beta = arrays
    axes = _norm_axes_np(x, attrs)
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=axes, keepdims=True)
    var = ((x64 - mean) ** 2).mean(axis=axes, keepdims=True)
    y = (x64 - mean) / np.sqrt(var + attrs.get("eps", 1e-5))
    return (y * _param_np(gamma, x, axes) + _param_np(beta, x, axes)).astype(x.dtype)


def _rms_norm_np(arrays, attrs):
    x, weight = arrays
    axes = _norm_axes_np(x, attrs)
    x64 = x.astype(np.float64)
    y = x64 / np.sqrt((x64 ** 2).mean(axis=axes, keepdims=True) + attrs.get("eps", 1e-5))
    return (y * _param_np(weight, x, axes)).astype(x.dtype)


register_op("layer_norm", infer=_norm_infer("layer_norm", ("gamma", "beta")), legalize=_layer_norm_legalize,
            reference=_layer_norm_np, pattern="reduction",
            doc="layer_norm(x, gamma, beta, axes=[-1], eps=1e-5): (x - mean) / sqrt(var + eps) * gamma + beta")
register_op("rms_norm", infer=_norm_infer("rms_norm", ("weight",)), legalize=_rms_norm_legalize,
            reference=_rms_norm_np, pattern="reduction",
            doc="rms_norm(x, weight, axes=[-1], eps=1e-5): x / sqrt(mean(x^2) + eps) * weight")
