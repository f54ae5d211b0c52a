"""Caches indexed by a block's iteration variables: ``reindex``, ``reindex_cache_read``, ``reindex_cache_write``.

``reindex`` gives a buffer access of a block its own copy of the buffer laid out as the
block's iteration space (``A[vk, vi]`` read by a block over ``vi, vk`` becomes
``A_reindex[vi, vk]``), with a block copying between the two; ``reindex_cache_read`` /
``reindex_cache_write`` do the same into a cache in a storage scope whose layout is an
index map of the iteration variables. As in TVM, the block must access the buffer at one
single point (the same indices everywhere).
"""
from __future__ import annotations

from ..ir.arith import Analyzer
from ..ir.arith.linear import linear
from ..ir.buffer import Buffer
from ..ir.expr import BufferLoad, IntImm, Max, Min, PrimExpr, Range, Var, as_int, logical_and
from ..ir.functor import Mutator, Visitor, collect_vars, substitute
from ..ir.stmt import (
    Block,
    BlockRealize,
    BufferStore,
    For,
    ForKind,
    IfThenElse,
    IterType,
    IterVar,
)
from ..ir.structural import structural_equal
from .caching import (
    _buf_name,
    _check_scope,
    _conjuncts,
    _implied_by_domain,
    _in_nest,
    _on_iters,
    _position,
    _region_buffer,
    _top_stmt,
    _with_copies,
)
from .errors import DependenceError, NotAChainError, ScheduleArgumentError
from .layout import first_collision, index_map_outputs
from .legality import buffer_users, loads_buffer, refresh_regions
from .loops import _size_vars, loop_names
from .primitive import primitive
from .state import Outcome
from .tree import fresh_name


class _Accesses(Visitor):
    """Every load and store of one buffer in a block (and whether one sits in a nested block or a branch)."""

    def __init__(self, buf: Buffer):
        self.buf = buf
        self.indices: list[tuple] = []
        self.nested = False
        self.guarded = False
        self._branch = 0

    def visit_BufferLoad(self, n: BufferLoad):
        self.generic_visit(n)
        if n.buffer is self.buf:
            self.indices.append(n.indices)

    def visit_BufferStore(self, n: BufferStore):
        self.generic_visit(n)
        if n.buffer is self.buf:
            self.indices.append(n.indices)
            self.guarded = self.guarded or self._branch > 0

    def visit_IfThenElse(self, n: IfThenElse):
        self._branch += 1
        self.generic_visit(n)
        self._branch -= 1

    def visit_BlockRealize(self, n: BlockRealize):
        self.nested = True


def _point_indices(sch, realize: BlockRealize, buf: Buffer, what: str) -> tuple:
    """The one index tuple at which the block accesses ``buf`` (refused when there are several, or an index
    uses a variable other than the block's iteration variables and the function's sizes)."""
    blk = realize.block
    acc = _Accesses(buf)
    for part in (blk.init, blk.body):
        if part is not None:
            acc.visit(part)
    if acc.nested:
        raise ScheduleArgumentError(f"{what}: block {blk.name} has blocks inside it; it must be a leaf block",
                                    node=realize)
    if not acc.indices:
        raise ScheduleArgumentError(f"{what}: block {blk.name} does not access {buf.name} by indices", node=realize)
    first = acc.indices[0]
    for other in acc.indices[1:]:
        if not all(structural_equal(a, b) for a, b in zip(first, other)):
            raise ScheduleArgumentError(
                f"{what}: block {blk.name} accesses {buf.name} at different indices "
                f"([{', '.join(map(str, first))}] and [{', '.join(map(str, other))}]); it must access one "
                "single point", node=realize)
    allowed = {id(iv.var) for iv in blk.iter_vars} | _size_vars(sch.func)
    for v in collect_vars(first):
        if id(v) not in allowed:
            raise ScheduleArgumentError(f"{what}: the index [{', '.join(map(str, first))}] of {buf.name} in block "
                                        f"{blk.name} uses {v.name}, which is not an iteration variable of the block",
                                        node=realize)
    return first, acc.guarded


