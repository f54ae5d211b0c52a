"""Layout: ``transform_layout`` rewrites a buffer's shape and every access to it."""
from __future__ import annotations

import inspect

from ..ir.buffer import Buffer
from ..ir.expr import BufferLoad, IntImm, PrimExpr, Var, as_int, convert
from ..ir.functor import Mutator, collect_vars, substitute
from ..ir.stmt import Block, BlockRealize, BufferStore, For, ForKind, IterType, IterVar, SeqStmt, seq
from .bounds import const_bounds
from .errors import ScheduleArgumentError
from .legality import allocating_block, refresh_regions
from .loops import loop_names
from .state import Outcome
from .trace import IndexMapText
from .tree import Index, fresh_name, replace_many


def _resolve_buffer(sch, block, buffer):
    realize, anc = sch.block_of(block)
    blk = realize.block
    if isinstance(buffer, str):
        for r in tuple(blk.reads) + tuple(blk.writes):
            if r.buffer.name == buffer:
                return realize, r.buffer
        raise ScheduleArgumentError(f"block {blk.name} accesses no buffer named {buffer!r}", node=realize)
    if not (isinstance(buffer, tuple) and len(buffer) == 2 and buffer[0] in ("read", "write")):
        raise ScheduleArgumentError(f"transform_layout: the buffer is given as (\"read\" or \"write\", index) or by name,"
                                    f" got {buffer!r}", node=realize)
    kind, k = buffer
    regions = blk.reads if kind == "read" else blk.writes
    if not isinstance(k, int) or not (0 <= k < len(regions)):
        raise ScheduleArgumentError(f"block {blk.name} has no {kind} buffer number {k!r}; it has {len(regions)}",
                                    node=realize)
    return realize, regions[k].buffer


def _map_of(index_map, ndim: int, buf: Buffer, realize):
    if isinstance(index_map, IndexMapText):
        index_map = index_map.fn
    if not callable(index_map):
        raise ScheduleArgumentError(f"transform_layout needs a function such as lambda i, j: (j // 16, i, j % 16), "
                                    f"got {index_map!r}", node=realize)
    try:
        names = list(inspect.signature(index_map).parameters)
    except (TypeError, ValueError):
        names = [f"i{k}" for k in range(ndim)]
    if len(names) != ndim:
        raise ScheduleArgumentError(f"the index map takes {len(names)} indices but buffer {buf.name} has {ndim} "
                                    "dimensions", node=realize)
    vars_ = [Var(n, buf.shape[k].dtype) for k, n in enumerate(names)]
    out = index_map(*vars_)
    if not isinstance(out, (tuple, list)):
        out = (out,)
    out = tuple(convert(e) for e in out)
    return vars_, out


def _text(vars_, outs) -> str:
    body = ", ".join(str(e) for e in outs)
    if len(outs) == 1:
        body += ","
    return f"lambda {', '.join(v.name for v in vars_)}: ({body})"


class _Rewrite(Mutator):
    def __init__(self, old: Buffer, new: Buffer, fn):
        self.old, self.new, self.fn = old, new, fn

    def visit_Buffer(self, b):
        return self.new if b is self.old else b

    def visit_BufferLoad(self, n: BufferLoad):
        idx = tuple(self.visit(i) for i in n.indices)
        if n.buffer is self.old:
            return BufferLoad(self.new, self.fn(idx))
        return n if all(a is b for a, b in zip(idx, n.indices)) else n.replace(indices=idx, dtype=None)

    def visit_BufferStore(self, n: BufferStore):
        value = self.visit(n.value)
        idx = tuple(self.visit(i) for i in n.indices)
        if n.buffer is self.old:
            return BufferStore(self.new, value, self.fn(idx))
        if value is n.value and all(a is b for a, b in zip(idx, n.indices)):
            return n
        return BufferStore(n.buffer, value, idx)

    def visit_Block(self, b: Block):
        body = self.visit(b.body)
        init = None if b.init is None else self.visit(b.init)
        allocs = tuple(self.visit_Buffer(x) for x in b.alloc_buffers)
        touches = any(r.buffer is self.old for r in tuple(b.reads) + tuple(b.writes))
        nb = b.replace(body=body, init=init, alloc_buffers=allocs)
        if touches:
            nb = refresh_regions(nb)
        return nb


