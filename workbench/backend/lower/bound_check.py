"""Insert run-time bound checks before buffer accesses (``wb.build(..., checks=True)``).

Before::

    B[i] = A[i + 1]

After::

    assert 0 <= i + 1 and i + 1 < 16, "bounds:A:0"
    assert 0 <= i and i < 16, "bounds:B:0"
    B[i] = A[i + 1]

The message ``bounds:<buffer>:<dimension>`` tells code generation to record the
offending index, so the caller sees ``IndexError: buffer A: index 16 is out of
bounds for dimension 0 of extent 16``. Loads under a lazy ``if_then_else``
branch are not checked (the condition usually guards them).
"""
from __future__ import annotations

from ...ir import expr as E
from ...ir.dtype import lanes_of
from ...ir.function import PrimFunc
from ...ir.functor import Mutator, Visitor
from ...ir.stmt import AssertStmt, BufferStore, LetStmt, Stmt

PREFIX = "bounds:"


class _Loads(Visitor):
    def __init__(self):
        self.found: list[E.BufferLoad] = []

    def visit_BufferLoad(self, e):
        # post-order: the loads inside an index (A[I[i]]) are checked before the load that uses them
        self.generic_visit(e)
        self.found.append(e)

    def visit_Call(self, e):
        if e.op == "if_then_else":
            self.visit(e.args[0])
            return
        self.generic_visit(e)


def _lane_ends(i: E.PrimExpr):
    """Scalar expressions whose checks cover every lane of ``i`` (first and last of a Ramp)."""
    if lanes_of(i.dtype) == 1:
        return [i]
    if isinstance(i, E.Broadcast):
        return [i.value]
    if isinstance(i, E.Ramp):
        last = E.add(i.base, E.mul(i.stride, E.const(i.lanes - 1, i.stride.dtype)))
        return [i.base, last]
    return [i]  # a general vector: checked lane-wise (vector condition)


def _checks(buf, indices):
    out = []
    for d, (i, ext) in enumerate(zip(indices, buf.shape)):
        for x in _lane_ends(i):
            n = lanes_of(x.dtype)
            e = ext if ext.dtype == E.element_of(x.dtype) else E.cast(ext, E.element_of(x.dtype))
            if n > 1:
                zero, e = E.Broadcast(E.const(0, E.element_of(x.dtype)), n), E.Broadcast(e, n)
                cond = E.And(E.LE(zero, x), E.LT(x, e))
            else:
                cond = E.logical_and(E.LE(E.const(0, x.dtype), x), E.LT(x, e))
            if isinstance(cond, E.IntImm) and cond.value:
                continue
            if isinstance(cond, E.And) and all(isinstance(c, E.IntImm) and c.value for c in (cond.a, cond.b)):
                continue
            out.append((cond, f"{PREFIX}{buf.name}:{d}"))
    return out


def _wrap(stmt: Stmt, checks) -> Stmt:
    for cond, msg in reversed(checks):
        stmt = AssertStmt(cond, msg, stmt)
    return stmt


class _Insert(Mutator):
    def visit_BufferStore(self, s: BufferStore):
        v = _Loads()
        v.visit(s.value)
        for i in s.indices:
            v.visit(i)
        checks = []
        for ld in v.found:
            checks += _checks(ld.buffer, ld.indices)
        checks += _checks(s.buffer, s.indices)
        return _wrap(s, checks)

    def visit_LetStmt(self, s: LetStmt):
        s = self.generic_visit(s)
        v = _Loads()
        v.visit(s.value)
        checks = []
        for ld in v.found:
            checks += _checks(ld.buffer, ld.indices)
        return _wrap(s, checks)


def insert_bound_checks(func: PrimFunc) -> PrimFunc:
    """Guard every buffer access with an ``assert`` on its indices.

    >>> from workbench.ir import Buffer, Var, BufferStore, PrimFunc
    >>> A = Buffer("A", (4,), "float32"); a = Var("a", "handle"); i = Var("i")
    >>> from workbench.ir import For
    >>> f = insert_bound_checks(PrimFunc([a], {a: A}, For(i, 0, 5, "serial", BufferStore(A, 1.0, [i]))))
    >>> type(f.body.body).__name__
    'AssertStmt'
    """
    return func.with_body(_Insert().visit(func.body))


__all__ = ["insert_bound_checks", "PREFIX"]