class _Redirect(Mutator):
    """Every access to ``old`` becomes an access to ``new`` at ``indices``."""

    def __init__(self, old: Buffer, new: Buffer, indices: tuple):
        self.old, self.new, self.indices = old, new, indices

    def visit_BufferLoad(self, n: BufferLoad):
        n = self.generic_visit(n)
        return BufferLoad(self.new, self.indices) if n.buffer is self.old else n

    def visit_BufferStore(self, n: BufferStore):
        n = self.generic_visit(n)
        return BufferStore(self.new, n.value, self.indices) if n.buffer is self.old else n


def _redirected(realize: BlockRealize, old: Buffer, new: Buffer, indices: tuple) -> BlockRealize:
    blk = realize.block
    rw = _Redirect(old, new, indices)
    nb = blk.replace(body=rw.visit(blk.body), init=None if blk.init is None else rw.visit(blk.init))
    return realize.replace(block=refresh_regions(nb))


def _used_iters(blk: Block, exprs) -> list[IterVar]:
    """The block's iteration variables that ``exprs`` use, in the block's order."""
    ids = {id(v) for v in collect_vars(list(exprs))}
    return [iv for iv in blk.iter_vars if id(iv.var) in ids]


def _stage(name: str, loops: list, ivs: list, values: list, predicate: PrimExpr, src: Buffer, src_idx: tuple,
           dst: Buffer, dst_idx: tuple):
    """``for loops: with block(name): dst[dst_idx] = src[src_idx]`` (``loops``: ``(var, min, extent)``)."""
    body = BufferStore(dst, BufferLoad(src, src_idx), dst_idx)
    blk = refresh_regions(Block(name, tuple(ivs), (), (), body))
    nest = BlockRealize(tuple(values), predicate, blk)
    for lv, lo, ext in reversed(loops):
        nest = For(lv, lo, ext, ForKind.SERIAL, nest)
    return nest


def _check_chain(sch, realize: BlockRealize, what: str) -> None:
    """TVM's rule for reindex: the loops between the scope and the block hold only this block."""
    loops = sch.index().loops_of(realize.block.name)
    for k, loop in enumerate(loops):
        inner = loops[k + 1] if k + 1 < len(loops) else realize
        if loop.body is not inner:
            raise NotAChainError(f"{what}: loop {loop.loop_var.name} holds more than block {realize.block.name}; "
                                 "the block must be alone under its loops", node=loop)


def _buffer_of(blk: Block, buffer, realize) -> tuple[str, Buffer]:
    if not (isinstance(buffer, tuple) and len(buffer) == 2 and buffer[0] in ("read", "write")):
        raise ScheduleArgumentError(f"cannot reindex a buffer of block {blk.name}: the buffer is given as "
                                    f"(\"read\" or \"write\", index), got {buffer!r}", node=realize)
    kind, k = buffer
    return kind, _region_buffer(blk, blk.reads if kind == "read" else blk.writes, k, kind, realize)


def _check_write_covers(sch, realize: BlockRealize, buf: Buffer, guarded: bool, what: str) -> None:
    """Refuse a write that may skip iteration points: a store under a branch, or a predicate that is not
    implied by the block's domain (the copy back would copy elements never written)."""
    blk = realize.block
    if guarded:
        raise DependenceError(f"{what}: block {blk.name} stores {buf.name} under a condition, so the copy back "
                              "would copy elements it never wrote", node=realize)
    an = Analyzer()
    loop_ids = {id(f.loop_var) for f in sch.index().loops_of(blk.name)}
    for c in _conjuncts(realize.predicate):
        if isinstance(c, IntImm) and c.value:
            continue
        cond = _on_iters(c, realize, loop_ids, an)
        if cond is None or not _implied_by_domain(cond, blk, an):
            raise DependenceError(f"{what}: block {blk.name} runs only where `{c}`, so the copy back would copy "
                                  f"elements of {buf.name} it never wrote", node=realize)


def _check_read_in_bounds(blk: Block, buf: Buffer, indices: tuple, what: str, node) -> None:
    """The copy reads ``buf`` at ``indices`` at every iteration point: refused where that may leave the buffer
    (the block itself reads there only under a condition, as a padding block's ``if_then_else`` does)."""
    an = Analyzer()
    dom = {iv.var: iv.dom for iv in blk.iter_vars}
    for dim, (e, n) in enumerate(zip(indices, buf.shape)):
        s = an.int_set(e, dom)
        if s.min is None or s.max is None or not (an.can_prove(s.min >= 0) and an.can_prove(s.max < n)):
            raise ScheduleArgumentError(
                f"{what}: index `{e}` of {buf.name} (dimension {dim}) may leave [0, {n}) over the block's "
                "iteration domain, where the block reads it only under a condition; the copy would read out of "
                "bounds", node=node)


