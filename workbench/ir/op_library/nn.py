"""Neural-network operators in te: convolutions, pooling, softmax, normalisations, activations.

    >>> from workbench import te
    >>> from workbench.ir.op_library import nn
    >>> x = te.placeholder((1, 3, 8, 8), name="x")
    >>> w = te.placeholder((4, 3, 3, 3), name="w")
    >>> nn.conv2d_nchw(x, w, stride=1, padding=1).shape
    (1, 4, 8, 8)
"""
from __future__ import annotations

import math
from typing import Callable

from .. import te
from ..dtype import is_float
from ..te import Tensor
from ._util import OpShapeError, check_dims_equal, check_ndim, const_int, pair
from .transform import pad


def _out_size(op: str, size: int, k: int, s: int, p: int, d: int) -> int:
    out = (size + 2 * p - d * (k - 1) - 1) // s + 1
    if out <= 0:
        raise OpShapeError(f"{op}: the window ({k} with dilation {d}) does not fit the input of size {size} "
                           f"with padding {p}")
    return out


def _check_positive(op: str, **vals) -> None:
    for k, v in vals.items():
        if any(x <= 0 for x in v):
            raise ValueError(f"{op}: {k} must be positive, got {v}")


def conv2d_nchw(data: Tensor, weight: Tensor, stride=1, padding=0, dilation=1, name: str = "conv2d") -> Tensor:
    """2-D convolution, NCHW data and OIHW weight; ``padding`` pads both sides with zeros.

    A padding stage (``{name}_pad``) guards its loads with ``if_then_else``.

    >>> from workbench import te
    >>> x, w = te.placeholder((1, 2, 6, 6), name="x"), te.placeholder((3, 2, 3, 3), name="w")
    >>> conv2d_nchw(x, w, stride=2, padding=1).shape
    (1, 3, 3, 3)
    """
    check_ndim("conv2d", data, 4)
    check_ndim("conv2d", weight, 4)
    check_dims_equal("conv2d", data, 1, weight, 1)
    sh, sw = pair(stride, "conv2d stride")
    ph, pw = pair(padding, "conv2d padding")
    dh, dw = pair(dilation, "conv2d dilation")
    _check_positive("conv2d", stride=(sh, sw), dilation=(dh, dw))
    N, C, H, W = data.shape
    K, _, R, S = weight.shape
    h, w, r, s = (const_int(v, "conv2d: spatial size") for v in (H, W, R, S))
    OH, OW = _out_size("conv2d", h, r, sh, ph, dh), _out_size("conv2d", w, s, sw, pw, dw)
    src = pad(data, (0, 0, ph, pw), (0, 0, ph, pw), 0.0, name=f"{name}_pad") if (ph or pw) else data
    rc = te.reduce_axis(C, name="rc")
    ry = te.reduce_axis(R, name="ry")
    rx = te.reduce_axis(S, name="rx")
    return te.compute(
        (N, K, OH, OW),
        lambda nn, ff, yy, xx: te.sum(src[nn, rc, yy * sh + ry * dh, xx * sw + rx * dw] * weight[ff, rc, ry, rx],
                                      axis=[rc, ry, rx]),
        name=name)


