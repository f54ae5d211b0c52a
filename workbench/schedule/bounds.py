"""Small integer-bound reasoning for the primitives: linear forms and interval bounds.

A linear form is ``{var: coeff}`` plus a constant (``{}`` key ``None``). It keeps
extents exact (``(j0*4 + 3) - (j0*4) + 1 == 4``) where interval arithmetic on
expressions would lose them.
"""
from __future__ import annotations

from typing import Mapping

from ..ir.expr import (Add, FloorDiv, FloorMod, IntImm, Max, Min, Mul, PrimExpr, Sub, Var, as_int, Cast)

Linear = dict  # {Var | None: int}


def linear(e: PrimExpr) -> Linear | None:
    """The linear form of ``e``, or None when it is not affine with constant coefficients."""
    if isinstance(e, IntImm):
        return {None: e.value}
    if isinstance(e, Var):
        return {e: 1}
    if isinstance(e, Add) or isinstance(e, Sub):
        a, b = linear(e.a), linear(e.b)
        if a is None or b is None:
            return None
        s = 1 if isinstance(e, Add) else -1
        out = dict(a)
        for k, v in b.items():
            out[k] = out.get(k, 0) + s * v
        return {k: v for k, v in out.items() if v != 0 or k is None}
    if isinstance(e, Mul):
        a, b = linear(e.a), linear(e.b)
        if a is None or b is None:
            return None
        if set(b) <= {None}:
            c = b.get(None, 0)
            return {k: v * c for k, v in a.items() if v * c != 0 or k is None}
        if set(a) <= {None}:
            c = a.get(None, 0)
            return {k: v * c for k, v in b.items() if v * c != 0 or k is None}
        return None
    return None


def const_of(lin: Linear) -> int | None:
    if set(lin) <= {None}:
        return lin.get(None, 0)
    return None


def lin_sub(a: Linear, b: Linear) -> Linear:
    out = dict(a)
    for k, v in b.items():
        out[k] = out.get(k, 0) - v
    return {k: v for k, v in out.items() if v != 0}


def to_expr(lin: Linear, order: list | None = None) -> PrimExpr:
    """Build ``v0 * c0 + v1 * c1 + c`` (variables in ``order`` of first appearance)."""
    terms = [(k, v) for k, v in lin.items() if k is not None and v != 0]
    if order is not None:
        pos = {id(v): n for n, v in enumerate(order)}
        terms.sort(key=lambda kv: pos.get(id(kv[0]), len(pos)))
    out: PrimExpr | None = None
    for var, c in terms:
        t = var if c == 1 else var * c
        out = t if out is None else out + t
    c = lin.get(None, 0)
    if out is None:
        return IntImm(c)
    if c > 0:
        out = out + c
    elif c < 0:
        out = out - (-c)
    return out


def vars_in_order(e: PrimExpr) -> list[Var]:
    from ..ir.functor import collect_vars

    return collect_vars(e)


def const_bounds(e: PrimExpr, dom: Mapping[Var, tuple[int, int]]) -> tuple[int, int] | None:
    """Inclusive constant ``(lo, hi)`` of ``e`` with variables in ``dom`` (inclusive ranges)."""
    if isinstance(e, IntImm):
        return e.value, e.value
    if isinstance(e, Var):
        return dom.get(e)
    if isinstance(e, Cast):
        return const_bounds(e.value, dom)
    if isinstance(e, (Add, Sub, Mul, Min, Max, FloorDiv, FloorMod)):
        a = const_bounds(e.a, dom)
        b = const_bounds(e.b, dom)
        if a is None or b is None:
            return None
        if isinstance(e, Add):
            return a[0] + b[0], a[1] + b[1]
        if isinstance(e, Sub):
            return a[0] - b[1], a[1] - b[0]
        if isinstance(e, Mul):
            c = [a[0] * b[0], a[0] * b[1], a[1] * b[0], a[1] * b[1]]
            return min(c), max(c)
        if isinstance(e, Min):
            return min(a[0], b[0]), min(a[1], b[1])
        if isinstance(e, Max):
            return max(a[0], b[0]), max(a[1], b[1])
        if isinstance(e, FloorDiv):
            if b[0] == b[1] and b[0] > 0:
                return a[0] // b[0], a[1] // b[0]
            return None
        if isinstance(e, FloorMod):
            if b[0] == b[1] and b[0] > 0:
                if a[0] // b[0] == a[1] // b[0]:
                    return a[0] % b[0], a[1] % b[0]
                return 0, b[0] - 1
            return None
    return None


def lin_bounds(lin: Linear, relax: Mapping[Var, tuple[int, int]]) -> tuple[Linear, Linear]:
    """Lower and upper linear forms of ``lin`` with the variables of ``relax`` over their ranges."""
    lo: Linear = {}
    hi: Linear = {}
    for k, v in lin.items():
        if k is not None and k in relax:
            a, b = relax[k]
            lo[None] = lo.get(None, 0) + (v * a if v > 0 else v * b)
            hi[None] = hi.get(None, 0) + (v * b if v > 0 else v * a)
        else:
            lo[k] = lo.get(k, 0) + v
            hi[k] = hi.get(k, 0) + v
    return lo, hi


def loop_range(loop) -> tuple[int, int] | None:
    """Inclusive constant range of a loop's variable, or None for symbolic loops."""
    m, e = as_int(loop.min), as_int(loop.extent)
    if m is None or e is None:
        return None
    return m, m + e - 1
