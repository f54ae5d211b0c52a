"""Helpers that the generated Python code of the interpreter calls at run time.

Everything here works on the interpreter's value representation:

* integers and bools are Python ``int`` / ``bool`` (wrapped to their dtype explicitly);
* floats are numpy scalars of their dtype (``np.float32``, ``np.float16``,
  ``ml_dtypes.bfloat16``, ``np.float64``), so arithmetic rounds in that dtype;
* vectors (``float32x8``) are 1-d numpy arrays of the element dtype.
"""
from __future__ import annotations

import math
import struct
from fractions import Fraction

import numpy as np

from ..dtype import bits_of, is_uint, to_numpy


# ---------------------------------------------------------------------------
# errors


class InterpreterError(RuntimeError):
    """A program did something the IR does not define (an unsupported call, a cast of NaN)."""


def _text(node) -> str:
    try:
        s = str(node)
    except Exception:  # the printer may not handle every node
        s = type(node).__name__
    return s if len(s) <= 200 else s[:197] + "..."


def oob(load_or_store, dim: int, value, extent) -> None:
    """Raise the IndexError of an out-of-bounds buffer access."""
    buf = load_or_store.buffer
    raise IndexError(
        f"index {value} is out of bounds for dimension {dim} of buffer {buf.name} "
        f"(extent {extent}), in `{_text(load_or_store)}`")


def vcheck(idx, extent, load_or_store, dim: int):
    """Bounds-check a vector index (a numpy array of lane indices); return it."""
    bad = (idx < 0) | (idx >= extent)
    if bad.any():
        oob(load_or_store, dim, list(np.asarray(idx)[bad].tolist()), extent)
    return idx


def iter_out_of_domain(block, position: int, value, lo, hi) -> None:
    iv = block.iter_vars[position]
    raise IndexError(
        f"block {block.name}: iteration variable {iv.var.name} is bound to {value}, "
        f"outside its domain [{lo}, {hi}); the block binding or an enclosing loop is wrong")


def assert_fail(stmt) -> None:
    raise AssertionError(stmt.message)


def unsupported_call(call) -> None:
    raise InterpreterError(
        f"the interpreter cannot run the call `{_text(call)}`: {call.op!r} is not an intrinsic it knows "
        f"(external functions and target intrinsics only run in a built function)")


# ---------------------------------------------------------------------------
# integers


def make_wrap(dtype: str):
    """A function wrapping a Python int into ``dtype`` (two's complement, like C)."""
    bits = bits_of(dtype)
    mask = (1 << bits) - 1
    if is_uint(dtype):
        def wrap(x):
            return int(x) & mask
    else:
        half = 1 << (bits - 1)

        def wrap(x):
            return ((int(x) + half) & mask) - half
    wrap.__name__ = f"wrap_{dtype}"
    return wrap


