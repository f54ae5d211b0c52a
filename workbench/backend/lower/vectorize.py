"""Turn ``vectorized`` loops into vector expressions (``Ramp`` / ``Broadcast``).

Before::

    for j in wb.vectorized(8):
        C[i, j] = A[i, j] + B[j]

After (one statement on 8 lanes)::

    C[i, wb.ramp(0, 1, 8)] = A[i, wb.ramp(0, 1, 8)] + B[wb.ramp(0, 1, 8)]

A longer loop (more than ``MAX_LANES`` iterations, or a symbolic extent) is
strip-mined: a serial loop over vectors of ``STRIP`` lanes, then a scalar tail.
A loop that cannot be vectorized (a symbolic extent, a condition or a lazy
``if_then_else`` that depends on the loop variable, a reduction into one
element, a read of a buffer the loop writes at other indices, ...) stays a
scalar loop and a :class:`VectorizeWarning` says why.
"""
from __future__ import annotations

import warnings

from ...ir import expr as E
from ...ir.dtype import lanes_of, with_lanes
from ...ir.function import PrimFunc
from ...ir.functor import Mutator, post_order_visit, uses_var
from ...ir.stmt import (Allocate, AssertStmt, BufferStore, Evaluate, For, ForKind, IfThenElse, LetStmt,
                        SeqStmt, Stmt)
from ...ir.structural import structural_equal
from .vecexpr import broadcast, vbin


#: vectorized loops longer than this (or of symbolic extent) are strip-mined into vectors of STRIP lanes
MAX_LANES = 64
STRIP = 16


class VectorizeWarning(UserWarning):
    """A loop marked ``vectorized`` was kept scalar; the message says why."""


class _Cannot(Exception):
    pass


class _VecBody:
    def __init__(self, var: E.Var, vmin: E.PrimExpr, n: int):
        self.var, self.n = var, n
        self.ramp = E.Ramp(vmin, E.IntImm(1, var.dtype), n)
        self.lets: dict[int, E.Var] = {}

    # statements ---------------------------------------------------------
    def stmt(self, s: Stmt) -> Stmt:
        if isinstance(s, BufferStore):
            idx = tuple(self.expr(i) for i in s.indices)
            if all(lanes_of(i.dtype) == 1 for i in idx):
                raise _Cannot(f"the store to {s.buffer.name} does not depend on the loop variable "
                              f"(every lane would write the same element, as in a reduction)")
            n = max(lanes_of(i.dtype) for i in idx)
            val = broadcast(self.expr(s.value), n)
            return BufferStore(s.buffer, val, idx)
        if isinstance(s, SeqStmt):
            return SeqStmt(tuple(self.stmt(x) for x in s.seq))
        if isinstance(s, LetStmt):
            v = self.expr(s.value)
            if lanes_of(v.dtype) == 1:
                return LetStmt(s.var, v, self.stmt(s.body))
            nv = E.Var(s.var.name, v.dtype)
            self.lets[id(s.var)] = nv
            return LetStmt(nv, v, self.stmt(s.body))
        if isinstance(s, IfThenElse):
            c = self.expr(s.condition)
            if lanes_of(c.dtype) != 1:
                raise _Cannot(f"the condition `{_short(s.condition)}` depends on the loop variable")
            return IfThenElse(c, self.stmt(s.then_case),
                              None if s.else_case is None else self.stmt(s.else_case))
        if isinstance(s, For):
            if uses_var(s.min, self.var) or uses_var(s.extent, self.var):
                raise _Cannot(f"the bounds of the inner loop {s.loop_var.name} depend on the loop variable")
            if s.kind == ForKind.PARALLEL:
                raise _Cannot(f"it contains the parallel loop {s.loop_var.name}")
            return s.replace(body=self.stmt(s.body))
        if isinstance(s, Allocate):
            raise _Cannot(f"it allocates the buffer {s.buffer.name} in its body")
        if isinstance(s, (Evaluate, AssertStmt)):
            raise _Cannot(f"it contains a {type(s).__name__} statement")
        raise _Cannot(f"it contains a {type(s).__name__} statement")

    # expressions --------------------------------------------------------
    def expr(self, e: E.PrimExpr) -> E.PrimExpr:
        if isinstance(e, E.Var):
            if e is self.var:
                return self.ramp
            return self.lets.get(id(e), e)
        if isinstance(e, (E.IntImm, E.FloatImm, E.StringImm)):
            return e
        if isinstance(e, (E.Ramp, E.Broadcast)) or lanes_of(e.dtype) != 1:
            raise _Cannot("it already holds vector expressions (a vectorized loop inside another?)")
        if isinstance(e, (E.CmpOp, E.LogicOp)):
            a, b = self.expr(e.a), self.expr(e.b)
            if lanes_of(a.dtype) == 1 and lanes_of(b.dtype) == 1:
                return e if (a is e.a and b is e.b) else type(e)(a, b)
            n = max(lanes_of(a.dtype), lanes_of(b.dtype))
            return type(e)(broadcast(a, n), broadcast(b, n))
        if isinstance(e, E.BinaryOp):
            a, b = self.expr(e.a), self.expr(e.b)
            if a is e.a and b is e.b:
                return e
            return vbin(type(e), a, b)
        if isinstance(e, E.Not):
            return E.Not(self.expr(e.a))
        if isinstance(e, E.Select):
            c, t, f = self.expr(e.condition), self.expr(e.true_value), self.expr(e.false_value)
            n = max(lanes_of(x.dtype) for x in (c, t, f))
            if n == 1:
                return E.Select(c, t, f)
            return E.Select(broadcast(c, n), broadcast(t, n), broadcast(f, n))
        if isinstance(e, E.Cast):
            v = self.expr(e.value)
            return E.Cast(with_lanes(e.dtype, lanes_of(v.dtype)), v)
        if isinstance(e, E.BufferLoad):
            idx = tuple(self.expr(i) for i in e.indices)
            return E.BufferLoad(e.buffer, idx)
        if isinstance(e, E.Let):
            v = self.expr(e.value)
            if lanes_of(v.dtype) != 1:
                nv = E.Var(e.var.name, v.dtype)
                self.lets[id(e.var)] = nv
                return E.Let(nv, v, self.expr(e.body))
            return E.Let(e.var, v, self.expr(e.body))
        if isinstance(e, E.Call):
            if e.op == "if_then_else":
                c = self.expr(e.args[0])
                if lanes_of(c.dtype) != 1:
                    raise _Cannot(f"the lazy if_then_else `{_short(e)}` has a condition that depends on the "
                                  "loop variable")
                t, f = self.expr(e.args[1]), self.expr(e.args[2])
                n = max(lanes_of(t.dtype), lanes_of(f.dtype))
                return E.Call(e.op, (c, broadcast(t, n), broadcast(f, n)), with_lanes(e.dtype, n))
            if e.op == "call_extern" or e.op not in E.INTRINSICS:
                args = [self.expr(a) for a in e.args]
                if any(lanes_of(a.dtype) != 1 for a in args):
                    raise _Cannot(f"the external call `{_short(e)}` depends on the loop variable")
                return E.Call(e.op, tuple(args), e.dtype)
            args = [self.expr(a) for a in e.args]
            n = max(lanes_of(a.dtype) for a in args)
            if n == 1:
                return E.Call(e.op, tuple(args), e.dtype)
            return E.Call(e.op, tuple(broadcast(a, n) for a in args), with_lanes(e.dtype, n))
        raise _Cannot(f"it contains an expression of kind {type(e).__name__}")


