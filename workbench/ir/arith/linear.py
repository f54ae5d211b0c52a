"""Linear forms: affine integer expressions as ``{var: coeff}`` plus a constant (key ``None``).

They keep extents exact where interval bounds of expressions would lose them
(``(j0*4 + 3) - (j0*4) + 1`` is ``4``), and are how the schedule primitives exchange
regions. Bounds of a linear form over ranges of some of its variables use the interval
rules of ``workbench.ir.arith.interval``, like every other bound in the package.

>>> from workbench.ir.expr import Var
>>> i, j = Var("i"), Var("j")
>>> lin = linear(i * 4 + j - 2)
>>> print(to_expr(lin))
i * 4 + j - 2
>>> lo, hi = lin_bounds(lin, {j: (0, 3)})
>>> print(to_expr(lo), "..", to_expr(hi))
i * 4 - 2 .. i * 4 + 1

A fused loop's ``f // 8`` and ``f % 8`` are not affine; ``linear_atoms`` keeps each such term
as one opaque key (structurally equal terms share one key), so regions under a fused loop keep
exact extents:

>>> f = Var("f")
>>> atoms = AtomTable()
>>> lo, hi = linear_atoms(f % 8 * 4 + j, atoms), linear_atoms(f % 8 * 4 + j + 3, atoms)
>>> print(to_expr(lin_sub(hi, lo)))
3
"""
from __future__ import annotations

from typing import Mapping, Optional

from ..expr import Add, IntImm, Mul, PrimExpr, Sub, Var
from . import interval as iv
from .simplify import expr_key

Linear = dict  # {Var | None: int}


def linear(e: PrimExpr) -> Optional[Linear]:
    """The linear form of ``e``, or None when it is not affine with constant coefficients."""
    if isinstance(e, IntImm):
        return {None: e.value}
    if isinstance(e, Var):
        return {e: 1}
    if isinstance(e, (Add, Sub)):
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
            return _scaled(a, b.get(None, 0))
        if set(a) <= {None}:
            return _scaled(b, a.get(None, 0))
        return None
    return None


class AtomTable:
    """One canonical object per structurally distinct opaque term, so that linear forms built
    from separately constructed expressions (``f % 8`` in a region's min and in its max) share keys."""

    def __init__(self) -> None:
        self._memo: dict = {}
        self._by_key: dict = {}

    def canonical(self, e: PrimExpr) -> PrimExpr:
        return self._by_key.setdefault(expr_key(e, self._memo), e)


def linear_atoms(e: PrimExpr, atoms: AtomTable) -> Linear:
    """The linear form of ``e`` where each non-affine term (``f // 8``, ``f % 8``, ``i * n``) is an
    opaque key: the canonical object ``atoms`` holds for it. Never None."""
    if isinstance(e, IntImm):
        return {None: e.value}
    if isinstance(e, Var):
        return {e: 1}
    if isinstance(e, (Add, Sub)):
        a, b = linear_atoms(e.a, atoms), linear_atoms(e.b, atoms)
        s = 1 if isinstance(e, Add) else -1
        out = dict(a)
        for k, v in b.items():
            out[k] = out.get(k, 0) + s * v
        return {k: v for k, v in out.items() if v != 0 or k is None}
    if isinstance(e, Mul):
        a, b = linear_atoms(e.a, atoms), linear_atoms(e.b, atoms)
        if set(b) <= {None}:
            return _scaled(a, b.get(None, 0))
        if set(a) <= {None}:
            return _scaled(b, a.get(None, 0))
    return {atoms.canonical(e): 1}


def _scaled(lin: Linear, c: int) -> Linear:
    return {k: v * c for k, v in lin.items() if v * c != 0 or k is None}


def const_of(lin: Linear) -> Optional[int]:
    """The constant a linear form is, or None when it has variables."""
    if set(lin) <= {None}:
        return lin.get(None, 0)
    return None


def lin_sub(a: Linear, b: Linear) -> Linear:
    """``a - b`` (zero terms dropped, the constant too when zero)."""
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


def lin_bounds(lin: Linear, relax: Mapping[Var, tuple]) -> tuple[Linear, Linear]:
    """Lower and upper linear forms of ``lin`` with the variables of ``relax`` over their inclusive
    ranges ``(lo, hi)``; the other variables stay."""
    rest = {k: v for k, v in lin.items() if k is None or k not in relax}
    lo, hi = dict(rest), dict(rest)
    total = (0, 0)
    for k, v in lin.items():
        if k is not None and k in relax:
            total = iv.add(total, iv.mul((v, v), relax[k]))
    if any(k is not None and k in relax for k in lin):
        lo[None] = lo.get(None, 0) + total[0]
        hi[None] = hi.get(None, 0) + total[1]
    return lo, hi


__all__ = ["Linear", "AtomTable", "linear_atoms", "linear", "const_of", "lin_sub", "to_expr", "lin_bounds"]