def tdiv(a: int, b: int) -> int:
    """C division of Python ints: truncates toward zero."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def tmod(a: int, b: int) -> int:
    """C remainder of Python ints: the sign of the dividend."""
    r = abs(a) % abs(b)
    return r if a >= 0 else -r


def make_f2i(dtype: str):
    """Float -> integer cast: truncation toward zero; NaN and infinity are refused."""
    wrap = make_wrap(dtype)

    def f2i(x):
        f = float(x)
        if not math.isfinite(f):
            raise InterpreterError(
                f"cannot cast {f} to {dtype} (is an uninitialised buffer being read? "
                "the interpreter fills fresh buffers with NaN)")
        return wrap(math.trunc(f))
    return f2i


def make_i2f(dtype: str):
    """Integer -> float cast, rounded once (also for integers beyond 2**53)."""
    t = to_numpy(dtype).type

    def i2f(x):
        x = int(x)
        if -(1 << 53) <= x <= (1 << 53):
            return t(x)
        # one rounding from the exact integer (via an exact Fraction -> round-to-odd double)
        return t(_round_to_odd(Fraction(x)))
    return i2f


def popcount(x: int, bits: int) -> int:
    return bin(x & ((1 << bits) - 1)).count("1")


# ---------------------------------------------------------------------------
# floats


def fmin(a, b):
    """Minimum that propagates NaN (like ``np.minimum``)."""
    return a if (a < b or a != a) else b


def fmax(a, b):
    """Maximum that propagates NaN (like ``np.maximum``)."""
    return a if (a > b or a != a) else b


def select(c, t, f):
    """``Select``: both sides are already evaluated (they are the arguments)."""
    return t if c else f


def ffloordiv(a, b):
    return np.floor(a / b)


def ffloormod(a, b):
    return a - np.floor(a / b) * b


def _safe(mathfn, npfn):
    """A double-precision math function; C semantics (inf, nan) where Python raises."""
    def f(*xs):
        try:
            return mathfn(*xs)
        except (ValueError, OverflowError, ZeroDivisionError):
            with np.errstate(all="ignore"):
                return float(npfn(*(np.float64(x) for x in xs)))
    return f


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def _rsqrt(x: float) -> float:
    return 1.0 / math.sqrt(x)


def _np_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


#: transcendental intrinsics, computed in double precision and rounded once to the dtype
MATH: dict = {
    "exp": _safe(math.exp, np.exp),
    "exp2": _safe(lambda x: math.pow(2.0, x), np.exp2),
    "exp10": _safe(lambda x: math.pow(10.0, x), lambda x: np.power(10.0, x)),
    "log": _safe(math.log, np.log),
    "log2": _safe(math.log2, np.log2),
    "log10": _safe(math.log10, np.log10),
    "log1p": _safe(math.log1p, np.log1p),
    "sqrt": _safe(math.sqrt, np.sqrt),
    "rsqrt": _safe(_rsqrt, lambda x: 1.0 / np.sqrt(x)),
    "tanh": _safe(math.tanh, np.tanh),
    "sigmoid": _safe(_sigmoid, _np_sigmoid),
    "erf": _safe(math.erf, lambda x: np.float64(math.erf(x))),
    "sin": _safe(math.sin, np.sin),
    "cos": _safe(math.cos, np.cos),
    "tan": _safe(math.tan, np.tan),
    "asin": _safe(math.asin, np.arcsin),
    "acos": _safe(math.acos, np.arccos),
    "atan": _safe(math.atan, np.arctan),
    "sinh": _safe(math.sinh, np.sinh),
    "cosh": _safe(math.cosh, np.cosh),
    "pow": _safe(math.pow, np.power),
    "atan2": _safe(math.atan2, np.arctan2),
    "fmod": _safe(math.fmod, np.fmod),
    "hypot": _safe(math.hypot, np.hypot),
}

#: the same functions on float64 numpy arrays (vector lanes)
VMATH: dict = {
    "exp": np.exp, "exp2": np.exp2, "exp10": lambda x: np.power(10.0, x), "log": np.log,
    "log2": np.log2, "log10": np.log10, "log1p": np.log1p, "sqrt": np.sqrt,
    "rsqrt": lambda x: 1.0 / np.sqrt(x), "tanh": np.tanh, "sigmoid": _np_sigmoid,
    "erf": np.vectorize(lambda v: math.erf(v), otypes=[np.float64]),
    "sin": np.sin, "cos": np.cos, "tan": np.tan, "asin": np.arcsin, "acos": np.arccos,
    "atan": np.arctan, "sinh": np.sinh, "cosh": np.cosh, "pow": np.power, "atan2": np.arctan2,
    "fmod": np.fmod, "hypot": np.hypot,
}

#: exact operations applied in the value's own dtype (no rounding happens)
EXACT: dict = {
    "floor": np.floor, "ceil": np.ceil, "trunc": np.trunc,
    # round half to even, like C's nearbyint/rint in the default rounding mode (and np.rint)
    "round": np.rint, "nearbyint": np.rint, "copysign": np.copysign,
}


def make_math(op: str, dtype: str):
    """Scalar ``op`` for ``dtype``: evaluated in double, rounded once to ``dtype``."""
    t = to_numpy(dtype).type
    fn = MATH[op]

    def f(*xs):
        return t(fn(*(float(x) for x in xs)))
    f.__name__ = f"{op}_{dtype}"
    return f


def make_vmath(op: str, dtype: str):
    npdt = to_numpy(dtype)
    fn = VMATH[op]

    def f(*xs):
        with np.errstate(all="ignore"):
            return np.asarray(fn(*(np.asarray(x, dtype=np.float64) for x in xs))).astype(npdt)
    return f


def _round_to_odd(q: Fraction) -> float:
    """The double nearest to ``q`` in round-to-odd mode (then rounding to a narrower float is exact-once)."""
    try:
        d = float(q)
    except OverflowError:
        return math.inf if q > 0 else -math.inf
    if Fraction(d) != q:
        bits = struct.unpack("<q", struct.pack("<d", d))[0]
        if bits & 1 == 0:
            d = math.nextafter(d, math.inf if q > Fraction(d) else -math.inf)
    return d


def make_fma(dtype: str):
    """``a * b + c`` with a single rounding to ``dtype`` (a fused multiply-add)."""
    t = to_numpy(dtype).type
    exact_double = dtype == "float64"

    def fma(a, b, c):
        fa, fb, fc = float(a), float(b), float(c)
        if not (math.isfinite(fa) and math.isfinite(fb) and math.isfinite(fc)):
            with np.errstate(all="ignore"):
                return t(np.float64(fa) * np.float64(fb) + np.float64(fc))
        q = Fraction(fa) * Fraction(fb) + Fraction(fc)
        if exact_double:
            try:
                return t(float(q))
            except OverflowError:
                return t(math.inf if q > 0 else -math.inf)
        return t(_round_to_odd(q))
    return fma


def vfma(a, b, c):
    """Vector fma, lane by lane with the scalar rule."""
    fn = make_fma(_ir_dtype(a.dtype))
    return np.array([fn(x, y, z) for x, y, z in zip(a, b, c)], dtype=a.dtype)


def _ir_dtype(npdt) -> str:
    from ..dtype import from_numpy

    return from_numpy(npdt)


def isinf(x) -> bool:
    return math.isinf(float(x))


def isfinite(x) -> bool:
    return math.isfinite(float(x))


# ---------------------------------------------------------------------------
# vectors


def ramp(base, stride, lanes: int, npdt):
    """``[base, base + stride, ...]`` in the element dtype (integers wrap)."""
    if npdt.kind in "iub":
        v = np.int64(base) + np.int64(stride) * np.arange(lanes, dtype=np.int64) if npdt.kind != "u" else \
            np.uint64(base) + np.uint64(stride) * np.arange(lanes, dtype=np.uint64)
        return v.astype(npdt)
    return np.asarray(base, npdt) + np.asarray(stride, npdt) * np.arange(lanes).astype(npdt)


def broadcast(value, lanes: int, npdt):
    if isinstance(value, np.ndarray):  # already a vector (Broadcast of a vector is a no-op in lanes)
        return value
    if npdt.kind in "iu":
        value = int(value)
    return np.full(lanes, value, dtype=npdt)


def vtdiv(a, b):
    """Truncating integer division of arrays (C semantics)."""
    r = np.fmod(a, b)
    return ((a - r) // b).astype(a.dtype)


def vcast(x, npdt):
    """Vector cast; float -> int truncates toward zero, NaN/inf are refused."""
    x = np.asarray(x)
    if npdt.kind in "iu" and x.dtype.kind == "f" or (x.dtype.name == "bfloat16" and npdt.kind in "iu"):
        xf = x.astype(np.float64)
        if not np.isfinite(xf).all():
            raise InterpreterError(f"cannot cast {xf.tolist()} to {npdt.name} (NaN or infinity)")
        return np.trunc(xf).astype(np.int64).astype(npdt)
    if npdt.kind == "b":
        return x != 0
    return x.astype(npdt)


def vif_then_else(cond, true_fn, false_fn):
    """Vector ``if_then_else``: evaluates only the side(s) some lane needs."""
    c = np.asarray(cond)
    if c.all():
        return true_fn()
    if not c.any():
        return false_fn()
    return np.where(c, true_fn(), false_fn())


# ---------------------------------------------------------------------------
# memory


def garbage(npdt):
    """The fill value of fresh (uninitialised) memory: NaN for floats, a sentinel for integers."""
    if npdt.kind == "f" or npdt.name == "bfloat16":
        return np.nan
    if npdt.kind == "b":
        return True
    if npdt.kind == "u":
        return np.iinfo(npdt).max
    return np.iinfo(npdt).min


def alloc(shape, npdt, buffer):
    """A fresh array for an allocated buffer, filled with :func:`garbage`."""
    shape = tuple(int(d) for d in shape)
    if any(d < 0 for d in shape):
        raise ValueError(f"buffer {buffer.name} would be allocated with a negative shape {shape}")
    return np.full(shape, garbage(npdt), dtype=npdt)


def alloc_strided(shape, strides, offset, npdt, buffer):
    """A fresh array seen through explicit element ``strides`` and ``offset``."""
    shape = tuple(int(d) for d in shape)
    strides = tuple(int(s) for s in strides)
    offset = int(offset)
    if any(d < 0 for d in shape) or any(s < 0 for s in strides) or offset < 0:
        raise ValueError(f"buffer {buffer.name}: cannot allocate shape {shape} with strides {strides} "
                         f"and offset {offset}")
    span = 1 + sum((d - 1) * s for d, s in zip(shape, strides)) if all(shape) else 0
    flat = np.full(offset + span, garbage(npdt), dtype=npdt)
    base = flat[offset:]
    return np.lib.stride_tricks.as_strided(
        base, shape=shape, strides=tuple(s * npdt.itemsize for s in strides), writeable=True)


def match_view(src, src_offset, mins, extents, ndim: int, match):
    """The view of ``src[mins : mins + extents]`` that a block's ``match_buffer`` names.

    Returns ``(view, elem_offset, element_strides)``; leading unit dimensions of the
    region beyond the matched buffer's ``ndim`` are dropped, as TVM does.
    """
    buf = match.buffer
    srcbuf = match.source.buffer
    mins = [int(m) for m in mins]
    extents = [int(e) for e in extents]
    shape = src.shape
    for k, (m, e) in enumerate(zip(mins, extents)):
        if e < 0 or m < 0 or m + e > shape[k]:
            region = ", ".join(f"{a}:{a + b}" for a, b in zip(mins, extents))
            raise IndexError(
                f"match_buffer {buf.name}: the region {srcbuf.name}[{region}] is out of bounds of "
                f"{srcbuf.name} with shape {tuple(shape)}")
    drop = len(mins) - ndim
    if drop < 0:
        raise ValueError(f"match_buffer {buf.name} has {ndim} dimensions but its region of "
                         f"{srcbuf.name} only {len(mins)}")
    for k in range(drop):
        if extents[k] != 1:
            raise ValueError(f"match_buffer {buf.name}: region dimension {k} of {srcbuf.name} has extent "
                             f"{extents[k]}; only unit dimensions can be dropped to match {ndim} dimensions")
    index = tuple(mins[k] if k < drop else slice(mins[k], mins[k] + extents[k]) for k in range(len(mins)))
    view = src[index]
    item = src.dtype.itemsize
    src_strides = [s // item for s in src.strides]
    offset = int(src_offset) + sum(m * s for m, s in zip(mins, src_strides))
    return view, offset, tuple(s // item for s in view.strides)


def match_mismatch(match, what: str, expected, actual) -> None:
    raise ValueError(f"match_buffer {match.buffer.name}: {what} should be {expected} but the region of "
                     f"{match.source.buffer.name} gives {actual}")


def unsupported_cast(src: str, dst: str) -> None:
    raise InterpreterError(f"the interpreter cannot cast {src} to {dst}")


__all__ = ["InterpreterError"]
