"""Hoist the guards of a non-dividing split out of the inner loops: full tiles run unguarded.

A split that does not divide its loop leaves a guard ``io * 8 + ii < n`` on the block, and
``lower_blocks`` puts that ``if`` around the innermost statement, inside the unrolled and
vectorized loops of a register tile, where it costs a branch per element and keeps the
tile's accumulators out of registers. For every iteration of ``io`` but the last, the guard
holds whatever the inner loops do. This pass (TVM's ``LoopPartition`` of such loops, done in
place so buffers keep one allocation) tests that once per iteration of ``io`` and runs an
unguarded copy of the body when it holds.

Before::

    for io in wb.serial((n + 7) // 8):
        for k in wb.serial(64):
            for ii in wb.unroll(8):
                if io * 8 + ii < n:
                    C[io * 8 + ii] = C[io * 8 + ii] + A[io * 8 + ii, k]

After::

    for io in wb.serial((n + 7) // 8):
        if io < (n - 7 - 1) // 8 + 1:          # every ii < 8 passes the guard
            for k in wb.serial(64):
                for ii in wb.unroll(8):
                    C[io * 8 + ii] = C[io * 8 + ii] + A[io * 8 + ii, k]
        else:
            for k in wb.serial(64):
                for ii in wb.unroll(8):
                    if io * 8 + ii < n:
                        C[io * 8 + ii] = C[io * 8 + ii] + A[io * 8 + ii, k]

A guard qualifies when it is ``a * io + r < b`` (or ``<=``) with a positive constant ``a``,
where ``r`` mixes variables of loops inside ``io`` with constant ranges (not thread-bound ones) and anything defined
outside ``io``: then it holds for all of them exactly when ``io`` is below
``(b - max r - 1) // a + 1`` (floor division). Only guards under at least one inner loop are
hoisted (a guard directly in ``io``'s body gains nothing), and the unguarded copy is made only
for the outermost loop that has such guards (then again inside that copy for the next ones).
"""
from __future__ import annotations

from ...ir.expr import LE, LT, FloorDiv, IntImm, Min, PrimExpr, Var, logical_and
from ...ir.arith import Analyzer
from ...ir.arith.linear import lin_bounds, lin_sub, linear, to_expr
from ...ir.function import PrimFunc
from ...ir.functor import Mutator, Visitor, collect_vars
from ...ir.stmt import For, ForKind, IfThenElse, LetStmt, Stmt
from .compact import _conjuncts

#: loop kinds whose iterations may be split into the unguarded and the guarded copy
_HOISTABLE = (ForKind.SERIAL, ForKind.PARALLEL)


def hoist_tail_guards(func: PrimFunc) -> PrimFunc:
    """``func`` with the tail guards of its loops tested once per iteration (module docstring)."""
    body = _Hoist().visit(func.body)
    return func if body is func.body else func.with_body(body)


def _limit(guard: PrimExpr, var: Var, inner: dict) -> PrimExpr | None:
    """The exclusive bound of ``var`` below which ``guard`` holds for every value of the ``inner`` loop
    variables (name -> inclusive constant range), or None when the guard is not of the hoistable form."""
    if not isinstance(guard, (LT, LE)):
        return None
    lin = linear(guard.a - guard.b)
    if lin is None:
        return None
    if isinstance(guard, LE):
        lin = dict(lin)
        lin[None] = lin.get(None, 0) - 1          # a <= b  is  a - b - 1 < 0
    a = lin.get(var, 0)
    if a <= 0:
        return None
    rest = lin_sub(lin, {var: a})
    used = {k for k in rest if k is not None}
    if not used & set(inner):
        return None
    _, hi = lin_bounds(rest, {k: inner[k] for k in used if k in inner})
    if any(k is not None and k in inner for k in hi):
        return None
    # a * var + hi < 0  <=>  var <= (-hi - 1) // a  <=>  var < (-hi - 1) // a + 1
    neg = to_expr({k: -v for k, v in hi.items()})
    return Analyzer().simplify(FloorDiv(neg - 1, IntImm(a)) + 1)


class _Hoist(Mutator):
    """Top-down: the first loop (outermost) with hoistable guards gets the unguarded copy."""

    def visit_For(self, f: For):
        if f.kind in _HOISTABLE and f.thread is None:
            found = _Guards(f.loop_var)
            found.visit(f.body)
            if found.hoisted:
                limit = found.limits[0]
                for extra in found.limits[1:]:
                    limit = Min(limit, extra)
                fast = _Unguard(found.hoisted).visit(f.body)
                fast = self.visit(fast)   # the next loops' guards, in the unguarded copy only
                cond = LT(f.loop_var, limit)
                return f.replace(body=IfThenElse(cond, fast, f.body))
        return f.replace(body=self.visit(f.body))


class _Guards(Visitor):
    """Collects the guards of ``var`` that inner loops make hoistable: their ``limits`` and the ids of
    the conjuncts in ``hoisted`` (a conjunct object shared with a place where it cannot be hoisted is
    left alone everywhere)."""

    def __init__(self, var: Var):
        self.var = var
        self.inner: dict = {}
        self.defined: set = set()
        self.limits: list[PrimExpr] = []
        self.proven: set[int] = set()
        self.failed: set[int] = set()

    @property
    def hoisted(self) -> set[int]:
        return self.proven - self.failed

    def visit_For(self, f: For):
        lo, ext = f.min, f.extent
        if f.thread is None and isinstance(lo, IntImm) and isinstance(ext, IntImm) and ext.value > 0:
            self.inner[f.loop_var] = (lo.value, lo.value + ext.value - 1)
        else:
            self.defined.add(f.loop_var)
        self.visit(f.body)
        self.inner.pop(f.loop_var, None)

    def visit_LetStmt(self, s: LetStmt):
        self.defined.add(s.var)
        self.visit(s.body)

    def visit_IfThenElse(self, s: IfThenElse):
        for c in _conjuncts(s.condition):
            used = set(collect_vars(c))
            if self.var not in used:
                continue
            limit = None
            if s.else_case is None and self.inner and not used & self.defined:
                limit = _limit(c, self.var, self.inner)
            if limit is None:
                self.failed.add(id(c))
            else:
                self.limits.append(limit)
                self.proven.add(id(c))
        self.visit(s.then_case)
        if s.else_case is not None:
            self.visit(s.else_case)

    def generic_visit(self, n):
        if isinstance(n, Stmt):
            super().generic_visit(n)


class _Unguard(Mutator):
    """Drops the hoisted conjuncts from the guards (an ``if`` left with none becomes its body)."""

    def __init__(self, hoisted: set[int]):
        self.hoisted = hoisted

    def visit_IfThenElse(self, s: IfThenElse):
        then = self.visit(s.then_case)
        els = None if s.else_case is None else self.visit(s.else_case)
        kept = [c for c in _conjuncts(s.condition) if id(c) not in self.hoisted]
        if len(kept) == len(_conjuncts(s.condition)):
            return s.replace(then_case=then, else_case=els)
        if not kept:
            return then
        return s.replace(condition=logical_and(*kept), then_case=then, else_case=els)

    def generic_visit(self, n):
        if isinstance(n, Stmt):
            return super().generic_visit(n)
        return n
