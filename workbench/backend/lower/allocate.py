"""Plan the storage of intermediate buffers.

Every ``Allocate`` gets 64-byte alignment. Buffers of constant size up to
``STACK_LIMIT`` bytes live on the stack (an ``alloca`` at the start of the
function, or of the parallel loop body that uses it); larger or symbolic-size
buffers are taken from the heap (``aligned_alloc``) and freed when their scope
ends, also when a run-time check fails. The decision is recorded in the
function attribute ``"storage"`` (buffer name -> ``"stack"`` or ``"heap"``) so
the lowered script shows it.
"""
from __future__ import annotations

from ...ir.dtype import bits_of
from ...ir.expr import as_int
from ...ir.function import PrimFunc
from ...ir.functor import Mutator
from ...ir.stmt import Allocate

STACK_LIMIT = 64 * 1024
ALIGN = 64


def storage_of(buf) -> str:
    """``"stack"`` or ``"heap"`` for an allocated (flat) buffer."""
    n = as_int(buf.shape[0]) if buf.shape else 1
    if n is None:
        return "heap"
    return "stack" if n * max(1, bits_of(buf.dtype) // 8) <= STACK_LIMIT else "heap"


def alloc_bytes(buf):
    """Bytes of a flat buffer as (constant or None, element size)."""
    return max(1, bits_of(buf.dtype) // 8)


class _Plan(Mutator):
    def __init__(self):
        self.storage: dict[str, str] = {}

    def visit_Allocate(self, a: Allocate):
        body = self.visit(a.body)
        buf = a.buffer if a.buffer.align >= ALIGN else a.buffer.replace(align=ALIGN)
        if buf is not a.buffer:
            from ...ir.functor import substitute

            body = substitute(body, {}, {a.buffer: buf})
        self.storage[buf.name] = storage_of(buf)
        return Allocate(buf, body)


def plan_allocations(func: PrimFunc) -> PrimFunc:
    """Align allocations to 64 bytes and choose stack or heap for each.

    >>> from workbench.ir import Buffer, Var, BufferStore, PrimFunc, Allocate
    >>> T = Buffer("T", (16,), "float32"); a = Var("a", "handle")
    >>> f = plan_allocations(PrimFunc([], {}, Allocate(T, BufferStore(T, 1.0, [0]))))
    >>> dict(f.attrs["storage"]), f.body.buffer.align
    ({'T': 'stack'}, 64)
    """
    p = _Plan()
    body = p.visit(func.body)
    out = func.with_body(body)
    if p.storage:
        out = out.with_attr("storage", dict(p.storage))
    return out


__all__ = ["plan_allocations", "storage_of", "STACK_LIMIT", "ALIGN"]
