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
from typing import Callable, Mapping, NamedTuple, Optional

from ..dtype import is_bool, is_float, is_integer, is_uint, lanes_of, max_value, min_value
from ..expr import (EQ, GE, GT, LE, LT, NE, Add, And, Broadcast, BufferLoad, Call, Cast, Div, FloatImm,
                    FloorDiv, FloorMod, IntImm, Let, Max, Min, Mod, Mul, Not, Or, PrimExpr, Ramp, Select,
                    Sub, Var)
from . import interval as iv

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
            return iv.add(self(e.a), self(e.b))
        if isinstance(e, Sub):
            return iv.sub(self(e.a), self(e.b))
        if isinstance(e, Mul):
            return iv.mul(self(e.a), self(e.b))
        if isinstance(e, (FloorDiv, Div, FloorMod, Mod)):
            rule = {FloorDiv: iv.floordiv, Div: iv.truncdiv, FloorMod: iv.floormod, Mod: iv.truncmod}[type(e)]
            r = rule(self(e.a), self(e.b))
            return _dtype_bound(e.dtype) if r is None else r
        if isinstance(e, Min):
            return iv.minimum(self(e.a), self(e.b))
        if isinstance(e, Max):
            return iv.maximum(self(e.a), self(e.b))
        if isinstance(e, Select):
            return iv.union(self(e.true_value), self(e.false_value))
        if isinstance(e, Call):
            if e.op == "if_then_else":
                return iv.union(self(e.args[1]), self(e.args[2]))
            if e.op == "abs" and e.args:
                return iv.absolute(self(e.args[0]))
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
            base = self(e.base)
            last = iv.add(base, iv.mul(self(e.stride), (e.lanes - 1, e.lanes - 1)))
            return iv.union(base, last)
        if isinstance(e, Broadcast):
            return self(e.value)
        if isinstance(e, BufferLoad):
            return _data_bound(e.dtype)
        return _data_bound(e.dtype)


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


def const_bounds(expr: PrimExpr, dom: Mapping[Var, tuple]) -> tuple[int, int] | None:
    """Inclusive constant ``(lo, hi)`` of ``expr`` over ``dom`` (``{var: (lo, hi)}``, inclusive), or None.

    None unless every variable of ``expr`` is in ``dom`` and ``expr`` reads no data (a load
    or an opaque call is bounded only by its dtype, which says nothing about an index).

    >>> from workbench.ir.expr import Var
    >>> i, n = Var("i"), Var("n")
    >>> const_bounds(i % 4 + i // 4, {i: (0, 9)}), const_bounds(i + n, {i: (0, 9)})
    ((0, 5), None)
    """
    from ..functor import post_order_visit

    open_ends = []

    def check(n) -> None:
        if isinstance(n, Var) and n not in dom or isinstance(n, BufferLoad) or \
                isinstance(n, Call) and n.op not in ("if_then_else", "abs"):
            open_ends.append(n)

    post_order_visit(expr, check)
    if open_ends:
        return None
    lo, hi = const_int_bound(expr, dom)
    if math.isinf(lo) or math.isinf(hi):
        return None
    return int(lo), int(hi)


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


__all__ = ["ConstIntBound", "IntervalSet", "const_int_bound", "const_bounds", "BoundEvaluator", "INF", "NEG_INF"]
