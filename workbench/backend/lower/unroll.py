"""Unroll loops marked ``unroll`` with a constant extent into a sequence of copies.

Before::

    for k in wb.unroll(3):
        C[k] = A[k] + 1.0

After::

    C[0] = A[0] + 1.0
    C[1] = A[1] + 1.0
    C[2] = A[2] + 1.0

Loops with a symbolic extent (or more than ``max_extent`` iterations) stay loops;
LLVM may still unroll them.
"""
from __future__ import annotations

from ...ir.expr import IntImm, as_int
from ...ir.function import PrimFunc
from ...ir.functor import Mutator, substitute
from ...ir.stmt import For, ForKind, SeqStmt

MAX_UNROLL = 256


class _Unroll(Mutator):
    def __init__(self, max_extent: int):
        self.max_extent = max_extent

    def visit_For(self, f: For):
        f = self.generic_visit(f)
        if f.kind != ForKind.UNROLLED:
            return f
        n, lo = as_int(f.extent), as_int(f.min)
        if n is None or lo is None or n > self.max_extent:
            return f.replace(kind=ForKind.SERIAL)
        if n <= 0:
            return SeqStmt(())
        copies = [substitute(f.body, {f.loop_var: IntImm(lo + k, f.loop_var.dtype)}) for k in range(n)]
        return copies[0] if n == 1 else SeqStmt(tuple(copies))


def unroll(func: PrimFunc, max_extent: int = MAX_UNROLL) -> PrimFunc:
    """Replace each ``unroll`` loop of constant extent by copies of its body.

    >>> from workbench.ir import Buffer, Var, For, BufferStore, PrimFunc
    >>> A = Buffer("A", (2,), "float32"); a = Var("a", "handle"); k = Var("k")
    >>> f = PrimFunc([a], {a: A}, For(k, 0, 2, "unrolled", BufferStore(A, 1.0, [k])))
    >>> len(unroll(f).body.seq)
    2
    """
    return func.with_body(_Unroll(max_extent).visit(func.body))


__all__ = ["unroll"]
