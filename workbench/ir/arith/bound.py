"""Bounds of integer expressions: constant bounds and symbolic intervals.

``const_int_bound`` gives Python-int bounds (``float('inf')`` where unknown);
``IntervalSet`` keeps symbolic bounds (``i`` over ``[0, n)`` is ``[0, n - 1]``).

>>> from workbench.ir.expr import Var
>>> from workbench.ir.arith.bound import const_int_bound
>>> i = Var("i")
>>> const_int_bound(i * 4 + 3, {i: (0, 7)})
ConstIntBound(min_value=3, max_value=31)
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple, Optional

from ..dtype import is_bool, is_float, is_integer, is_uint, lanes_of, max_value, min_value
from ..expr import (EQ, GE, GT, LE, LT, NE, Add, And, Broadcast, BufferLoad, Call, Cast, Div, FloatImm,
                    FloorDiv, FloorMod, IntImm, Let, Max, Min, Mod, Mul, Not, Or, PrimExpr, Ramp, Select,
                    Sub, Var)

INF = float("inf")
NEG_INF = float("-inf")


class ConstIntBound(NamedTuple):
    """Inclusive integer bounds ``[min_value, max_value]``; ``±inf`` when unknown."""

    min_value: int | float
    max_value: int | float

    @property
    def is_const(self) -> bool:
        return self.min_value == self.max_value and not math.isinf(self.min_value)


def _dtype_bound(dtype: str) -> tuple:
    if is_bool(dtype):
        return (0, 1)
    if is_uint(dtype):
        return (0, max_value(dtype))
    return (NEG_INF, INF)


def _data_bound(dtype: str) -> tuple:
    """Bound of values read from memory or returned by calls (the true dtype range)."""
    if is_bool(dtype):
        return (0, 1)
    if is_integer(dtype):
        return (min_value(dtype), max_value(dtype))
    return (NEG_INF, INF)


def _mul(x, y):
    if x == 0 or y == 0:
        return 0
    return x * y


def _fdiv(x, y):
    """floor(x / y) with infinities; y != 0."""
    if math.isinf(x):
        return x if y > 0 else -x
    if math.isinf(y):
        return 0 if (x >= 0) == (y > 0) else -1
    return x // y


def _tdiv(x, y):
    if math.isinf(x):
        return x if y > 0 else -x
    if math.isinf(y):
        return 0
    q = abs(x) // abs(y)
    return q if (x >= 0) == (y > 0) else -q


def _corners(f, a, b):
    vals = [f(x, y) for x in (a[0], a[1]) for y in (b[0], b[1])]
    return (min(vals), max(vals))


def _norm(b):
    lo, hi = b
    if isinstance(lo, float) and not math.isinf(lo):
        lo = math.floor(lo)
    if isinstance(hi, float) and not math.isinf(hi):
        hi = math.ceil(hi)
    return (lo, hi)


VarBound = Callable[[Var], Optional[tuple]]


class BoundEvaluator:
    """Recursive constant-bound rules; ``var_bound(v)`` gives a known ``(lo, hi)`` or None."""

    def __init__(self, var_bound: VarBound):
        self.var_bound = var_bound
        self.memo: dict[int, tuple] = {}
        self._keep: list = []

    def __call__(self, e: PrimExpr) -> tuple:
        r = self.memo.get(id(e))
        if r is not None:
            return r
        r = _norm(self._eval(e))
        self.memo[id(e)] = r
        self._keep.append(e)
        return r

    def _eval(self, e):
        if isinstance(e, IntImm):
            return (e.value, e.value)
        if isinstance(e, Var):
            b = self.var_bound(e)
            return b if b is not None else _dtype_bound(e.dtype)
        if isinstance(e, FloatImm):
            return (NEG_INF, INF)
        if is_float(e.dtype) or lanes_of(e.dtype) > 1 and not isinstance(e, (Ramp, Broadcast)):
            return _data_bound(e.dtype)
        if isinstance(e, Add):
            a, b = self(e.a), self(e.b)
            return (_add(a[0], b[0]), _add(a[1], b[1]))
        if isinstance(e, Sub):
            a, b = self(e.a), self(e.b)
            return (_add(a[0], -b[1]), _add(a[1], -b[0]))
        if isinstance(e, Mul):
            return _corners(_mul, self(e.a), self(e.b))
        if isinstance(e, (FloorDiv, Div)):
            a, b = self(e.a), self(e.b)
            if b[0] <= 0 <= b[1]:
                if b[0] == 0 and b[1] > 0:  # divisor >= 1 where defined
                    b = (1, b[1])
                elif b[1] == 0 and b[0] < 0:
                    b = (b[0], -1)
                else:
                    return _dtype_bound(e.dtype)
            return _corners(_fdiv if isinstance(e, FloorDiv) else _tdiv, a, b)
        if isinstance(e, FloorMod):
            a, b = self(e.a), self(e.b)
            if b[0] > 0:
                if a[0] >= 0 and a[1] < b[0]:
                    return a
                hi = b[1] - 1
                if a[0] >= 0:
                    hi = min(hi, a[1])
                return (0, hi)
            if b[1] < 0:
                return (b[0] + 1, 0)
            return _dtype_bound(e.dtype)
        if isinstance(e, Mod):
            a, b = self(e.a), self(e.b)
            m = max(abs(b[0]), abs(b[1]))
            if m == 0 or b[0] <= 0 <= b[1] and not (b[0] == 0 or b[1] == 0):
                return _dtype_bound(e.dtype)
            lim = m - 1
            if a[0] >= 0:
                return (0, min(a[1], lim))
            if a[1] <= 0:
                return (max(a[0], -lim), 0)
            return (max(a[0], -lim), min(a[1], lim))
        if isinstance(e, Min):
            a, b = self(e.a), self(e.b)
            return (min(a[0], b[0]), min(a[1], b[1]))
        if isinstance(e, Max):
            a, b = self(e.a), self(e.b)
            return (max(a[0], b[0]), max(a[1], b[1]))
        if isinstance(e, Select):
            a, b = self(e.true_value), self(e.false_value)
            return (min(a[0], b[0]), max(a[1], b[1]))
        if isinstance(e, Call):
            if e.op == "if_then_else":
                a, b = self(e.args[1]), self(e.args[2])
                return (min(a[0], b[0]), max(a[1], b[1]))
            if e.op == "abs" and e.args:
                a = self(e.args[0])
                if a[0] >= 0:
                    return a
                if a[1] <= 0:
                    return (-a[1], -a[0])
                return (0, max(-a[0], a[1]))
            return _data_bound(e.dtype)
        if isinstance(e, Cast):
            target = _data_bound(e.dtype)
            if is_float(e.value.dtype):
                return target
            a = self(e.value)
            if target[0] <= a[0] and a[1] <= target[1]:
                return a
            return target
        if isinstance(e, (EQ, NE, LT, LE, GT, GE, And, Or, Not)):
            return (0, 1)
        if isinstance(e, Let):
            return self(e.body)
        if isinstance(e, Ramp):
            base, stride = self(e.base), self(e.stride)
            last = _corners(_mul, stride, (e.lanes - 1, e.lanes - 1))
            return (min(base[0], _add(base[0], last[0])), max(base[1], _add(base[1], last[1])))
        if isinstance(e, Broadcast):
            return self(e.value)
        if isinstance(e, BufferLoad):
            return _data_bound(e.dtype)
        return _data_bound(e.dtype)


def _add(x, y):
    if math.isinf(x) and math.isinf(y) and x != y:
        return x  # cannot happen for lo+lo / hi+hi of valid bounds; keep a side
    return x + y


def const_int_bound(expr: PrimExpr, var_bounds: dict | None = None) -> ConstIntBound:
    """Constant bounds of ``expr`` given ``{var: (lo, hi)}`` (inclusive) for some variables.

    >>> from workbench.ir.expr import Var
    >>> j = Var("j")
    >>> const_int_bound((j + 5) // 4, {j: (0, 11)})
    ConstIntBound(min_value=1, max_value=4)
    """
    vb = {id(k): v for k, v in (var_bounds or {}).items()}
    lo, hi = BoundEvaluator(lambda v: vb.get(id(v)))(expr)
    return ConstIntBound(lo, hi)


# ---------------------------------------------------------------------------
# symbolic intervals


class IntervalSet(NamedTuple):
    """The inclusive interval ``[min, max]`` with symbolic bounds; ``None`` means unbounded.

    >>> from workbench.ir.expr import Var
    >>> i, n = Var("i"), Var("n")
    >>> from workbench.ir.arith import Analyzer
    >>> from workbench.ir.expr import Range
    >>> s = Analyzer().int_set(i, {i: Range(0, n)})
    >>> print(s.min, s.max)
    0 n - 1
    """

    min: Optional[PrimExpr]
    max: Optional[PrimExpr]

    @property
    def is_point(self) -> bool:
        return self.min is not None and self.min is self.max

    def is_bounded(self) -> bool:
        return self.min is not None and self.max is not None


__all__ = ["ConstIntBound", "IntervalSet", "const_int_bound", "BoundEvaluator", "INF", "NEG_INF"]
