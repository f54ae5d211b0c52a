"""Arithmetic on scalar and vector index expressions, keeping ``Ramp``/``Broadcast`` forms.

``vadd(Ramp(b, 1, 8), 4)`` is ``Ramp(b + 4, 1, 8)`` rather than a generic vector
add, so that code generation sees contiguous accesses.
"""
from __future__ import annotations

from ...ir import expr as E
from ...ir.dtype import lanes_of, with_lanes


def lanes(e) -> int:
    return lanes_of(e.dtype)


def broadcast(e, n: int):
    """``e`` widened to ``n`` lanes (unchanged when it already has them)."""
    e = E.convert(e)
    k = lanes(e)
    if k == n:
        return e
    if k != 1:
        raise ValueError(f"cannot widen a {e.dtype} expression to {n} lanes")
    return E.Broadcast(e, n)


def _scalar_const(e, v=None) -> bool:
    return isinstance(e, E.IntImm) and (v is None or e.value == v)


def vbin(cls, a, b):
    """``cls(a, b)`` with Python numbers converted, scalars broadcast and Ramp/Broadcast kept."""
    if not isinstance(a, E.PrimExpr) and isinstance(b, E.PrimExpr):
        a = E.const(a, E.element_of(b.dtype))
    if not isinstance(b, E.PrimExpr) and isinstance(a, E.PrimExpr):
        b = E.const(b, E.element_of(a.dtype))
    a, b = E.convert(a), E.convert(b)
    la, lb = lanes(a), lanes(b)
    if la == 1 and lb == 1:
        return {E.Add: E.add, E.Sub: E.sub, E.Mul: E.mul, E.FloorDiv: E.floordiv,
                E.FloorMod: E.floormod, E.Min: E.min_, E.Max: E.max_, E.Div: E.div}.get(
            cls, lambda x, y: cls(x, y))(a, b)
    n = max(la, lb)
    # Ramp/Broadcast algebra
    if cls in (E.Add, E.Sub):
        if isinstance(a, E.Ramp) and lb == 1:
            return E.Ramp(vbin(cls, a.base, b), a.stride, n)
        if isinstance(a, E.Ramp) and isinstance(b, E.Broadcast):
            return E.Ramp(vbin(cls, a.base, b.value), a.stride, n)
        if cls is E.Add and isinstance(b, E.Ramp) and (la == 1 or isinstance(a, E.Broadcast)):
            av = a.value if isinstance(a, E.Broadcast) else a
            return E.Ramp(vbin(E.Add, av, b.base), b.stride, n)
        if isinstance(a, E.Ramp) and isinstance(b, E.Ramp):
            return E.Ramp(vbin(cls, a.base, b.base), vbin(cls, a.stride, b.stride), n)
    if cls is E.Mul:
        if isinstance(a, E.Ramp) and (lb == 1 or isinstance(b, E.Broadcast)):
            s = b.value if isinstance(b, E.Broadcast) else b
            return E.Ramp(vbin(E.Mul, a.base, s), vbin(E.Mul, a.stride, s), n)
        if isinstance(b, E.Ramp) and (la == 1 or isinstance(a, E.Broadcast)):
            s = a.value if isinstance(a, E.Broadcast) else a
            return E.Ramp(vbin(E.Mul, b.base, s), vbin(E.Mul, b.stride, s), n)
    if isinstance(a, E.Broadcast) and isinstance(b, E.Broadcast):
        return E.Broadcast(vbin(cls, a.value, b.value), n)
    if isinstance(a, E.Broadcast) and lb == 1:
        return E.Broadcast(vbin(cls, a.value, b), n)
    if isinstance(b, E.Broadcast) and la == 1:
        return E.Broadcast(vbin(cls, a, b.value), n)
    return cls(broadcast(a, n), broadcast(b, n))


def vadd(a, b):
    return vbin(E.Add, a, b)


def vmul(a, b):
    return vbin(E.Mul, a, b)


def ramp_lanes_dtype(dtype: str, n: int) -> str:
    return with_lanes(dtype, n)


__all__ = ["lanes", "broadcast", "vbin", "vadd", "vmul"]
