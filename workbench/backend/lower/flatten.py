"""Flatten multi-dimensional buffer accesses to one-dimensional ones.

``A[i, j]`` of a ``(n, 64)`` buffer becomes ``A_flat[i * 64 + j]`` (plus the
buffer's ``elem_offset``, and with its ``strides`` when it has explicit ones).

Before::

    C[i, j] = A[i, j] + 1.0

After::

    C[i * 64 + j] = A[i * 64 + j] + 1.0
"""
from __future__ import annotations

from ...ir import expr as E
from ...ir.buffer import Buffer
from ...ir.function import PrimFunc
from ...ir.functor import Mutator
from ...ir.stmt import Allocate, BufferStore
from .vecexpr import vadd, vmul


def flat_index(buf: Buffer, indices) -> E.PrimExpr:
    """The 1-D element index of ``buf[indices]``: ``elem_offset + sum(index_k * stride_k)``."""
    strides = buf.compact_strides()
    out = buf.elem_offset
    for i, s in zip(indices, strides):
        out = vadd(out, vmul(i, _as(s, i)))
    if not buf.shape:
        out = E.convert(0) if isinstance(out, E.IntImm) else out
    return out


def _as(s, like):
    """A stride in the index dtype (index dtypes may be int64)."""
    from ...ir.dtype import element_of

    d = element_of(like.dtype)
    if s.dtype == d:
        return s
    return E.IntImm(s.value, d) if isinstance(s, E.IntImm) else E.cast(s, d)


def flat_size(buf: Buffer) -> E.PrimExpr:
    """Number of elements a buffer spans (its shape's product for compact buffers)."""
    if buf.strides:
        out: E.PrimExpr = E.IntImm(1)
        for d, s in zip(buf.shape, buf.strides):
            out = E.add(out, E.mul(E.sub(d, 1), s))
        return out
    out = E.IntImm(1)
    for d in buf.shape:
        out = E.mul(out, d)
    return out


class _Flatten(Mutator):
    def __init__(self):
        self.flat: dict[int, Buffer] = {}

    def buffer(self, b: Buffer) -> Buffer:
        fb = self.flat.get(id(b))
        if fb is None:
            fb = Buffer(b.name, (flat_size(b),), b.dtype, (), None, b.scope, b.offset_factor, b.align)
            self.flat[id(b)] = fb
        return fb

    def visit_BufferLoad(self, e: E.BufferLoad):
        idx = tuple(self.visit(i) for i in e.indices)
        return E.BufferLoad(self.buffer(e.buffer), (flat_index(e.buffer, idx),))

    def visit_BufferStore(self, s: BufferStore):
        idx = tuple(self.visit(i) for i in s.indices)
        return BufferStore(self.buffer(s.buffer), self.visit(s.value), (flat_index(s.buffer, idx),))

    def visit_Allocate(self, a: Allocate):
        return Allocate(self.buffer(a.buffer), self.visit(a.body))


def flatten_buffers(func: PrimFunc) -> PrimFunc:
    """Rewrite every buffer access as a 1-D access with the buffer's strides and offset.

    Buffer parameters are replaced in ``buffer_map`` by their flat versions (same name).

    >>> from workbench.ir import Buffer, Var, BufferStore, PrimFunc
    >>> A = Buffer("A", (4, 8), "float32"); a = Var("a", "handle")
    >>> f = flatten_buffers(PrimFunc([a], {a: A}, BufferStore(A, 1.0, [2, 3])))
    >>> print(f.body.indices[0])
    19
    """
    m = _Flatten()
    body = m.visit(func.body)
    bmap = {p: m.buffer(b) for p, b in func.buffer_map.items()}
    return func.replace(body=body, buffer_map=bmap)


__all__ = ["flatten_buffers", "flat_index", "flat_size"]