def _loads_buffer(blk: Block, buf: Buffer) -> bool:
    """True when the block's body loads ``buf``; looked up in the body, not in ``reads``, which leaves out
    the accumulator of an update whose init was lifted out (the inner block of a blockized reduction)."""
    return loads_buffer(blk.body, buf) or any(r.buffer is buf for r in blk.reads)


def _check_no_garbage(blk: Block, buf: Buffer, realize, what: str, redo: str) -> None:
    if blk.init is None and _loads_buffer(blk, buf):
        raise DependenceError(f"{what}: block {blk.name} reads {buf.name} before writing it and has no init, so "
                              "the new buffer would start with garbage", detail=redo, node=realize)


def _single_loop(value: PrimExpr, loops: dict) -> tuple | None:
    """``(loop, offset)`` where the binding ``value`` is one of the block's loops plus a constant, else None."""
    lin = linear(value)
    if lin is None:
        return None
    terms = [v for v in lin if v is not None]
    if len(terms) != 1 or lin[terms[0]] != 1 or id(terms[0]) not in loops:
        return None
    return loops[id(terms[0])], lin.get(None, 0)


def _copied_ranges(sch, realize: BlockRealize, covered: list, refuse: bool, what: str) -> list[tuple]:
    """``(min, extent)`` of the values each covered iteration variable takes where the block runs.

    A binding that is a loop of its own plus a constant takes exactly that loop's range (a partitioned loop
    ``wb.serial(1, 2)`` covers part of the domain); any other binding must be proved to cover the domain
    from loops that start at 0, else a write is refused (``refuse``) and a read copies the whole domain."""
    blk = realize.block
    loops = {id(f.loop_var): f for f in sch.index().loops_of(blk.name)}
    binding = {id(iv.var): v for iv, v in zip(blk.iter_vars, realize.iter_values)}
    values = [binding[id(iv.var)] for iv in covered]
    uses = [[id(v) for v in collect_vars([e]) if id(v) in loops] for e in values]
    an = Analyzer()
    dom_map = {f.loop_var: Range.from_min_extent(f.min, f.extent) for f in loops.values()}
    out = []
    for k, (iv, value) in enumerate(zip(covered, values)):
        single = _single_loop(value, loops)
        shared = any(set(uses[k]) & set(u) for j, u in enumerate(uses) if j != k)
        if single is not None and not shared:
            loop, offset = single
            # cut to the axis' domain: an overshooting split's loop runs past it under the block's predicate
            low = an.simplify(Max(loop.min + offset, iv.dom.min))
            high = an.simplify(Min(loop.min + offset + loop.extent, iv.dom.min + iv.dom.extent))
            out.append((low, an.simplify(high - low)))
            continue
        s = an.int_set(value, dom_map)
        covers = (s.min is not None and s.max is not None   # None: unbounded, nothing to prove with
                  and all(an.can_prove(loops[u].min == 0) for u in uses[k]) and an.can_prove(s.min <= iv.dom.min)
                  and an.can_prove(s.max >= iv.dom.min + iv.dom.extent - 1))
        if not covers and refuse:
            raise DependenceError(f"{what}: the binding `{value}` of {iv.var.name} may not cover its domain "
                                  f"[{iv.dom.min}, {iv.dom.min + iv.dom.extent}), so the copy back would copy "
                                  "elements the block never wrote", node=realize)
        out.append((iv.dom.min, iv.dom.extent))
    return out


