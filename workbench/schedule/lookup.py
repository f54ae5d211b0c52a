"""Look-ups: handles to blocks and loops (``get_block``, ``get_loops``, producers, consumers).

They change nothing in the program but are instructions of the trace, so a printed
trace can be replayed on the original program.
"""
from __future__ import annotations

import difflib

from ..ir.stmt import BlockRealize
from .errors import BlockNotFoundError, ScheduleArgumentError
from .state import Outcome
from .trace import BlockRV, LoopRV
from .tree import Index, child_blocks
from .primitive import primitive


@primitive("lookup")
def get_block(sch, name: str) -> Outcome:
    """The handle of the block called ``name``; the error lists the blocks there are."""
    if not isinstance(name, str):
        raise ScheduleArgumentError(f"get_block needs a block name (a string), got {type(name).__name__} {name!r}")
    idx = sch.index()
    if name not in idx.blocks:
        names = [n for n in idx.order if n != "root"]
        close = [n for n in names if n.lower() == name.lower()] or difflib.get_close_matches(name, names, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise BlockNotFoundError(f"there is no block named {name!r} in the program; "
                                 f"its blocks are: {', '.join(names) or 'none'}.{hint}", func=sch.func)
    return Outcome(outputs=("block", name))


@primitive("lookup")
def get_loops(sch, block) -> Outcome:
    """Handles of the loops above ``block``, outermost first, up to the enclosing block."""
    name = sch.block_of(block)[0].block.name
    return Outcome(outputs=[("loop", f.loop_var) for f in sch.index().loops_of(name)])


def _scope_and_names(sch, block) -> tuple[Index, BlockRealize, str]:
    realize, anc = sch.block_of(block)
    idx = sch.index()
    return idx, idx.scope_of(anc), realize.block.name


@primitive("lookup")
def get_child_blocks(sch, block_or_loop) -> Outcome:
    """Handles of the blocks directly inside a block or loop (not nested in another block)."""
    if isinstance(block_or_loop, LoopRV):
        node = sch.loop_of(block_or_loop)[0]
    elif isinstance(block_or_loop, BlockRV):
        node = sch.block_of(block_or_loop)[0]
    else:
        raise ScheduleArgumentError(f"get_child_blocks needs a block or loop handle, got {block_or_loop!r}")
    return Outcome(outputs=[("block", r.block.name) for r in child_blocks(node)])


def _buffers(regions) -> list:
    return [r.buffer for r in regions]


def accessed(blk, kind: str) -> set[int]:
    """Ids of the buffers a block reads (or writes): its declared regions and the accesses in its body."""
    from ..ir.expr import BufferLoad
    from ..ir.functor import post_order_visit
    from ..ir.stmt import BufferStore

    out = set(map(id, _buffers(blk.reads if kind == "read" else blk.writes)))
    cls = BufferLoad if kind == "read" else BufferStore

    def note(n):
        if isinstance(n, cls):
            out.add(id(n.buffer))

    post_order_visit(blk.body, note)
    if blk.init is not None:
        post_order_visit(blk.init, note)
    return out - set(map(id, blk.alloc_buffers))


def producers_of(idx: Index, scope, name: str) -> list[str]:
    reads = accessed(idx.block(name), "read")
    out = []
    for other in idx.blocks_in_scope(scope):
        if other == name:
            break
        if reads & accessed(idx.block(other), "write"):
            out.append(other)
    return out


def consumers_of(idx: Index, scope, name: str) -> list[str]:
    writes = accessed(idx.block(name), "write")
    out = []
    seen = False
    for other in idx.blocks_in_scope(scope):
        if other == name:
            seen = True
            continue
        if seen and writes & accessed(idx.block(other), "read"):
            out.append(other)
    return out


@primitive("lookup")
def get_producers(sch, block) -> Outcome:
    """Handles of the blocks (same scope, earlier) that write a buffer ``block`` reads."""
    idx, scope, name = _scope_and_names(sch, block)
    return Outcome(outputs=[("block", n) for n in producers_of(idx, scope, name)])


@primitive("lookup")
def get_consumers(sch, block) -> Outcome:
    """Handles of the blocks (same scope, later) that read a buffer ``block`` writes."""
    idx, scope, name = _scope_and_names(sch, block)
    return Outcome(outputs=[("block", n) for n in consumers_of(idx, scope, name)])


@primitive("lookup")
def get_output_blocks(sch, scope_block=None) -> Outcome:
    """Handles of the blocks of a scope (the root by default) that write a function parameter."""
    idx = sch.index()
    scope = idx.realize("root") if scope_block is None else sch.block_of(scope_block)[0]
    params = set(map(id, sch.func.buffer_map.values()))
    out = [n for n in idx.blocks_in_scope(scope) if params & set(map(id, _buffers(idx.block(n).writes)))]
    return Outcome(outputs=[("block", n) for n in out])