def _short(e) -> str:
    try:
        s = str(e)
    except Exception:
        s = type(e).__name__
    return s if len(s) < 60 else s[:57] + "..."


def _check_dependences(body: Stmt) -> None:
    stores: dict[int, list] = {}
    loads: list = []

    def f(n):
        if isinstance(n, BufferStore):
            stores.setdefault(id(n.buffer), []).append(n)
        elif isinstance(n, E.BufferLoad):
            loads.append(n)

    post_order_visit(body, f)
    for ld in loads:
        for st in stores.get(id(ld.buffer), ()):
            if not all(structural_equal(a, b) for a, b in zip(ld.indices, st.indices)):
                raise _Cannot(f"it reads {ld.buffer.name}[{', '.join(map(str, ld.indices))}] and writes "
                              f"{st.buffer.name}[{', '.join(map(str, st.indices))}], so one iteration may "
                              "depend on another")


class _Vectorize(Mutator):
    def visit_For(self, f: For):
        body = self.visit(f.body)
        f = f.replace(body=body)
        if f.kind != ForKind.VECTORIZED:
            return f
        n = E.as_int(f.extent)
        name = f.loop_var.name
        if n is None or n > MAX_LANES:
            return self._strip_mine(f, n)
        elif n == 1:
            from ...ir.functor import substitute

            return substitute(body, {f.loop_var: f.min})
        else:
            try:
                _check_dependences(body)
                return _VecBody(f.loop_var, f.min, n).stmt(body)
            except _Cannot as err:
                reason = str(err)
        warnings.warn(f"loop {name} is marked vectorized but stays a scalar loop: {reason}.",
                      VectorizeWarning, stacklevel=2)
        return f.replace(kind=ForKind.SERIAL)

    def _strip_mine(self, f: For, n):
        """A long or symbolic vectorized loop: vectors of STRIP lanes, then a scalar tail."""
        from ...ir.functor import substitute
        from ...ir.stmt import seq

        v = f.loop_var
        L = E.IntImm(STRIP, v.dtype)
        vo, vi, vt = E.Var(v.name + "_o", v.dtype), E.Var(v.name + "_v", v.dtype), E.Var(v.name + "_t", v.dtype)
        outer = E.floordiv(f.extent, L)
        start = E.add(f.min, E.mul(vo, L))
        inner = For(vi, 0, L, ForKind.VECTORIZED, substitute(f.body, {v: E.add(start, vi)}))
        main = For(vo, 0, outer, ForKind.SERIAL, self.visit_For(inner))
        rest = E.sub(f.extent, E.mul(outer, L))
        if isinstance(rest, E.IntImm) and rest.value == 0:
            return main
        tail = For(vt, 0, rest, ForKind.SERIAL,
                   substitute(f.body, {v: E.add(E.add(f.min, E.mul(outer, L)), vt)}))
        return seq(main, tail)


def vectorize(func: PrimFunc) -> PrimFunc:
    """Rewrite each ``vectorized`` loop as vector expressions, or keep it scalar with a warning.

    >>> from workbench.ir import Buffer, Var, For, BufferStore, PrimFunc
    >>> A = Buffer("A", (8,), "float32"); a = Var("a", "handle"); j = Var("j")
    >>> f = PrimFunc([a], {a: A}, For(j, 0, 8, "vectorized", BufferStore(A, A[j] * 2.0, [j])))
    >>> type(vectorize(f).body).__name__
    'BufferStore'
    """
    return func.with_body(_Vectorize().visit(func.body))


__all__ = ["vectorize", "VectorizeWarning"]