@primitive("caching")
def reindex(sch, block, buffer) -> Outcome:
    """Give one buffer access of a block a copy of the buffer indexed by the block's iteration variables.

    ``buffer`` is ``("read", k)`` or ``("write", k)`` (the k-th read or write region of the
    block). A read gets a new buffer ``A_reindex`` and a block before that copies
    ``A_reindex[vi, vk] = A[<the block's indices>]``; a write gets a block after that copies
    back. The new buffer has one dimension per iteration variable that the indices use, in
    the block's order. As in TVM the block must be alone under its loops and access the
    buffer at one single point; a write must also send each iteration point to its own
    element (``B[vi // 2]`` is refused: the copy back would depend on the order), and write
    every point it copies back.

    >>> import workbench as wb
    >>> from workbench import te
    >>> A = te.placeholder((3, 2), "float32", name="A")
    >>> B = te.compute((2, 3), lambda i, j: A[j, i] * 2.0, name="B")
    >>> sch = wb.Schedule(wb.create_prim_func([A, B]))
    >>> print(sch.func.script())
    @wb.prim_func
    def main(A: wb.Buffer((3, 2), "float32"), B: wb.Buffer((2, 3), "float32")):
        for i, j in wb.grid(2, 3):
            with wb.block("B"):
                v_i, v_j = wb.axis.remap("SS", [i, j])
                wb.reads(A[v_j, v_i])
                wb.writes(B[v_i, v_j])
                B[v_i, v_j] = A[v_j, v_i] * 2.0
    >>> b = sch.reindex(sch.get_block("B"), ("read", 0))
    >>> print(sch.func.script())
    @wb.prim_func
    def main(A: wb.Buffer((3, 2), "float32"), B: wb.Buffer((2, 3), "float32")):
        A_reindex = wb.alloc_buffer((2, 3), "float32")
        for ax0, ax1 in wb.grid(2, 3):
            with wb.block("A_reindex"):
                v0, v1 = wb.axis.remap("SS", [ax0, ax1])
                wb.reads(A[v1, v0])
                wb.writes(A_reindex[v0, v1])
                A_reindex[v0, v1] = A[v1, v0]
        for i, j in wb.grid(2, 3):
            with wb.block("B"):
                v_i, v_j = wb.axis.remap("SS", [i, j])
                wb.reads(A_reindex[v_i, v_j])
                wb.writes(B[v_i, v_j])
                B[v_i, v_j] = A_reindex[v_i, v_j] * 2.0
    """
    realize, anc = sch.block_of(block)
    blk = realize.block
    kind, buf = _buffer_of(blk, buffer, realize)
    what = f"cannot reindex {buf.name} of block {blk.name}"
    _check_chain(sch, realize, what)
    indices, guarded = _point_indices(sch, realize, buf, what)
    writes = any(r.buffer is buf for r in blk.writes)
    if kind == "read" and writes:
        raise ScheduleArgumentError(f"{what}: the block also writes {buf.name}; reindex its write, "
                                    f"(\"write\", k), which covers the read too", node=realize)
    covered = _used_iters(blk, indices)
    if kind == "read":
        _check_read_in_bounds(blk, buf, indices, what, realize)
    if kind == "write":
        _check_no_garbage(blk, buf, realize, what, "reindex the read and the write separately is not possible "
                                                   "either; write the update with an init (wb.init()).")
        _check_write_covers(sch, realize, buf, guarded, what)
        _check_one_point_each(covered, indices, what, realize)
    idx = sch.index()
    sc = idx.scope_of(anc)
    taken = set(idx.blocks) | _buffer_names(sch)
    rname = fresh_name(f"{buf.name}_reindex", taken)
    rbuf = Buffer(rname, tuple(iv.dom.min + iv.dom.extent if as_int(iv.dom.min) != 0 else iv.dom.extent
                              for iv in covered), buf.dtype, scope=buf.scope)
    names = loop_names(sch.func)
    loops, ivs, values = [], [], []
    ranges = _copied_ranges(sch, realize, covered, kind == "write", what)
    for k, (iv, (lo, extent)) in enumerate(zip(covered, ranges)):
        lv = Var(fresh_name(f"ax{k}", names), iv.var.dtype)
        names.add(lv.name)
        loops.append((lv, IntImm(0, lv.dtype), extent))
        ivs.append(IterVar(Var(f"v{k}", iv.var.dtype), iv.dom, IterType.SPATIAL))
        values.append(lv if as_int(lo) == 0 else lv + lo)
    own = tuple(iv.var for iv in ivs)
    theirs = tuple(substitute(e, {iv.var: v for iv, v in zip(covered, own)}) for e in indices)
    true = IntImm(1, "bool")
    if kind == "read":
        nest = _stage(rname, loops, ivs, values, true, buf, theirs, rbuf, own)
    else:
        nest = _stage(rname, loops, ivs, values, true, rbuf, own, buf, theirs)
    new_real = _redirected(realize, buf, rbuf, tuple(iv.var for iv in covered))
    top = _top_stmt(anc, sc, realize)
    at = _position(sc, top) + (1 if kind == "write" else 0)
    func = _with_copies(sch, sc, {id(realize): new_real}, [(at, nest)], rbuf)
    return Outcome(func=func, outputs=("block", rname))


