"""Simplify the expressions of a function with ``workbench.ir.arith.simplify``.

Loop variables are known to lie in their loop's range, so guards that always
hold disappear. Before::

    for i in range(16):
        if i < 16:
            B[i * 1 + 0] = A[i]

After::

    for i in range(16):
        B[i] = A[i]

Without the arithmetic simplifier this pass leaves the function unchanged; an
expression the simplifier cannot handle (or whose dtype would change) is kept.
"""
from __future__ import annotations

from ...ir.expr import IntImm, PrimExpr, Range
from ...ir.function import PrimFunc
from ...ir.functor import Mutator
from ...ir.stmt import For, IfThenElse, SeqStmt


def _simplifier():
    try:
        from ...ir.arith import simplify as s  # optional: the arithmetic layer
    except Exception:
        return None
    return s


class _Simplify(Mutator):
    def __init__(self, fn):
        self.fn = fn
        self.ranges: dict = {}

    def visit(self, n):
        if isinstance(n, PrimExpr):
            if isinstance(n, IntImm):
                return n
            try:
                out = self.fn(n, self.ranges)
            except Exception:
                return n
            return out if isinstance(out, PrimExpr) and out.dtype == n.dtype else n
        return super().visit(n)

    def visit_For(self, f: For):
        lo, ext = self.visit(f.min), self.visit(f.extent)
        self.ranges[f.loop_var] = Range(lo, ext)
        try:
            body = self.visit(f.body)
        finally:
            self.ranges.pop(f.loop_var, None)
        return f.replace(min=lo, extent=ext, body=body)

    def visit_AssertStmt(self, s):
        from .bound_check import PREFIX

        if s.message.startswith(PREFIX):  # keep the shape code generation reads the index from
            return s.replace(body=self.visit(s.body))
        return self.generic_visit(s)

    def visit_IfThenElse(self, s: IfThenElse):
        c = self.visit(s.condition)
        if isinstance(c, IntImm):
            if c.value:
                return self.visit(s.then_case)
            return self.visit(s.else_case) if s.else_case is not None else SeqStmt(())
        return s.replace(condition=c, then_case=self.visit(s.then_case),
                         else_case=None if s.else_case is None else self.visit(s.else_case))


def simplify(func: PrimFunc) -> PrimFunc:
    """Simplify every expression (``i * 1 + 0`` -> ``i``) knowing the loop ranges; drop guards that always hold.

    >>> from workbench.ir import Buffer, Var, BufferStore, PrimFunc, For, IfThenElse
    >>> A = Buffer("A", (4,), "float32"); a = Var("a", "handle"); i = Var("i")
    >>> f = PrimFunc([a], {a: A}, For(i, 0, 4, "serial", IfThenElse(i < 4, BufferStore(A, 1.0, [i * 1]))))
    >>> type(simplify(f).body.body).__name__
    'BufferStore'
    """
    fn = _simplifier()
    if fn is None:
        return func
    return func.with_body(_Simplify(fn).visit(func.body))


__all__ = ["simplify"]
