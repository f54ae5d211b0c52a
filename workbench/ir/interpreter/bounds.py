"""Integer interval arithmetic used by the interpreter's code generator.

The generator tracks, for every integer expression it compiles, an interval that
surely contains the value. Where an interval proves that an index lies inside its
buffer, the bounds check is left out; where it proves that an operation cannot
overflow its dtype, the two's-complement wrap is left out. Intervals are pairs of
Python ints ``(lo, hi)``; they are always sound, never required to be tight.

>>> add((0, 63), (0, 1))
(0, 64)
"""
from __future__ import annotations

from ..dtype import bits_of, is_uint

Interval = tuple  # (lo, hi)


def dtype_range(dtype: str) -> Interval:
    """All values of an integer (or bool) dtype."""
    if dtype == "bool":
        return (0, 1)
    bits = bits_of(dtype)
    if is_uint(dtype):
        return (0, (1 << bits) - 1)
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1)


def fits(iv: Interval | None, dtype: str) -> bool:
    if iv is None:
        return False
    lo, hi = dtype_range(dtype)
    return lo <= iv[0] and iv[1] <= hi


def intersect(a: Interval, b: Interval) -> Interval:
    lo, hi = max(a[0], b[0]), min(a[1], b[1])
    return (lo, hi) if lo <= hi else a


def union(a: Interval, b: Interval) -> Interval:
    return (min(a[0], b[0]), max(a[1], b[1]))


def add(a: Interval, b: Interval) -> Interval:
    return (a[0] + b[0], a[1] + b[1])


def sub(a: Interval, b: Interval) -> Interval:
    return (a[0] - b[1], a[1] - b[0])


def mul(a: Interval, b: Interval) -> Interval:
    c = (a[0] * b[0], a[0] * b[1], a[1] * b[0], a[1] * b[1])
    return (min(c), max(c))


def floordiv(a: Interval, b: Interval) -> Interval | None:
    """``a // b`` for a strictly positive divisor range; None when ``b`` may be <= 0."""
    if b[0] <= 0:
        return None
    c = (a[0] // b[0], a[0] // b[1], a[1] // b[0], a[1] // b[1])
    return (min(c), max(c))


def floormod(a: Interval, b: Interval) -> Interval | None:
    if b[0] <= 0:
        return None
    if b[0] == b[1] and 0 <= a[0] and a[1] < b[0]:
        return a
    return (0, b[1] - 1)


def nonneg(a: Interval | None) -> bool:
    return a is not None and a[0] >= 0


__all__ = ["dtype_range", "fits", "intersect", "union", "add", "sub", "mul", "floordiv", "floormod"]
