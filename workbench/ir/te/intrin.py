"""Math and logic helpers for compute descriptions: ``te.exp``, ``te.if_then_else``, ``te.all``, ...

Each builds an IR expression (an intrinsic ``Call`` or an operator node)::

    >>> from workbench import te
    >>> A = te.placeholder((8,), name="A")
    >>> B = te.compute((8,), lambda i: te.if_then_else(A[i] > 0.0, te.exp(A[i]), 0.0), name="B")

``te.max`` / ``te.min`` / ``te.sum`` are reducers (see ``te.reduction``); with two
values instead of ``axis=`` they combine elementwise, as in TVM.
"""
from __future__ import annotations

from ..dtype import max_value as _max_value
from ..dtype import min_value as _min_value
from ..dtype import normalize_dtype
from ..expr import (PrimExpr, call, cast as _cast, const as _const, convert, floordiv, floormod,
                    if_then_else as _if_then_else, logical_and, logical_not, logical_or, truncdiv, truncmod)


def _unary(op: str):
    def f(x) -> PrimExpr:
        return call(op, x)

    f.__name__ = op
    f.__doc__ = f"``{op}(x)`` elementwise (a float intrinsic): ``te.{op}(A[i])``."
    return f


exp = _unary("exp")
exp2 = _unary("exp2")
log = _unary("log")
log2 = _unary("log2")
log10 = _unary("log10")
log1p = _unary("log1p")
sqrt = _unary("sqrt")
rsqrt = _unary("rsqrt")
tanh = _unary("tanh")
sigmoid = _unary("sigmoid")
erf = _unary("erf")
sin = _unary("sin")
cos = _unary("cos")
tan = _unary("tan")
floor = _unary("floor")
ceil = _unary("ceil")
round = _unary("round")  # noqa: A001
trunc = _unary("trunc")
isnan = _unary("isnan")
isinf = _unary("isinf")
isfinite = _unary("isfinite")


def abs(x) -> PrimExpr:  # noqa: A001
    """Absolute value (ints and floats): ``te.abs(A[i])``."""
    return call("abs", x)


def pow(x, y) -> PrimExpr:  # noqa: A001
    """``x ** y`` on floats: ``te.pow(A[i], 2.0)``."""
    return call("pow", x, y)


def fma(a, b, c) -> PrimExpr:
    """``a * b + c`` with one rounding."""
    return call("fma", a, b, c)


def if_then_else(cond, t, f) -> PrimExpr:
    """``t`` where ``cond`` holds, else ``f``; only the chosen side is evaluated, so it can guard
    an out-of-bounds load: ``te.if_then_else(i < n, A[i], 0.0)``."""
    return _if_then_else(cond, t, f)


def all(*conds) -> PrimExpr:  # noqa: A001
    """Logical and of all conditions (a list or several arguments): ``te.all(i >= 1, i < n)``."""
    if len(conds) == 1 and isinstance(conds[0], (list, tuple)):
        conds = tuple(conds[0])
    if not conds:
        raise TypeError("te.all needs at least one condition")
    return logical_and(*conds)


def any(*conds) -> PrimExpr:  # noqa: A001
    """Logical or of all conditions: ``te.any(i < 1, i >= n - 1)``."""
    if len(conds) == 1 and isinstance(conds[0], (list, tuple)):
        conds = tuple(conds[0])
    if not conds:
        raise TypeError("te.any needs at least one condition")
    return logical_or(*conds)


def cast(x, dtype) -> PrimExpr:
    """Convert to ``dtype``: ``te.cast(A[i], "float16")`` (same as ``A[i].astype("float16")``)."""
    return _cast(x, dtype)


def const(value, dtype: str = "float32") -> PrimExpr:
    """A constant of ``dtype``: ``te.const(0.5, "float16")``."""
    return _const(value, normalize_dtype(dtype))


def max_value(dtype: str) -> PrimExpr:
    """The largest value of ``dtype`` as a constant (``inf`` for floats)."""
    dtype = normalize_dtype(dtype)
    return _const(_max_value(dtype), dtype)


def min_value(dtype: str) -> PrimExpr:
    """The smallest value of ``dtype`` as a constant (``-inf`` for floats)."""
    dtype = normalize_dtype(dtype)
    return _const(_min_value(dtype), dtype)


__all__ = ["exp", "exp2", "log", "log2", "log10", "log1p", "sqrt", "rsqrt", "tanh", "sigmoid", "erf", "sin",
           "cos", "tan", "floor", "ceil", "round", "trunc", "isnan", "isinf", "isfinite", "abs", "pow", "fma",
           "if_then_else", "all", "any", "cast", "const", "max_value", "min_value", "floordiv", "floormod",
           "truncdiv", "truncmod", "logical_and", "logical_or", "logical_not", "convert"]