def transform_layout(sch, block, buffer, index_map, pad_value=None) -> Outcome:
    """Store a buffer in a new layout: element ``[i, j]`` moves to ``index_map(i, j)``.

    Every access to the buffer is rewritten. On a function parameter this changes the
    function's signature (the caller passes the array in the new layout). Where the new
    shape has more elements than the old (padding), ``pad_value`` fills them.

    Before::

        B = wb.alloc_buffer((64, 64))
        ... B[vi, vj] = A[vi, vj] * 2.0 ...
        ... C[vi, vj] = B[vi, vj] + 1.0 ...

    ``sch.transform_layout(b, ("write", 0), lambda i, j: (j // 16, i, j % 16))`` gives::

        B = wb.alloc_buffer((4, 64, 16))
        ... B[vj // 16, vi, vj % 16] = A[vi, vj] * 2.0 ...
        ... C[vi, vj] = B[vj // 16, vi, vj % 16] + 1.0 ...
    """
    realize, buf = _resolve_buffer(sch, block, buffer)
    vars_, outs = _map_of(index_map, len(buf.shape), buf, realize)
    dom = {}
    for v, s in zip(vars_, buf.shape):
        e = as_int(s)
        if e is not None:
            dom[v] = (0, e - 1)
    new_shape = []
    for k, e in enumerate(outs):
        if isinstance(e, Var) and e in vars_ and as_int(buf.shape[vars_.index(e)]) is None:
            new_shape.append(buf.shape[[n for n, v in enumerate(vars_) if v is e][0]])
            continue
        b = const_bounds(e, dom)
        if b is None:
            raise ScheduleArgumentError(f"cannot transform the layout of {buf.name}: the size of new dimension {k} "
                                        f"(`{e}`) cannot be bounded", node=realize)
        if b[0] < 0:
            raise ScheduleArgumentError(f"cannot transform the layout of {buf.name}: new dimension {k} (`{e}`) "
                                        "can be negative", node=realize)
        new_shape.append(IntImm(b[1] + 1, e.dtype))
    old_n = new_n = 1
    for s in buf.shape:
        old_n = old_n * as_int(s) if as_int(s) is not None and old_n is not None else None
    for s in new_shape:
        new_n = new_n * as_int(s) if as_int(s) is not None and new_n is not None else None
    if old_n is not None and new_n is not None and new_n < old_n:
        raise ScheduleArgumentError(f"cannot transform the layout of {buf.name}: the new shape "
                                    f"{tuple(as_int(s) for s in new_shape)} has fewer elements than the old one, so "
                                    "the map cannot be one-to-one", node=realize)
    new_buf = Buffer(buf.name, tuple(new_shape), buf.dtype, scope=buf.scope)

    def fn(idx):
        return tuple(substitute(e, dict(zip(vars_, idx))) for e in outs)

    rw = _Rewrite(buf, new_buf, fn)
    func = sch.func
    body = rw.visit(func.body)
    bmap = {p: (new_buf if b is buf else b) for p, b in func.buffer_map.items()}
    func = func.replace(body=body, buffer_map=type(func.buffer_map)(bmap))
    if pad_value is not None and old_n is not None and new_n is not None and new_n > old_n:
        func = _fill(func, new_buf, pad_value)
    return Outcome(func=func)


def _fill(func, buf: Buffer, value):
    """A block at the start of the root scope writing ``value`` into the whole buffer (its padding survives)."""
    idx = Index(func)
    root = idx.realize("root")
    taken = {v.name for v in idx.loops}
    ivs, loops = [], []
    for d, ext in enumerate(buf.shape):
        v = Var(f"v{d}", ext.dtype)
        lv = Var(fresh_name(f"ax{d}", taken), ext.dtype)
        taken.add(lv.name)
        ivs.append(IterVar(v, ext, IterType.SPATIAL))
        loops.append((lv, ext))
    vidx = tuple(iv.var for iv in ivs)
    blk = refresh_regions(Block(fresh_name(f"{buf.name}_pad", idx.blocks), tuple(ivs), (), (),
                                BufferStore(buf, convert(value, buf.dtype), vidx)))
    nest = BlockRealize(tuple(lv for lv, _ in loops), IntImm(1, "bool"), blk)
    for lv, ext in reversed(loops):
        nest = For(lv, IntImm(0, ext.dtype), ext, ForKind.SERIAL, nest)
    body = root.block.body
    items = list(body.seq) if isinstance(body, SeqStmt) else [body]
    new_root = root.replace(block=root.block.replace(body=seq(nest, *items)))
    return replace_many(func, {id(root): new_root})