def _buffer_names(sch) -> set[str]:
    idx = sch.index()
    names = {b.name for b in sch.func.buffer_map.values()}
    for n in idx.order:
        names |= {b.name for b in idx.block(n).alloc_buffers}
    return names


def _check_one_point_each(covered: list, outs, what: str, node) -> None:
    """Refuse a map from the iteration variables ``covered`` that sends two points to one element."""
    exts = [as_int(iv.dom.extent) for iv in covered]
    if any(e is None for e in exts):
        if all(isinstance(e, Var) for e in outs) and len({id(e) for e in outs}) == len(outs):
            return  # distinct iteration variables: one to one whatever their extents
        raise ScheduleArgumentError(f"{what}: the iteration domain is symbolic, so the map "
                                    f"[{', '.join(map(str, outs))}] cannot be shown one to one", node=node)
    mins = [iv.dom.min for iv in covered]
    shifted = [substitute(e, {iv.var: iv.var + m for iv, m in zip(covered, mins) if as_int(m) != 0}) for e in outs]
    bad = first_collision([iv.var for iv in covered], exts, shifted)
    if bad is not None:
        raise ScheduleArgumentError(f"{what}: [{', '.join(map(str, outs))}] sends two iteration points to one "
                                    f"element ({bad})", node=node)


# reindex_cache_read / reindex_cache_write --------------------------------------------------------

def _cache_layout(sch, realize: BlockRealize, buf: Buffer, index_map, indices: tuple, what: str):
    """The cache's indices (the index map of the block's iteration variables), its shape, and the iteration
    variables the copy runs over (those the buffer's indices use, which must be those the map uses)."""
    blk = realize.block
    vars_, outs = index_map_outputs(index_map, blk.iter_vars, what, realize)
    new_idx = tuple(substitute(e, {v: iv.var for v, iv in zip(vars_, blk.iter_vars)}) for e in outs)
    old_used, new_used = _used_iters(blk, indices), _used_iters(blk, new_idx)
    if [id(iv) for iv in old_used] != [id(iv) for iv in new_used]:
        extra = [iv.var.name for iv in old_used if iv not in new_used] or [iv.var.name for iv in new_used
                                                                          if iv not in old_used]
        where_ = "the buffer's indices" if any(iv not in new_used for iv in old_used) else "the index map"
        raise ScheduleArgumentError(
            f"{what}: iteration variable {extra[0]} appears in {where_} but not in the other "
            f"([{', '.join(map(str, indices))}] and [{', '.join(map(str, new_idx))}]); they must use the same "
            "iteration variables", node=realize)
    _check_one_point_each(new_used, new_idx, what, realize)
    return new_idx, _cache_shape(new_idx, blk, what, realize), new_used


def _cache_shape(new_idx: tuple, blk: Block, what: str, node) -> tuple:
    from ..ir.arith.bound import const_bounds

    doms = {iv.var: iv for iv in blk.iter_vars}
    const_dom = {iv.var: (as_int(iv.dom.min), as_int(iv.dom.min) + as_int(iv.dom.extent) - 1)
                 for iv in blk.iter_vars if as_int(iv.dom.min) is not None and as_int(iv.dom.extent) is not None}
    shape = []
    for e in new_idx:
        if isinstance(e, Var) and e in doms and id(e) not in {id(v) for v in const_dom}:
            shape.append(doms[e].dom.min + doms[e].dom.extent)
            continue
        b = const_bounds(e, const_dom)
        if b is None or b[0] < 0:
            raise ScheduleArgumentError(f"{what}: the cache index `{e}` "
                                        f"{'can be negative' if b else 'cannot be bounded'}", node=node)
        shape.append(IntImm(b[1] + 1, e.dtype))
    return tuple(shape)