def depthwise_conv2d_nchw(data: Tensor, weight: Tensor, stride=1, padding=0, dilation=1,
                          name: str = "depthwise_conv2d") -> Tensor:
    """Depthwise 2-D convolution: data ``(N, C, H, W)``, weight ``(C, M, R, S)`` (M filters per channel),
    output ``(N, C * M, OH, OW)``; output channel ``c`` reads input channel ``c // M``.

    >>> from workbench import te
    >>> x, w = te.placeholder((1, 3, 6, 6), name="x"), te.placeholder((3, 1, 3, 3), name="w")
    >>> depthwise_conv2d_nchw(x, w, padding=1).shape
    (1, 3, 6, 6)
    """
    check_ndim("depthwise_conv2d", data, 4)
    check_ndim("depthwise_conv2d", weight, 4)
    check_dims_equal("depthwise_conv2d", data, 1, weight, 0)
    sh, sw = pair(stride, "depthwise_conv2d stride")
    ph, pw = pair(padding, "depthwise_conv2d padding")
    dh, dw = pair(dilation, "depthwise_conv2d dilation")
    _check_positive("depthwise_conv2d", stride=(sh, sw), dilation=(dh, dw))
    N, C, H, W = data.shape
    _, M, R, S = weight.shape
    m = const_int(M, "depthwise_conv2d: channel multiplier")
    h, w, r, s = (const_int(v, "depthwise_conv2d: spatial size") for v in (H, W, R, S))
    OH, OW = _out_size("depthwise_conv2d", h, r, sh, ph, dh), _out_size("depthwise_conv2d", w, s, sw, pw, dw)
    src = pad(data, (0, 0, ph, pw), (0, 0, ph, pw), 0.0, name=f"{name}_pad") if (ph or pw) else data
    ry = te.reduce_axis(R, name="ry")
    rx = te.reduce_axis(S, name="rx")
    return te.compute(
        (N, C * m, OH, OW),
        lambda nn, cc, yy, xx: te.sum(src[nn, cc // m, yy * sh + ry * dh, xx * sw + rx * dw]
                                      * weight[cc // m, cc % m, ry, rx], axis=[ry, rx]),
        name=name)


def _pool_setup(op, data, kernel, stride, padding):
    check_ndim(op, data, 4)
    kh, kw = pair(kernel, f"{op} kernel")
    sh, sw = pair(stride if stride is not None else kernel, f"{op} stride")
    ph, pw = pair(padding, f"{op} padding")
    _check_positive(op, kernel=(kh, kw), stride=(sh, sw))
    if ph >= kh or pw >= kw:
        raise ValueError(f"{op}: padding {(ph, pw)} must be smaller than the kernel {(kh, kw)}")
    N, C, H, W = data.shape
    h, w = const_int(H, f"{op}: height"), const_int(W, f"{op}: width")
    OH, OW = _out_size(op, h, kh, sh, ph, 1), _out_size(op, w, kw, sw, pw, 1)
    return (kh, kw), (sh, sw), (ph, pw), (N, C, OH, OW), (h, w)


def max_pool2d(data: Tensor, kernel=2, stride=None, padding=0, name: str = "max_pool2d") -> Tensor:
    """Max pooling over NCHW windows (``stride`` defaults to ``kernel``); padding never wins.

    >>> from workbench import te
    >>> max_pool2d(te.placeholder((1, 2, 8, 8), name="x"), 3, 2, 1).shape
    (1, 2, 4, 4)
    """
    (kh, kw), (sh, sw), (ph, pw), shape, _ = _pool_setup("max_pool2d", data, kernel, stride, padding)
    src = pad(data, (0, 0, ph, pw), (0, 0, ph, pw), float("-inf") if is_float(data.dtype) else
              te.min_value(data.dtype).value, name=f"{name}_pad") if (ph or pw) else data
    rh = te.reduce_axis(kh, name="rh")
    rw = te.reduce_axis(kw, name="rw")
    return te.compute(shape, lambda nn, cc, yy, xx: te.max(src[nn, cc, yy * sh + rh, xx * sw + rw], axis=[rh, rw]),
                      name=name)


def avg_pool2d(data: Tensor, kernel=2, stride=None, padding=0, count_include_pad: bool = True,
               name: str = "avg_pool2d") -> Tensor:
    """Average pooling over NCHW windows. With ``count_include_pad=False`` a window is divided by the
    number of real (unpadded) elements in it, as in PyTorch.

    >>> from workbench import te
    >>> avg_pool2d(te.placeholder((1, 2, 8, 8), name="x"), 2).shape
    (1, 2, 4, 4)
    """
    (kh, kw), (sh, sw), (ph, pw), shape, (h, w) = _pool_setup("avg_pool2d", data, kernel, stride, padding)
    if not is_float(data.dtype):
        raise OpShapeError(f'avg_pool2d: "{data.name}" must be a float tensor, got {data.dtype}')
    src = pad(data, (0, 0, ph, pw), (0, 0, ph, pw), 0.0, name=f"{name}_pad") if (ph or pw) else data
    rh = te.reduce_axis(kh, name="rh")
    rw = te.reduce_axis(kw, name="rw")
    total = te.compute(shape, lambda nn, cc, yy, xx: te.sum(src[nn, cc, yy * sh + rh, xx * sw + rw], axis=[rh, rw]),
                       name=f"{name}_sum")
    dt = data.dtype
    if count_include_pad:
        return te.compute(shape, lambda nn, cc, yy, xx: total[nn, cc, yy, xx] / te.const(kh * kw, dt), name=name)

    def count(y, x):
        y0, x0 = y * sh - ph, x * sw - pw
        cy = te.min(y0 + kh, h) - te.max(y0, 0)
        cx = te.min(x0 + kw, w) - te.max(x0, 0)
        return te.cast(cy * cx, dt)

    return te.compute(shape, lambda nn, cc, yy, xx: total[nn, cc, yy, xx] / count(yy, xx), name=name)


def _last_axis(op: str, x: Tensor):
    if x.ndim < 1:
        raise OpShapeError(f'{op}: "{x.name}" must have at least one dimension')
    if not is_float(x.dtype):
        raise OpShapeError(f'{op}: "{x.name}" must be a float tensor, got {x.dtype}')
    return tuple(x.shape[:-1]), x.shape[-1]


def softmax(x: Tensor, name: str = "softmax") -> Tensor:
    """Softmax over the last axis, numerically stable, in four stages as TVM's topi:
    ``{name}_maxelem`` (row max), ``{name}_exp``, ``{name}_expsum``, ``{name}`` (divide).

    >>> from workbench import te
    >>> softmax(te.placeholder((4, 10), name="x")).shape
    (4, 10)
    """
    outer, D = _last_axis("softmax", x)
    k1 = te.reduce_axis(D, name="k")
    mx = te.compute(outer, lambda *i: te.max(x[i + (k1,)], axis=k1), name=f"{name}_maxelem")
    ex = te.compute(x.shape, lambda *i: te.exp(x[i] - mx[i[:-1]]), name=f"{name}_exp")
    k2 = te.reduce_axis(D, name="k")
    s = te.compute(outer, lambda *i: te.sum(ex[i + (k2,)], axis=k2), name=f"{name}_expsum")
    return te.compute(x.shape, lambda *i: ex[i] / s[i[:-1]], name=name)


def log_softmax(x: Tensor, name: str = "log_softmax") -> Tensor:
    """``x - max - log(sum(exp(x - max)))`` over the last axis.

    >>> from workbench import te
    >>> log_softmax(te.placeholder((4, 10), name="x")).shape
    (4, 10)
    """
    outer, D = _last_axis("log_softmax", x)
    k1 = te.reduce_axis(D, name="k")
    mx = te.compute(outer, lambda *i: te.max(x[i + (k1,)], axis=k1), name=f"{name}_maxelem")
    k2 = te.reduce_axis(D, name="k")
    s = te.compute(outer, lambda *i: te.sum(te.exp(x[i + (k2,)] - mx[i]), axis=k2), name=f"{name}_expsum")
    return te.compute(x.shape, lambda *i: x[i] - mx[i[:-1]] - te.log(s[i[:-1]]), name=name)


def _float_size(D, dtype: str):
    return te.const(float(D.value), dtype) if hasattr(D, "value") else te.cast(D, dtype)


def layer_norm(x: Tensor, gamma: Tensor, beta: Tensor, eps: float = 1e-5, name: str = "layer_norm") -> Tensor:
    """Layer normalisation over the last axis: ``(x - mean) / sqrt(var + eps) * gamma + beta``
    (two-pass: ``{name}_sum``, ``{name}_varsum``, then ``{name}``).

    >>> from workbench import te
    >>> x, g, b = te.placeholder((4, 16), name="x"), te.placeholder((16,), name="g"), te.placeholder((16,), name="b")
    >>> layer_norm(x, g, b).shape
    (4, 16)
    """
    outer, D = _last_axis("layer_norm", x)
    for t in (gamma, beta):
        check_ndim("layer_norm", t, 1)
        check_dims_equal("layer_norm", x, x.ndim - 1, t, 0)
    dt = x.dtype
    n = _float_size(D, dt)
    k1 = te.reduce_axis(D, name="k")
    s = te.compute(outer, lambda *i: te.sum(x[i + (k1,)], axis=k1), name=f"{name}_sum")
    k2 = te.reduce_axis(D, name="k")

    def centered_sq(i):
        c = x[i + (k2,)] - s[i] / n
        return c * c

    v = te.compute(outer, lambda *i: te.sum(centered_sq(i), axis=k2), name=f"{name}_varsum")
    return te.compute(
        x.shape,
        lambda *i: (x[i] - s[i[:-1]] / n) * te.rsqrt(v[i[:-1]] / n + te.const(eps, dt)) * gamma[i[-1]] + beta[i[-1]],
        name=name)


def rms_norm(x: Tensor, weight: Tensor, eps: float = 1e-6, name: str = "rms_norm") -> Tensor:
    """RMS normalisation (llama): ``x / sqrt(mean(x^2) + eps) * weight`` over the last axis.

    >>> from workbench import te
    >>> rms_norm(te.placeholder((4, 16), name="x"), te.placeholder((16,), name="w")).shape
    (4, 16)
    """
    outer, D = _last_axis("rms_norm", x)
    check_ndim("rms_norm", weight, 1)
    check_dims_equal("rms_norm", x, x.ndim - 1, weight, 0)
    dt = x.dtype
    n = _float_size(D, dt)
    k = te.reduce_axis(D, name="k")
    sq = te.compute(outer, lambda *i: te.sum(x[i + (k,)] * x[i + (k,)], axis=k), name=f"{name}_sqsum")
    return te.compute(x.shape, lambda *i: x[i] * te.rsqrt(sq[i[:-1]] / n + te.const(eps, dt)) * weight[i[-1]],
                      name=name)


def elementwise(x: Tensor, fn: Callable, name: str) -> Tensor:
    """``out[i] = fn(x[i])`` for every element."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: expected a te tensor, got {type(x).__name__}")
    return te.compute(x.shape, lambda *i: fn(x[i]), name=name)


def relu(x: Tensor, name: str = "relu") -> Tensor:
    """``max(x, 0)``.

    >>> from workbench import te
    >>> relu(te.placeholder((8,), name="x")).shape
    (8,)
    """
    return elementwise(x, lambda v: te.max(v, te.const(0, x.dtype)), name)


def gelu(x: Tensor, approximate: str = "none", name: str = "gelu") -> Tensor:
    """GELU: ``0.5 x (1 + erf(x / sqrt 2))``; ``approximate="tanh"`` gives
    ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``.

    >>> from workbench import te
    >>> gelu(te.placeholder((8,), name="x"), approximate="tanh").shape
    (8,)
    """
    dt = x.dtype
    if not is_float(dt):
        raise OpShapeError(f'gelu: "{x.name}" must be a float tensor, got {dt}')
    if approximate == "none":
        return elementwise(x, lambda v: te.const(0.5, dt) * v * (te.const(1.0, dt) + te.erf(v * te.const(
            1.0 / math.sqrt(2.0), dt))), name)
    if approximate == "tanh":
        c = math.sqrt(2.0 / math.pi)
        return elementwise(x, lambda v: te.const(0.5, dt) * v * (te.const(1.0, dt) + te.tanh(
            te.const(c, dt) * (v + te.const(0.044715, dt) * v * v * v))), name)
    raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")


def silu(x: Tensor, name: str = "silu") -> Tensor:
    """SiLU / swish: ``x * sigmoid(x)``.

    >>> from workbench import te
    >>> silu(te.placeholder((8,), name="x")).shape
    (8,)
    """
    if not is_float(x.dtype):
        raise OpShapeError(f'silu: "{x.name}" must be a float tensor, got {x.dtype}')
    return elementwise(x, lambda v: v * te.sigmoid(v), name)


__all__ = ["conv2d_nchw", "depthwise_conv2d_nchw", "max_pool2d", "avg_pool2d", "softmax", "log_softmax",
           "layer_norm", "rms_norm", "elementwise", "relu", "gelu", "silu"]
