"""Integer interval arithmetic used by the interpreter's code generator.

The generator tracks, for every integer expression it compiles, an interval that
surely contains the value. Where an interval proves that an index lies inside its
buffer, the bounds check is left out; where it proves that an operation cannot
overflow its dtype, the two's-complement wrap is left out. Intervals are pairs of
Python ints ``(lo, hi)``; they are always sound, never required to be tight. The
rules of each operation are those of ``workbench.ir.arith.interval`` (the ones the
analyzer's ``const_int_bound`` uses); this module adds what depends on dtypes.

>>> add((0, 63), (0, 1))
(0, 64)
"""
from __future__ import annotations

from ..arith import interval
from ..arith.interval import Interval, add, floordiv, floormod, maximum, minimum, mul, sub, union
from ..dtype import bits_of, is_uint


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
    """Values in both; ``a`` when they are disjoint (the code there never runs)."""
    return interval.intersect(a, b) or a


def nonneg(a: Interval | None) -> bool:
    return a is not None and a[0] >= 0


__all__ = ["Interval", "dtype_range", "fits", "intersect", "union", "add", "sub", "mul", "floordiv", "floormod",
           "minimum", "maximum", "nonneg"]
