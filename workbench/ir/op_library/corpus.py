"""The operator corpus: every operator of the library as a ready ``PrimFunc`` with random inputs
and a numpy reference, so tests of other layers (printer round trip, schedule primitives,
backends) can iterate over real programs.

    >>> import numpy as np
    >>> from workbench.ir import op_library
    >>> case = op_library.OPS["softmax"]()
    >>> case.name, [b.name for b in case.func.buffers]
    ('softmax', ['x', 'softmax'])
    >>> inputs, outputs, expected = case.make_arrays(np.random.default_rng(0))
    >>> # run(case.func, *inputs, *outputs) writes outputs; then case.assert_close(outputs, expected)

Parameters of every function are its inputs followed by its outputs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .. import te
from ..dtype import to_numpy
from ..function import PrimFunc
from . import linalg, nn, reduce, transform


@dataclass
class OpCase:
    """One operator instance: the function, how to make inputs, and the numpy reference.

    ``reference_fn(*inputs)`` returns the expected output (or a tuple of outputs, in
    parameter order). The first ``n_inputs`` parameters of ``func`` are inputs, the rest
    outputs. ``symbolic`` marks functions with symbolic sizes; ``params`` records the
    factory's arguments (shapes, strides, ...).
    """

    name: str
    func: PrimFunc
    inputs_fn: Callable[[np.random.Generator], list]
    reference_fn: Callable[..., object]
    rtol: float = 1e-5
    atol: float = 1e-5
    symbolic: bool = False
    params: dict = field(default_factory=dict)
    n_inputs: int = 1

    @property
    def num_outputs(self) -> int:
        return len(self.func.params) - self.num_inputs

    @property
    def num_inputs(self) -> int:
        return self.n_inputs

    def make_arrays(self, rng: np.random.Generator):
        """``(inputs, outputs, expected)``: outputs are fresh arrays (NaN-filled for floats) to be written."""
        inputs = [np.ascontiguousarray(a) for a in self.inputs_fn(rng)]
        expected = self.reference_fn(*inputs)
        expected = list(expected) if isinstance(expected, (tuple, list)) else [expected]
        outs = []
        for exp, buf in zip(expected, self.func.buffers[len(inputs):]):
            dt = to_numpy(buf.dtype)
            fill = np.nan if np.issubdtype(dt, np.floating) else -12345
            outs.append(np.full(np.shape(exp), fill, dtype=dt))
        return inputs, outs, [np.asarray(e) for e in expected]

    def assert_close(self, outputs, expected) -> None:
        """Compare outputs with the reference (``numpy.testing.assert_allclose`` with this case's tolerances)."""
        for k, (o, e) in enumerate(zip(outputs, expected)):
            np.testing.assert_allclose(o, e, rtol=self.rtol, atol=self.atol,
                                       err_msg=f"operator {self.name}: output {k} differs from numpy")

    def check(self, run: Callable, rng: np.random.Generator | None = None) -> None:
        """Run ``run(func, *inputs, *outputs)`` (e.g. the interpreter) and compare with numpy."""
        rng = rng if rng is not None else np.random.default_rng(0)
        inputs, outs, expected = self.make_arrays(rng)
        run(self.func, *inputs, *outs)
        self.assert_close(outs, expected)

    def __repr__(self) -> str:
        return f"OpCase({self.name!r}, params={self.params})"


def _case(name, tensors, n_inputs, inputs_fn, reference_fn, **kw) -> OpCase:
    func = te.create_prim_func(tensors, name=name)
    return OpCase(name, func, inputs_fn, reference_fn, n_inputs=n_inputs, **kw)


def _randn(rng, *shape, dtype="float32"):
    return rng.standard_normal(shape).astype(dtype)


# numpy references --------------------------------------------------------------


def _erf(x):
    return np.vectorize(math.erf, otypes=[np.float64])(x.astype(np.float64))


def _conv2d_ref(x, w, stride, padding, dilation):
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    N, C, H, W = x.shape
    K, _, R, S = w.shape
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    OH = (H + 2 * ph - dh * (R - 1) - 1) // sh + 1
    OW = (W + 2 * pw - dw * (S - 1) - 1) // sw + 1
    out = np.zeros((N, K, OH, OW))
    for r in range(R):
        for s in range(S):
            patch = xp[:, :, r * dh: r * dh + sh * (OH - 1) + 1: sh, s * dw: s * dw + sw * (OW - 1) + 1: sw]
            out += np.einsum("nchw,kc->nkhw", patch, w[:, :, r, s].astype(np.float64))
    return out


def _depthwise_ref(x, w, stride, padding, dilation):
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    N, C, H, W = x.shape
    _, M, R, S = w.shape
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    OH = (H + 2 * ph - dh * (R - 1) - 1) // sh + 1
    OW = (W + 2 * pw - dw * (S - 1) - 1) // sw + 1
    out = np.zeros((N, C, M, OH, OW))
    for r in range(R):
        for s in range(S):
            patch = xp[:, :, r * dh: r * dh + sh * (OH - 1) + 1: sh, s * dw: s * dw + sw * (OW - 1) + 1: sw]
            out += np.einsum("nchw,cm->ncmhw", patch, w[:, :, r, s].astype(np.float64))
    return out.reshape(N, C * M, OH, OW)


def _pool_ref(x, k, s, p, kind, count_include_pad=True):
    N, C, H, W = x.shape
    fill = -np.inf if kind == "max" else 0.0
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (p, p), (p, p)), constant_values=fill)
    ones = np.pad(np.ones((H, W)), ((p, p), (p, p)))
    OH, OW = (H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1
    out = np.zeros((N, C, OH, OW))
    for y in range(OH):
        for xx in range(OW):
            win = xp[:, :, y * s: y * s + k, xx * s: xx * s + k]
            if kind == "max":
                out[:, :, y, xx] = win.max(axis=(2, 3))
            else:
                cnt = k * k if count_include_pad else ones[y * s: y * s + k, xx * s: xx * s + k].sum()
                out[:, :, y, xx] = win.sum(axis=(2, 3)) / cnt
    return out


def _softmax_ref(x):
    x = x.astype(np.float64)
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _log_softmax_ref(x):
    x = x.astype(np.float64)
    m = x.max(-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


def _layer_norm_ref(x, g, b, eps):
    x = x.astype(np.float64)
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b


def _rms_norm_ref(x, w, eps):
    x = x.astype(np.float64)
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w


def _rope_tables_ref(seq, dim, base=10000.0):
    half = dim // 2
    inv = base ** (-2.0 * (np.arange(dim) % half) / dim)
    ang = np.arange(seq)[:, None] * inv[None, :]
    return np.cos(ang), np.sin(ang)


def _rotary_ref(x, cos, sin):
    half = x.shape[-1] // 2
    x64 = x.astype(np.float64)
    rot = np.concatenate([-x64[..., half:], x64[..., :half]], axis=-1)
    c = cos[:, None, :]
    s = sin[:, None, :]
    return x64 * c + rot * s


# factories ---------------------------------------------------------------------


def matmul_case(m=8, n=6, k=5):
    A, B = te.placeholder((m, k), name="A"), te.placeholder((k, n), name="B")
    C = linalg.matmul(A, B, name="C")
    return _case("matmul", [A, B, C], 2, lambda r: [_randn(r, m, k), _randn(r, k, n)], lambda a, b: a @ b,
                 params=dict(m=m, n=n, k=k))


def matmul_symbolic_case(rows=7, n=6, k=5):
    m = te.var("m")
    A, B = te.placeholder((m, k), name="A"), te.placeholder((k, n), name="B")
    C = linalg.matmul(A, B, name="C")
    return _case("matmul_symbolic", [A, B, C], 2, lambda r: [_randn(r, rows, k), _randn(r, k, n)],
                 lambda a, b: a @ b, symbolic=True, params=dict(rows=rows, n=n, k=k))


def batch_matmul_case(b=2, m=4, n=3, k=5):
    A, B = te.placeholder((b, m, k), name="A"), te.placeholder((b, k, n), name="B")
    C = linalg.batch_matmul(A, B, name="C")
    return _case("batch_matmul", [A, B, C], 2, lambda r: [_randn(r, b, m, k), _randn(r, b, k, n)],
                 lambda a, bb: a @ bb, params=dict(b=b, m=m, n=n, k=k))


def dense_case(m=4, n=6, k=8):
    X, W, bias = te.placeholder((m, k), name="X"), te.placeholder((n, k), name="W"), te.placeholder((n,), name="bias")
    Y = linalg.dense(X, W, bias, name="Y")
    return _case("dense", [X, W, bias, Y], 3, lambda r: [_randn(r, m, k), _randn(r, n, k), _randn(r, n)],
                 lambda x, w, b: x @ w.T + b, params=dict(m=m, n=n, k=k))


def conv2d_case(n=1, c=3, h=7, w=7, k=4, r=3, stride=2, padding=1, dilation=1):
    x, wt = te.placeholder((n, c, h, w), name="x"), te.placeholder((k, c, r, r), name="w")
    y = nn.conv2d_nchw(x, wt, stride, padding, dilation, name="conv2d")
    st, pd, dl = (stride, stride), (padding, padding), (dilation, dilation)
    return _case("conv2d", [x, wt, y], 2, lambda g: [_randn(g, n, c, h, w), _randn(g, k, c, r, r)],
                 lambda a, b: _conv2d_ref(a, b, st, pd, dl), rtol=1e-4, atol=1e-4,
                 params=dict(n=n, c=c, h=h, w=w, k=k, r=r, stride=stride, padding=padding, dilation=dilation))


def depthwise_conv2d_case(n=1, c=3, h=6, w=6, m=2, r=3, stride=1, padding=1, dilation=1):
    x, wt = te.placeholder((n, c, h, w), name="x"), te.placeholder((c, m, r, r), name="w")
    y = nn.depthwise_conv2d_nchw(x, wt, stride, padding, dilation, name="depthwise_conv2d")
    st, pd, dl = (stride, stride), (padding, padding), (dilation, dilation)
    return _case("depthwise_conv2d", [x, wt, y], 2, lambda g: [_randn(g, n, c, h, w), _randn(g, c, m, r, r)],
                 lambda a, b: _depthwise_ref(a, b, st, pd, dl), rtol=1e-4, atol=1e-4,
                 params=dict(n=n, c=c, h=h, w=w, m=m, r=r, stride=stride, padding=padding, dilation=dilation))


def max_pool2d_case(n=1, c=2, h=7, w=7, kernel=3, stride=2, padding=1):
    x = te.placeholder((n, c, h, w), name="x")
    y = nn.max_pool2d(x, kernel, stride, padding, name="max_pool2d")
    return _case("max_pool2d", [x, y], 1, lambda g: [_randn(g, n, c, h, w)],
                 lambda a: _pool_ref(a, kernel, stride, padding, "max"),
                 params=dict(n=n, c=c, h=h, w=w, kernel=kernel, stride=stride, padding=padding))


def avg_pool2d_case(n=1, c=2, h=7, w=7, kernel=3, stride=2, padding=1, count_include_pad=False):
    x = te.placeholder((n, c, h, w), name="x")
    y = nn.avg_pool2d(x, kernel, stride, padding, count_include_pad, name="avg_pool2d")
    return _case("avg_pool2d", [x, y], 1, lambda g: [_randn(g, n, c, h, w)],
                 lambda a: _pool_ref(a, kernel, stride, padding, "avg", count_include_pad),
                 params=dict(n=n, c=c, h=h, w=w, kernel=kernel, stride=stride, padding=padding,
                             count_include_pad=count_include_pad))


def softmax_case(rows=4, cols=10):
    x = te.placeholder((rows, cols), name="x")
    y = nn.softmax(x, name="softmax")
    return _case("softmax", [x, y], 1, lambda g: [_randn(g, rows, cols) * 3], _softmax_ref,
                 params=dict(rows=rows, cols=cols))


def softmax_symbolic_case(rows=5, cols=10):
    n = te.var("n")
    x = te.placeholder((n, cols), name="x")
    y = nn.softmax(x, name="softmax")
    return _case("softmax_symbolic", [x, y], 1, lambda g: [_randn(g, rows, cols) * 3], _softmax_ref,
                 symbolic=True, params=dict(rows=rows, cols=cols))


def log_softmax_case(rows=3, cols=9):
    x = te.placeholder((rows, cols), name="x")
    y = nn.log_softmax(x, name="log_softmax")
    return _case("log_softmax", [x, y], 1, lambda g: [_randn(g, rows, cols) * 3], _log_softmax_ref,
                 params=dict(rows=rows, cols=cols))


def layer_norm_case(rows=4, d=16, eps=1e-5):
    x, g, b = te.placeholder((rows, d), name="x"), te.placeholder((d,), name="gamma"), te.placeholder((d,), name="beta")
    y = nn.layer_norm(x, g, b, eps, name="layer_norm")
    return _case("layer_norm", [x, g, b, y], 3, lambda r: [_randn(r, rows, d), _randn(r, d), _randn(r, d)],
                 lambda a, gg, bb: _layer_norm_ref(a, gg, bb, eps), rtol=1e-4, atol=1e-5,
                 params=dict(rows=rows, d=d, eps=eps))


def rms_norm_case(rows=4, d=16, eps=1e-6):
    x, w = te.placeholder((rows, d), name="x"), te.placeholder((d,), name="weight")
    y = nn.rms_norm(x, w, eps, name="rms_norm")
    return _case("rms_norm", [x, w, y], 2, lambda r: [_randn(r, rows, d), _randn(r, d)],
                 lambda a, ww: _rms_norm_ref(a, ww, eps), rtol=1e-4, atol=1e-5, params=dict(rows=rows, d=d, eps=eps))


def transpose_case(shape=(2, 3, 4), axes=(1, 2, 0)):
    x = te.placeholder(shape, name="x")
    y = transform.transpose(x, axes, name="transpose")
    return _case("transpose", [x, y], 1, lambda g: [_randn(g, *shape)], lambda a: np.transpose(a, axes),
                 params=dict(shape=shape, axes=axes))


def reshape_case(shape=(2, 3, 4), newshape=(4, 6)):
    x = te.placeholder(shape, name="x")
    y = transform.reshape(x, newshape, name="reshape")
    return _case("reshape", [x, y], 1, lambda g: [_randn(g, *shape)], lambda a: a.reshape(newshape),
                 params=dict(shape=shape, newshape=newshape))


def add_case(a_shape=(3, 1, 4), b_shape=(5, 1)):
    a, b = te.placeholder(a_shape, name="a"), te.placeholder(b_shape, name="b")
    y = transform.add(a, b, name="add")
    return _case("add", [a, b, y], 2, lambda g: [_randn(g, *a_shape), _randn(g, *b_shape)], np.add,
                 params=dict(a_shape=a_shape, b_shape=b_shape))


def multiply_case(a_shape=(4, 5), b_shape=(5,)):
    a, b = te.placeholder(a_shape, name="a"), te.placeholder(b_shape, name="b")
    y = transform.multiply(a, b, name="multiply")
    return _case("multiply", [a, b, y], 2, lambda g: [_randn(g, *a_shape), _randn(g, *b_shape)], np.multiply,
                 params=dict(a_shape=a_shape, b_shape=b_shape))


def relu_case(shape=(4, 8)):
    x = te.placeholder(shape, name="x")
    y = nn.relu(x, name="relu")
    return _case("relu", [x, y], 1, lambda g: [_randn(g, *shape)], lambda a: np.maximum(a, 0),
                 params=dict(shape=shape))


def gelu_case(shape=(4, 8)):
    x = te.placeholder(shape, name="x")
    y = nn.gelu(x, name="gelu")
    return _case("gelu", [x, y], 1, lambda g: [_randn(g, *shape) * 2],
                 lambda a: 0.5 * a * (1 + _erf(a / np.sqrt(2.0))), params=dict(shape=shape))


def gelu_tanh_case(shape=(4, 8)):
    x = te.placeholder(shape, name="x")
    y = nn.gelu(x, approximate="tanh", name="gelu_tanh")
    c = np.sqrt(2.0 / np.pi)
    return _case("gelu_tanh", [x, y], 1, lambda g: [_randn(g, *shape) * 2],
                 lambda a: 0.5 * a * (1 + np.tanh(c * (a + 0.044715 * a.astype(np.float64) ** 3))),
                 params=dict(shape=shape))


def silu_case(shape=(4, 8)):
    x = te.placeholder(shape, name="x")
    y = nn.silu(x, name="silu")
    return _case("silu", [x, y], 1, lambda g: [_randn(g, *shape) * 3],
                 lambda a: a / (1 + np.exp(-a.astype(np.float64))), params=dict(shape=shape))


def sum_case(shape=(3, 4, 5), axis=1, keepdims=False):
    x = te.placeholder(shape, name="x")
    y = reduce.sum(x, axis, keepdims, name="sum")
    return _case("sum", [x, y], 1, lambda g: [_randn(g, *shape)], lambda a: a.sum(axis=axis, keepdims=keepdims),
                 params=dict(shape=shape, axis=axis, keepdims=keepdims))


def max_case(shape=(3, 4, 5), axis=(0, 2), keepdims=True):
    x = te.placeholder(shape, name="x")
    y = reduce.max(x, axis, keepdims, name="max")
    return _case("max", [x, y], 1, lambda g: [_randn(g, *shape)], lambda a: a.max(axis=axis, keepdims=keepdims),
                 params=dict(shape=shape, axis=axis, keepdims=keepdims))


def take_case(vocab=20, dim=8, seq=5):
    table, ids = te.placeholder((vocab, dim), name="table"), te.placeholder((seq,), "int32", name="ids")
    y = transform.take(table, ids, axis=0, name="take")
    return _case("take", [table, ids, y], 2,
                 lambda g: [_randn(g, vocab, dim), g.integers(0, vocab, size=seq).astype("int32")],
                 lambda t, i: np.take(t, i, axis=0), params=dict(vocab=vocab, dim=dim, seq=seq))


def concatenate_case(shapes=((2, 3), (4, 3), (1, 3)), axis=0):
    xs = [te.placeholder(s, name=f"x{k}") for k, s in enumerate(shapes)]
    y = transform.concatenate(xs, axis, name="concatenate")
    return _case("concatenate", xs + [y], len(xs), lambda g: [_randn(g, *s) for s in shapes],
                 lambda *a: np.concatenate(a, axis=axis), params=dict(shapes=shapes, axis=axis))


def rotary_case(batch=1, seq=6, heads=2, head_dim=8):
    x = te.placeholder((batch, seq, heads, head_dim), name="x")
    cos, sin = te.placeholder((seq, head_dim), name="cos"), te.placeholder((seq, head_dim), name="sin")
    y = transform.rotary_embedding(x, cos, sin, name="rotary")

    def inputs(g):
        c, s = _rope_tables_ref(seq, head_dim)
        return [_randn(g, batch, seq, heads, head_dim), c.astype("float32"), s.astype("float32")]

    return _case("rotary", [x, cos, sin, y], 3, inputs, _rotary_ref,
                 params=dict(batch=batch, seq=seq, heads=heads, head_dim=head_dim))


def rotary_tables_case(batch=1, seq=6, heads=2, head_dim=8, base=10000.0):
    x = te.placeholder((batch, seq, heads, head_dim), name="x")
    cos, sin = transform.rope_tables(seq, head_dim, base)
    y = transform.rotary_embedding(x, cos, sin, name="rotary")

    def ref(a):
        c, s = _rope_tables_ref(seq, head_dim, base)
        return _rotary_ref(a, c, s)

    return _case("rotary_tables", [x, y], 1, lambda g: [_randn(g, batch, seq, heads, head_dim)], ref,
                 rtol=1e-4, atol=1e-5, params=dict(batch=batch, seq=seq, heads=heads, head_dim=head_dim, base=base))


#: operator name -> factory of an ``OpCase`` (keyword arguments change the default small shapes)
OPS: dict[str, Callable[..., OpCase]] = {
    "matmul": matmul_case,
    "matmul_symbolic": matmul_symbolic_case,
    "batch_matmul": batch_matmul_case,
    "dense": dense_case,
    "conv2d": conv2d_case,
    "depthwise_conv2d": depthwise_conv2d_case,
    "max_pool2d": max_pool2d_case,
    "avg_pool2d": avg_pool2d_case,
    "softmax": softmax_case,
    "softmax_symbolic": softmax_symbolic_case,
    "log_softmax": log_softmax_case,
    "layer_norm": layer_norm_case,
    "rms_norm": rms_norm_case,
    "transpose": transpose_case,
    "reshape": reshape_case,
    "add": add_case,
    "multiply": multiply_case,
    "relu": relu_case,
    "gelu": gelu_case,
    "gelu_tanh": gelu_tanh_case,
    "silu": silu_case,
    "sum": sum_case,
    "max": max_case,
    "take": take_case,
    "concatenate": concatenate_case,
    "rotary": rotary_case,
    "rotary_tables": rotary_tables_case,
}


def corpus(names=None, symbolic: bool | None = None) -> list[OpCase]:
    """Every operator (or those named) with default small shapes, as ``OpCase``s.

    ``symbolic=False`` leaves out the cases with symbolic sizes; ``True`` keeps only those.

    >>> from workbench.ir import op_library
    >>> len(op_library.corpus()) >= 22
    True
    """
    keys = list(OPS) if names is None else list(names)
    out = []
    for k in keys:
        if k not in OPS:
            raise KeyError(f"unknown operator {k!r}; known: {', '.join(OPS)}")
        c = OPS[k]()
        if symbolic is None or c.symbolic == symbolic:
            out.append(c)
    return out


__all__ = ["OpCase", "OPS", "corpus"]