def _copied_loops(sch, realize: BlockRealize, used: list, write: bool, what: str):
    """The loops, iteration variables, bindings and predicate of the cache stage: the block's own loops whose
    variables the bindings of ``used`` mention, fresh copies of them, in order (TVM's cache stage)."""
    blk = realize.block
    loops = sch.index().loops_of(blk.name)
    values = {id(iv): val for iv, val in zip(blk.iter_vars, realize.iter_values)}
    needed = {id(v) for iv in used for v in collect_vars(values[id(iv)])}
    kept = [f for f in loops if id(f.loop_var) in needed]
    vmap = {f.loop_var: Var(f.loop_var.name, f.loop_var.dtype) for f in kept}
    sizes = _size_vars(sch.func)
    out_loops = []
    for f in kept:
        free = [v for v in collect_vars([f.min, f.extent]) if id(v) not in sizes and v not in vmap]
        if free:
            raise ScheduleArgumentError(f"{what}: the range of loop {f.loop_var.name} depends on {free[0].name}, "
                                        "a loop the cache stage does not copy", node=f)
        out_loops.append((vmap[f.loop_var], substitute(f.min, vmap), substitute(f.extent, vmap)))
    conds = []
    for c in _conjuncts(realize.predicate):
        if isinstance(c, IntImm) and c.value:
            continue
        if all(v in vmap or id(v) in sizes for v in collect_vars(c)):
            conds.append(substitute(c, vmap))
        elif write:
            raise DependenceError(f"{what}: block {blk.name} runs only where `{c}`, which depends on loops the "
                                  "copy back does not run over", node=realize)
    ivs = [IterVar(Var(iv.var.name, iv.var.dtype), iv.dom, IterType.SPATIAL) for iv in used]
    binds = [substitute(values[id(iv)], vmap) for iv in used]
    pred = logical_and(*conds) if conds else IntImm(1, "bool")
    return out_loops, ivs, binds, pred


def _reindex_cache(sch, block, index: int, storage_scope: str, index_map, kind: str) -> Outcome:
    realize, anc = sch.block_of(block)
    blk = realize.block
    prim = f"reindex_cache_{kind}"
    _check_scope(storage_scope, f"cannot {prim} for block {blk.name}")
    buf = _region_buffer(blk, blk.reads if kind == "read" else blk.writes, index, kind, realize)
    what = f"cannot {prim} {buf.name} of block {blk.name}"
    indices, guarded = _point_indices(sch, realize, buf, what)
    idx = sch.index()
    sc = idx.scope_of(anc)
    top = _top_stmt(anc, sc, realize)
    writers, readers = buffer_users(idx, buf)
    if kind == "read":
        _check_read_in_bounds(blk, buf, indices, what, realize)
        at = _read_position(idx, sc, top, buf, blk, writers, what)
        for ibuf in _buffers_loaded_in(indices):
            at = max(at, _index_read_position(idx, sc, top, ibuf, blk, what))
    else:
        _check_only_writer(idx, sc, top, blk, buf, writers, readers, realize, what)
        _check_no_garbage(blk, buf, realize, what, f"sch.cache_inplace(block, k, {storage_scope!r}) caches a buffer "
                                                   "updated in place.")
        _check_write_covers(sch, realize, buf, guarded, what)
        at = _position(sc, top) + 1
    new_idx, shape, used = _cache_layout(sch, realize, buf, index_map, indices, what)
    cname = _buf_name(buf.name, storage_scope, sch.func)
    cbuf = Buffer(cname, shape, buf.dtype, scope=storage_scope)
    bname = fresh_name(cname, idx.blocks)
    loops, ivs, binds, pred = _copied_loops(sch, realize, used, kind == "write", what)
    vmap = {iv.var: niv.var for iv, niv in zip(used, ivs)}
    old_i, new_i = tuple(substitute(e, vmap) for e in indices), tuple(substitute(e, vmap) for e in new_idx)
    if kind == "read":
        nest = _stage(bname, loops, ivs, binds, pred, buf, old_i, cbuf, new_i)
    else:
        nest = _stage(bname, loops, ivs, binds, pred, cbuf, new_i, buf, old_i)
    new_real = _redirected(realize, buf, cbuf, new_idx)
    func = _with_copies(sch, sc, {id(realize): new_real}, [(at, nest)], cbuf)
    return Outcome(func=func, outputs=("block", bname))


