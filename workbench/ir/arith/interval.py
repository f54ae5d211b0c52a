"""Interval arithmetic on inclusive integer bounds: the one set of rules of the package.

An interval is a pair ``(lo, hi)`` of Python ints, ``float('-inf')`` / ``float('inf')``
where unbounded, that surely contains the value; intervals are sound, not always tight.
``const_int_bound`` (``workbench.ir.arith.bound``), the linear-form bounds of
``workbench.ir.arith.linear`` and the interpreter's overflow and bounds-check reasoning
all use these functions, so they cannot disagree about an operation.

A function returns ``None`` where it cannot bound the result (a divisor that may be both
negative and positive). A divisor range that merely touches zero (``(0, 4)``) is taken
where the operation is defined (``(1, 4)``): division by zero is an error, not a value.

>>> floordiv((0, 63), (4, 4)), floormod((-3, 10), (4, 4)), mul((-2, 3), (5, 5))
((0, 15), (0, 3), (-10, 15))
"""
from __future__ import annotations

import math
from typing import Optional, Tuple, Union

Number = Union[int, float]
Interval = Tuple[Number, Number]


def _plus(x: Number, y: Number) -> Number:
    if math.isinf(x) and math.isinf(y) and x != y:
        return x  # only lo + lo or hi + hi of valid intervals meet here: keep a side
    return x + y


def _times(x: Number, y: Number) -> Number:
    if x == 0 or y == 0:
        return 0
    return x * y


def _floor_quotient(x: Number, y: Number) -> Number:
    """floor(x / y) with infinities; ``y != 0``."""
    if math.isinf(x):
        return x if y > 0 else -x
    if math.isinf(y):
        return 0 if (x >= 0) == (y > 0) else -1
    return x // y


def _trunc_quotient(x: Number, y: Number) -> Number:
    if math.isinf(x):
        return x if y > 0 else -x
    if math.isinf(y):
        return 0
    q = abs(x) // abs(y)
    return q if (x >= 0) == (y > 0) else -q


def _corners(f, a: Interval, b: Interval) -> Interval:
    vals = [f(x, y) for x in (a[0], a[1]) for y in (b[0], b[1])]
    return (min(vals), max(vals))


def _defined_divisor(b: Interval) -> Optional[Interval]:
    """``b`` without a zero endpoint; None when it holds values of both signs."""
    if b[0] <= 0 <= b[1]:
        if b[0] == 0 and b[1] > 0:
            return (1, b[1])
        if b[1] == 0 and b[0] < 0:
            return (b[0], -1)
        return None
    return b


def add(a: Interval, b: Interval) -> Interval:
    """``a + b``.

    >>> add((0, 63), (0, 1))
    (0, 64)
    """
    return (_plus(a[0], b[0]), _plus(a[1], b[1]))


def sub(a: Interval, b: Interval) -> Interval:
    return (_plus(a[0], -b[1]), _plus(a[1], -b[0]))


def mul(a: Interval, b: Interval) -> Interval:
    return _corners(_times, a, b)


def floordiv(a: Interval, b: Interval) -> Optional[Interval]:
    """``a // b`` (floor division); None when ``b`` may be negative and positive.

    >>> floordiv((-7, 7), (2, 4)), floordiv((0, 9), (-3, 3))
    ((-4, 3), None)
    """
    d = _defined_divisor(b)
    return None if d is None else _corners(_floor_quotient, a, d)


def truncdiv(a: Interval, b: Interval) -> Optional[Interval]:
    """``a / b`` rounded toward zero (C division); None when ``b`` may be negative and positive."""
    d = _defined_divisor(b)
    return None if d is None else _corners(_trunc_quotient, a, d)


def floormod(a: Interval, b: Interval) -> Optional[Interval]:
    """``a % b`` with the sign of ``b`` (floor modulo); None when ``b`` may be negative and positive.

    >>> floormod((0, 2), (4, 8)), floormod((5, 6), (4, 4)), floormod((0, 9), (-4, -4))
    ((0, 2), (1, 2), (-3, 0))
    """
    d = _defined_divisor(b)
    if d is None:
        return None
    if d[0] > 0:
        if a[0] >= 0 and a[1] < d[0]:
            return a
        if d[0] == d[1] and not math.isinf(a[0]) and not math.isinf(a[1]) and a[0] // d[0] == a[1] // d[0]:
            return (a[0] % d[0], a[1] % d[0])   # one period: the values keep their order
        return (0, min(d[1] - 1, a[1]) if a[0] >= 0 else d[1] - 1)
    return (d[0] + 1, 0)


def truncmod(a: Interval, b: Interval) -> Optional[Interval]:
    """``a`` minus ``b`` times the truncated quotient (C ``%``, the sign of ``a``)."""
    m = max(abs(b[0]), abs(b[1]))
    if m == 0 or b[0] < 0 < b[1]:
        return None
    lim = m - 1
    if a[0] >= 0:
        return (0, min(a[1], lim))
    if a[1] <= 0:
        return (max(a[0], -lim), 0)
    return (max(a[0], -lim), min(a[1], lim))


def minimum(a: Interval, b: Interval) -> Interval:
    return (min(a[0], b[0]), min(a[1], b[1]))


def maximum(a: Interval, b: Interval) -> Interval:
    return (max(a[0], b[0]), max(a[1], b[1]))


def union(a: Interval, b: Interval) -> Interval:
    """The smallest interval holding both (a value from either branch of a select)."""
    return (min(a[0], b[0]), max(a[1], b[1]))


def intersect(a: Interval, b: Interval) -> Optional[Interval]:
    """Values in both; None when they are disjoint."""
    lo, hi = max(a[0], b[0]), min(a[1], b[1])
    return (lo, hi) if lo <= hi else None


def absolute(a: Interval) -> Interval:
    if a[0] >= 0:
        return a
    if a[1] <= 0:
        return (-a[1], -a[0])
    return (0, max(-a[0], a[1]))


__all__ = ["Interval", "add", "sub", "mul", "floordiv", "truncdiv", "floormod", "truncmod", "minimum",
           "maximum", "union", "intersect", "absolute"]
