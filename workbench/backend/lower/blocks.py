"""Lower blocks to plain loops.

Each ``BlockRealize`` becomes its body with the block's iteration variables
replaced by their bindings. A reduction's ``init`` becomes a first-iteration
branch (``if vk == 0: C[vi, vj] = 0.0``), a block predicate becomes an ``if``
guard, and buffers allocated by blocks become ``Allocate`` statements.

Before::

    for i, k in wb.grid(16, 16):
        with wb.block("C"):
            vi, vk = wb.axis.remap("SR", [i, k])
            with wb.init():
                C[vi] = 0.0
            C[vi] = C[vi] + A[vi, vk]

After::

    for i in range(16):
        for k in range(16):
            if k == 0:
                C[i] = 0.0
            C[i] = C[i] + A[i, k]
"""
from __future__ import annotations

from ...ir.expr import IntImm, logical_and
from ...ir.function import PrimFunc
from ...ir.functor import Mutator, substitute
from ...ir.stmt import (Allocate, Block, BlockRealize, IfThenElse, IterType, seq)
from .vecexpr import vadd
from .compact import record_dim_aligns   # storage_align's annotations outlive the blocks


class _LowerBlocks(Mutator):
    def visit_BlockRealize(self, r: BlockRealize):
        block: Block = r.block
        vmap = {iv.var: val for iv, val in zip(block.iter_vars, r.iter_values)}
        body = self.visit(block.body)
        init = self.visit(block.init) if block.init is not None else None
        if init is not None:
            conds = [val == iv.dom.min for iv, val in zip(block.iter_vars, r.iter_values)
                     if iv.iter_type == IterType.REDUCE]
            cond = logical_and(*conds) if conds else IntImm(1, "bool")
            if isinstance(cond, IntImm):
                stmt = seq(init, body) if cond.value else body
            else:
                stmt = seq(IfThenElse(cond, init), body)
        else:
            stmt = body
        stmt = substitute(stmt, vmap) if vmap else stmt
        if block.match_buffers:
            stmt = _apply_match_buffers(stmt, block.match_buffers, vmap)
        pred = r.predicate
        if not (isinstance(pred, IntImm) and pred.value):
            stmt = IfThenElse(substitute(pred, vmap) if vmap else pred, stmt)
        for buf in reversed(block.alloc_buffers):
            stmt = Allocate(buf, stmt)
        return stmt

    def visit_Block(self, b: Block):  # a bare block (no realize): only its body matters
        stmt = self.visit(b.body)
        for buf in reversed(b.alloc_buffers):
            stmt = Allocate(buf, stmt)
        return stmt


class _MatchBuffers(Mutator):
    """Rewrite accesses to a matched view into accesses to its source region."""

    def __init__(self, views):
        self.views = views  # id(view buffer) -> (source buffer, mins, kept dims)

    def _remap(self, buf, indices):
        hit = self.views.get(id(buf))
        if hit is None:
            return None
        src, mins, kept = hit
        full = list(mins)
        for d, idx in zip(kept, indices):
            full[d] = vadd(mins[d], idx)  # idx may be a vector (a Ramp of an intrinsic's vector load)
        return src, tuple(full)

    def visit_BufferLoad(self, e):
        e = self.generic_visit(e)
        m = self._remap(e.buffer, e.indices)
        return e if m is None else e.__class__(m[0], m[1])

    def visit_BufferStore(self, s):
        s = self.generic_visit(s)
        m = self._remap(s.buffer, s.indices)
        return s if m is None else s.__class__(m[0], s.value, m[1])


def _apply_match_buffers(stmt, match_buffers, vmap):
    views = {}
    for mb in match_buffers:
        src = mb.source
        mins = [substitute(r.min, vmap) for r in src.region]
        if len(mb.buffer.shape) == len(src.region):
            kept = list(range(len(src.region)))
        else:  # a lower-rank view: dimensions of extent 1 are dropped from the front
            drop = len(src.region) - len(mb.buffer.shape)
            kept = [d for d in range(len(src.region))][drop:]
        views[id(mb.buffer)] = (src.buffer, mins, kept)
    return _MatchBuffers(views).visit(stmt)


def lower_blocks(func: PrimFunc) -> PrimFunc:
    """Replace blocks by plain loops (iteration variables substituted, init and predicates as ``if``).

    >>> import workbench as wb
    >>> from workbench import te
    >>> A = te.placeholder((4,), "float32", name="A")
    >>> B = te.compute((4,), lambda i: A[i] + 1.0, name="B")
    >>> low = lower_blocks(wb.create_prim_func([A, B]))
    """
    return record_dim_aligns(func).with_body(_LowerBlocks().visit(func.body))


__all__ = ["lower_blocks"]