def _read_position(idx, sc, top, buf: Buffer, blk: Block, writers: list, what: str) -> int:
    """Where the copy of a read goes: after the last block of the scope writing the buffer, else first."""
    if any(r.buffer is buf for r in blk.writes):
        raise ScheduleArgumentError(f"{what}: the block also writes {buf.name}, and a read cache would not see "
                                    "its own updates", detail="cache_inplace caches a buffer updated in place.",
                                    node=idx.blocks[blk.name][0])
    in_scope = [w for w in writers if w in idx.blocks_in_scope(sc)]
    if in_scope:
        last = idx.blocks[in_scope[-1]]
        if _position(sc, top) < _position(sc, _top_stmt(last[1], sc, last[0])):
            raise DependenceError(f"{what}: block {blk.name} runs before block {in_scope[-1]} writes {buf.name}, "
                                  "and the copy can only go after the last writer, too late for it",
                                  detail="cache_read has the same rule.", node=last[0])
    return _after_writers(idx, sc, top, in_scope, f"{what}: block {{w}} writes {buf.name} in the same loop nest, "
                          "so a copy cannot go between them")


def _buffers_loaded_in(indices) -> list[Buffer]:
    """The buffers an index reads (``ids_shared`` in ``table[min(max(ids_shared[v0], 0), 19), v1]``)."""
    from ..ir.functor import post_order_visit

    found: dict = {}
    post_order_visit(indices, lambda n: found.setdefault(id(n.buffer), n.buffer) if isinstance(n, BufferLoad) else None)
    return list(found.values())


def _index_read_position(idx, sc, top, ibuf: Buffer, blk: Block, what: str) -> int:
    """The first place a copy that loads ``ibuf`` in its indices can go: after the blocks of the scope writing
    ``ibuf`` before the block (take's ``table[ids_shared[v0], v1]`` is copied after ``ids_shared`` is filled)."""
    writers, _ = buffer_users(idx, ibuf)
    before = [w for w in writers if w in idx.blocks_in_scope(sc) and w != blk.name
              and _position(sc, _top_stmt(idx.blocks[w][1], sc, idx.blocks[w][0])) <= _position(sc, top)]
    return _after_writers(idx, sc, top, before, f"{what}: the read is indexed by {ibuf.name}, which block {{w}} "
                          "writes in the same loop nest, so the copy cannot go after it and before the block")


def _after_writers(idx, sc, top, writers: list[str], same_nest: str) -> int:
    """The position in scope ``sc`` just after the top-level statement holding the last of ``writers`` (0 when
    none); refused, with ``same_nest`` naming the writer, where that statement is ``top``, the block's own nest."""
    if not writers:
        return 0
    last = idx.blocks[writers[-1]]
    wtop = _top_stmt(last[1], sc, last[0])
    if wtop is top:
        raise DependenceError(same_nest.format(w=writers[-1]), detail="cache first, then move blocks with compute_at.",
                              node=last[0])
    return _position(sc, wtop) + 1


def _check_only_writer(idx, sc, top, blk: Block, buf: Buffer, writers: list, readers: list, realize,
                       what: str) -> None:
    others = [w for w in writers if w != blk.name]
    if others:
        raise ScheduleArgumentError(f"{what}: block {others[0]} also writes it", node=realize)
    for r in readers:
        if r != blk.name and _in_nest(idx, sc, top, r):
            raise DependenceError(f"{what}: block {r} reads it in the same loop nest, so a copy back after that "
                                  "nest would come too late", detail="cache first, then move blocks with compute_at.",
                                  node=idx.blocks[r][0])


@primitive("caching")
def reindex_cache_read(sch, block, read_buffer_index: int, storage_scope: str, index_map) -> Outcome:
    """``cache_read`` for this block alone, with the cache laid out as ``index_map`` of its iteration variables.

    The block must read the buffer at one single point (as in TVM); the cache element of
    iteration point ``v`` is ``index_map(*v)``, and the map must use exactly the iteration
    variables that the read uses, sending different points to different elements. The copy
    block runs over the block's own loops that bind those variables (dropping the others),
    placed like ``cache_read``'s. Returns the copy block.

    >>> import workbench as wb
    >>> from workbench import te
    >>> A = te.placeholder((2, 3), "float32", name="A")
    >>> B = te.compute((2, 3), lambda i, j: A[i, j] * 2.0, name="B")
    >>> sch = wb.Schedule(wb.create_prim_func([A, B]))
    >>> print(sch.func.script())
    @wb.prim_func
    def main(A: wb.Buffer((2, 3), "float32"), B: wb.Buffer((2, 3), "float32")):
        for i, j in wb.grid(2, 3):
            with wb.block("B"):
                v_i, v_j = wb.axis.remap("SS", [i, j])
                wb.reads(A[v_i, v_j])
                wb.writes(B[v_i, v_j])
                B[v_i, v_j] = A[v_i, v_j] * 2.0
    >>> c = sch.reindex_cache_read(sch.get_block("B"), 0, "local", lambda i, j: (j, i))
    >>> print(sch.func.script())
    @wb.prim_func
    def main(A: wb.Buffer((2, 3), "float32"), B: wb.Buffer((2, 3), "float32")):
        A_local = wb.alloc_buffer((3, 2), "float32", scope="local")
        for i, j in wb.grid(2, 3):
            with wb.block("A_local"):
                v_i, v_j = wb.axis.remap("SS", [i, j])
                wb.reads(A[v_i, v_j])
                wb.writes(A_local[v_j, v_i])
                A_local[v_j, v_i] = A[v_i, v_j]
        for i, j in wb.grid(2, 3):
            with wb.block("B"):
                v_i, v_j = wb.axis.remap("SS", [i, j])
                wb.reads(A_local[v_j, v_i])
                wb.writes(B[v_i, v_j])
                B[v_i, v_j] = A_local[v_j, v_i] * 2.0
    """
    return _reindex_cache(sch, block, read_buffer_index, storage_scope, index_map, "read")


@primitive("caching")
def reindex_cache_write(sch, block, write_buffer_index: int, storage_scope: str, index_map) -> Outcome:
    """``cache_write`` with the cache laid out as ``index_map`` of the block's iteration variables.

    The block must be the only writer of the buffer, write it at one single point at every
    iteration point it copies back (no condition around the store), and the map must use
    exactly the iteration variables that the write uses, sending different points to
    different elements. The copy back runs over the block's own loops that bind those
    variables, right after the block's loop nest. Returns the copy block.

    >>> import workbench as wb
    >>> from workbench import te
    >>> A = te.placeholder((2, 3), "float32", name="A")
    >>> B = te.compute((2, 3), lambda i, j: A[i, j] * 2.0, name="B")
    >>> sch = wb.Schedule(wb.create_prim_func([A, B]))
    >>> print(sch.func.script())
    @wb.prim_func
    def main(A: wb.Buffer((2, 3), "float32"), B: wb.Buffer((2, 3), "float32")):
        for i, j in wb.grid(2, 3):
            with wb.block("B"):
                v_i, v_j = wb.axis.remap("SS", [i, j])
                wb.reads(A[v_i, v_j])
                wb.writes(B[v_i, v_j])
                B[v_i, v_j] = A[v_i, v_j] * 2.0
    >>> c = sch.reindex_cache_write(sch.get_block("B"), 0, "local", lambda i, j: (j, i))
    >>> print(sch.func.script())
    @wb.prim_func
    def main(A: wb.Buffer((2, 3), "float32"), B: wb.Buffer((2, 3), "float32")):
        B_local = wb.alloc_buffer((3, 2), "float32", scope="local")
        for i, j in wb.grid(2, 3):
            with wb.block("B"):
                v_i, v_j = wb.axis.remap("SS", [i, j])
                wb.reads(A[v_i, v_j])
                wb.writes(B_local[v_j, v_i])
                B_local[v_j, v_i] = A[v_i, v_j] * 2.0
        for i, j in wb.grid(2, 3):
            with wb.block("B_local"):
                v_i, v_j = wb.axis.remap("SS", [i, j])
                wb.reads(B_local[v_j, v_i])
                wb.writes(B[v_i, v_j])
                B[v_i, v_j] = B_local[v_j, v_i]
    """
    return _reindex_cache(sch, block, write_buffer_index, storage_scope, index_map, "write")


__all__ = ["reindex", "reindex_cache_read", "reindex_cache_write"]
