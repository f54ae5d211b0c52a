"""Caching and storage: ``cache_read``, ``cache_write``, ``cache_inplace``, ``set_scope``, ``storage_align``.

Every scope (``global``, ``shared``, ``local``) builds for the CPU too. Cache blocks copy
the whole buffer, or exactly the box a block writes (correct for symbolic sizes too); move
them with ``compute_at`` / ``reverse_compute_at`` to copy only what a loop needs.
"""
from __future__ import annotations

from ..ir.arith import Analyzer
from ..ir.buffer import SCOPES, Buffer
from ..ir.expr import GE, GT, LE, LT, And, BufferLoad, CmpOp, FloorDiv, IntImm, PrimExpr, Var, logical_and
from ..ir.functor import collect_vars, substitute, uses_var
from ..ir.node import FrozenDict
from ..ir.stmt import (Block, BlockRealize, BufferStore, For, ForKind, IfThenElse, IterType, IterVar, SeqStmt,
                       seq)
from .errors import DependenceError, ScheduleArgumentError
from .legality import box_fits, buffer_users, refresh_regions, written_box
from .loops import loop_names
from .state import Outcome
from .tree import Index, fresh_name, replace_in_stmt, replace_many
from .primitive import primitive


def _check_scope(scope: str, what: str):
    if scope not in SCOPES:
        raise ScheduleArgumentError(f"{what}: unknown storage scope {scope!r}; expected one of {', '.join(SCOPES)}")


def _region_buffer(blk: Block, regions, k, kind: str, realize):
    if not isinstance(k, int) or isinstance(k, bool) or not (0 <= k < len(regions)):
        names = ", ".join(f"{n}: {r.buffer.name}" for n, r in enumerate(regions)) or "none"
        raise ScheduleArgumentError(f"block {blk.name} has no {kind} buffer number {k!r}; its {kind} buffers are "
                                    f"{names}", node=realize)
    return regions[k].buffer


def _copy_block(sch, name: str, src: Buffer, dst: Buffer, box=None, guard=None):
    """``for ax...: with block(name): dst[v...] = src[v...]`` over the whole buffer.

    With ``box`` (one ``(start, extent)`` per dimension) it copies only that box:
    ``dst[v0 + start0, ...] = src[v0 + start0, ...]`` for ``v`` in the box's extents.
    With ``guard`` (a function of the new block's iteration variables giving a condition)
    it copies only the elements where the condition holds.
    """
    taken = loop_names(sch.func)
    box = box or [(IntImm(0, ext.dtype), ext) for ext in src.shape]
    ivs, loops, idx = [], [], []
    for d, (start, ext) in enumerate(box):
        v = Var(f"v{d}", ext.dtype)
        lv = Var(fresh_name(f"ax{d}", taken), ext.dtype)
        taken.add(lv.name)
        ivs.append(IterVar(v, ext, IterType.SPATIAL))
        loops.append((lv, ext))
        idx.append(v if isinstance(start, IntImm) and start.value == 0 else v + start)
    idx = tuple(idx)
    body = BufferStore(dst, BufferLoad(src, idx), idx)
    if guard is not None:
        body = IfThenElse(guard([iv.var for iv in ivs]), body)
    blk = refresh_regions(Block(name, tuple(ivs), (), (), body))
    nest = BlockRealize(tuple(lv for lv, _ in loops), IntImm(1, "bool"), blk)
    for lv, ext in reversed(loops):
        nest = For(lv, IntImm(0, ext.dtype), ext, ForKind.SERIAL, nest)
    return nest


def _top_stmt(anc: tuple, scope: BlockRealize, node):
    """The statement directly in the scope's body that holds ``node``."""
    chain = list(anc) + [node]
    for k, a in enumerate(chain):
        if a is scope.block:
            return chain[k + 1] if not isinstance(chain[k + 1], SeqStmt) else chain[k + 2]
    raise AssertionError("node not under scope")


def _in_nest(idx, sc: BlockRealize, top, name: str) -> bool:
    """True when block ``name`` is directly in scope ``sc``, inside its top-level statement ``top``."""
    real, anc = idx.blocks[name]
    return idx.scope_of(anc) is sc and _top_stmt(anc, sc, real) is top


def _scope_items(sc: BlockRealize) -> list:
    body = sc.block.body
    return list(body.seq) if isinstance(body, SeqStmt) else [body]


def _position(sc: BlockRealize, top) -> int:
    """Where the top-level statement ``top`` stands in the scope's body."""
    return [k for k, s in enumerate(_scope_items(sc)) if s is top][0]


def _with_copies(sch, sc: BlockRealize, mapping: dict, inserts: list, cbuf: Buffer):
    """The function with the scope's statements rewritten by ``mapping`` (``id(realize) -> new``),
    each ``(k, nest)`` of ``inserts`` placed before the scope's k-th statement (k = its length:
    at the end), and ``cbuf`` allocated in the scope."""
    items = _scope_items(sc)
    new_items = [replace_in_stmt(s, mapping) for s in items]
    for k, nest in sorted(inserts, key=lambda kn: -kn[0]):
        new_items.insert(k, nest)
    new_sc = sc.replace(block=sc.block.replace(body=seq(*new_items), alloc_buffers=sc.block.alloc_buffers + (cbuf,)))
    return replace_many(sch.func, {id(sc): new_sc})


def _buf_name(base: str, scope: str, func) -> str:
    idx = Index(func)
    taken = {b.name for b in func.buffer_map.values()}
    for n in idx.order:
        taken |= {b.name for b in idx.block(n).alloc_buffers}
    return fresh_name(f"{base}_{scope.replace('.', '_')}", taken)


def _with_alloc(func, scope_name: str, buf: Buffer):
    idx = Index(func)
    real = idx.realize(scope_name)
    return replace_many(func, {id(real): real.replace(block=real.block.replace(
        alloc_buffers=real.block.alloc_buffers + (buf,)))})


@primitive("caching")
def cache_read(sch, block, read_buffer_index: int, scope: str, consumer_blocks=None) -> Outcome:
    """Read a buffer through a cache in ``scope``; returns the new cache block.

    Every consumer of the buffer reads the cache instead, unless ``consumer_blocks=``
    names the ones that should.

    Before::

        for i, j in wb.grid(64, 64):
            with wb.block("B"):
                vi, vj = wb.axis.remap("SS", [i, j])
                B[vi, vj] = A[vi, vj] * 2.0

    ``sch.cache_read(sch.get_block("B"), 0, "shared")`` gives::

        A_shared = wb.alloc_buffer((64, 64), scope="shared")
        for ax0, ax1 in wb.grid(64, 64):
            with wb.block("A_shared"):
                v0, v1 = wb.axis.remap("SS", [ax0, ax1])
                A_shared[v0, v1] = A[v0, v1]
        for i, j in wb.grid(64, 64):
            with wb.block("B"):
                vi, vj = wb.axis.remap("SS", [i, j])
                B[vi, vj] = A_shared[vi, vj] * 2.0
    """
    realize, anc = sch.block_of(block)
    blk = realize.block
    _check_scope(scope, f"cannot cache_read for block {blk.name}")
    buf = _region_buffer(blk, blk.reads, read_buffer_index, "read", realize)
    idx = sch.index()
    sc = idx.scope_of(anc)
    in_scope = idx.blocks_in_scope(sc)
    writers, readers = buffer_users(idx, buf)
    writers = [w for w in writers if w in in_scope]
    if consumer_blocks is None:
        targets = [r for r in readers if r in in_scope]
    else:
        targets = [sch.block_of(b)[0].block.name for b in consumer_blocks]
        for t in targets:
            if t not in readers:
                raise ScheduleArgumentError(f"cannot cache_read {buf.name}: block {t} does not read it",
                                            node=idx.realize(t))
    cname = _buf_name(buf.name, scope, sch.func)
    cbuf = Buffer(cname, buf.shape, buf.dtype, scope=scope)
    bname = fresh_name(cname, idx.blocks)
    nest = _copy_block(sch, bname, buf, cbuf)
    mapping = {}
    for t in targets:
        r = idx.realize(t)
        nb = substitute(r.block, {}, {buf: cbuf})
        mapping[id(r)] = r.replace(block=nb)
    if writers:
        last = idx.blocks[writers[-1]]
        top = _top_stmt(last[1], sc, last[0])
        at = _position(sc, top) + 1
        for t in targets:
            t_real, t_anc = idx.blocks[t]
            if _top_stmt(t_anc, sc, t_real) is top:
                raise DependenceError(
                    f"cannot cache_read {buf.name} for block {t}: it is in the same loop nest as the block "
                    f"{writers[-1]} that writes {buf.name}, so a copy of the whole buffer cannot go between them",
                    detail="cache_read first, then move blocks with compute_at.", node=t_real)
    else:
        at = 0
    func = _with_copies(sch, sc, mapping, [(at, nest)], cbuf)
    return Outcome(func=func, outputs=("block", bname))


@primitive("caching")
def cache_write(sch, block, write_buffer_index: int, scope: str) -> Outcome:
    """Write a buffer through a cache in ``scope``; returns the new block copying the cache back.

    Before::

        for i, j in wb.grid(64, 64):
            with wb.block("B"):
                vi, vj = wb.axis.remap("SS", [i, j])
                B[vi, vj] = A[vi, vj] * 2.0

    ``sch.cache_write(sch.get_block("B"), 0, "local")`` gives::

        B_local = wb.alloc_buffer((64, 64), scope="local")
        for i, j in wb.grid(64, 64):
            with wb.block("B"):
                vi, vj = wb.axis.remap("SS", [i, j])
                B_local[vi, vj] = A[vi, vj] * 2.0
        for ax0, ax1 in wb.grid(64, 64):
            with wb.block("B_local"):
                v0, v1 = wb.axis.remap("SS", [ax0, ax1])
                B[v0, v1] = B_local[v0, v1]
    """
    realize, anc = sch.block_of(block)
    blk = realize.block
    _check_scope(scope, f"cannot cache_write for block {blk.name}")
    buf = _region_buffer(blk, blk.writes, write_buffer_index, "write", realize)
    idx = sch.index()
    sc = idx.scope_of(anc)
    writers, _ = buffer_users(idx, buf)
    if writers != [blk.name]:
        other = [w for w in writers if w != blk.name][0]
        raise ScheduleArgumentError(f"cannot cache_write {buf.name} of block {blk.name}: block {other} also writes it",
                                    node=realize)
    read_index = next((k for k, r in enumerate(blk.reads) if r.buffer is buf), None)
    if blk.init is None and read_index is not None:
        raise DependenceError(
            f"cannot cache_write {buf.name} of block {blk.name}: the block reads {buf.name} before writing it "
            f"(it updates {buf.name} in place and has no init), so a write cache would start with garbage",
            detail=f"sch.cache_inplace(block, {read_index}, {scope!r}) loads {buf.name} into the cache before the "
                   "block and copies it back after; or write the reduction with an init (wb.init()).",
            node=realize)
    box = written_box(realize, buf)
    fit = box_fits(box, buf) if box is not None else ""
    if not fit:
        raise DependenceError(
            f"cannot cache_write {buf.name} of block {blk.name}: it cannot be shown to write every element of a "
            f"box of {buf.name}, so copying the cache back would overwrite elements it never wrote",
            detail="cache_write needs each index of the write to be a constant or a * v + c for a spatial "
                   "iterator v over a dense range (extent a), and no condition around the store.", node=realize)
    guard = _copy_back_guard(realize, anc, buf)
    cname = _buf_name(buf.name, scope, sch.func)
    cbuf = Buffer(cname, buf.shape, buf.dtype, scope=scope)
    bname = fresh_name(cname, idx.blocks)
    nest = _copy_block(sch, bname, cbuf, buf, box=None if fit == "whole" else box, guard=guard)
    new_real = realize.replace(block=substitute(blk, {}, {buf: cbuf}))
    top = _top_stmt(anc, sc, realize)
    for r in buffer_users(idx, buf)[1]:
        if r != blk.name and _in_nest(idx, sc, top, r):
            raise DependenceError(
                f"cannot cache_write {buf.name} of block {blk.name}: block {r} reads it in the same loop nest, "
                "so a copy of the whole buffer back after that nest would come too late",
                detail="cache_write first, then move blocks with compute_at.", node=idx.blocks[r][0])
    at = _position(sc, top) + 1
    func = _with_copies(sch, sc, {id(realize): new_real}, [(at, nest)], cbuf)
    return Outcome(func=func, outputs=("block", bname))


def _conjuncts(e: PrimExpr) -> list:
    return _conjuncts(e.a) + _conjuncts(e.b) if isinstance(e, And) else [e]


def _on_iters(cond: PrimExpr, realize: BlockRealize, loop_ids: set, an: Analyzer):
    """A conjunct of the block's predicate (over the loops around it) as a condition on its
    iteration variables: ``a < b`` with ``a - b == e - d``, where the block binds ``v`` to ``e``
    and ``d`` uses no loop, becomes ``v < d``. The condition itself when it uses no loop; else None."""
    def in_loops(x):
        return uses_var(x, lambda v: id(v) in loop_ids)

    if not in_loops(cond):
        return cond
    if not isinstance(cond, CmpOp):
        return None
    diff = an.simplify(cond.a - cond.b)
    for iv, bound in zip(realize.block.iter_vars, realize.iter_values):
        if bound.dtype != diff.dtype:
            continue
        rest = an.simplify(bound - diff)
        if not in_loops(rest):
            return type(cond)(iv.var, rest)
    return None


def _implied_by_domain(cond: PrimExpr, blk: Block, an: Analyzer) -> bool:
    """True when the comparison holds for every value of the block's iteration variables
    in their domains (``v < n`` for ``v`` in ``[0, n)``: the predicate a split leaves)."""
    tests = {LT: lambda s: s.max < 0, LE: lambda s: s.max <= 0, GT: lambda s: s.min > 0, GE: lambda s: s.min >= 0}
    test = tests.get(type(cond))
    if test is None:
        return False
    s = an.int_set(cond.a - cond.b, {iv.var: iv.dom for iv in blk.iter_vars})
    return an.can_prove(test(s))


def _write_iters(blk: Block, buf: Buffer) -> dict:
    """``id(v) -> (dimension, a, v's domain minimum)`` for each iteration variable ``v`` that
    indexes dimension ``dimension`` of the block's (box-shaped) write of ``buf`` as ``a * v + c``."""
    an = Analyzer()
    (region,) = [r for r in blk.writes if r.buffer is buf]
    spatial = {id(iv.var): iv for iv in blk.iter_vars if iv.iter_type == IterType.SPATIAL}
    out = {}
    for d, rng in enumerate(region.region):
        for v in collect_vars(rng.min):
            if id(v) in spatial:
                a = an.simplify(substitute(rng.min, {v: IntImm(1, v.dtype)})
                                - substitute(rng.min, {v: IntImm(0, v.dtype)}))
                out[id(v)] = (d, a, spatial[id(v)].dom.min)
    return out


def _copy_back_guard(realize: BlockRealize, anc: tuple, buf: Buffer):
    """None when the block's predicate skips no element of its write box (no predicate, or only
    the ``i_0 * 32 + i_1 < n`` a split leaves); else the guard for ``_copy_block``: the predicate
    over the copy block's iteration variables, so that only the elements written are copied back."""
    blk = realize.block
    an = Analyzer()
    loop_ids = {id(a.loop_var) for a in anc if isinstance(a, For)}
    kept = []
    for c in _conjuncts(realize.predicate):
        if isinstance(c, IntImm) and c.value:
            continue
        on_iters = _on_iters(c, realize, loop_ids, an)
        if on_iters is None:
            raise DependenceError(
                f"cannot cache_write {buf.name} of block {blk.name}: its predicate `{c}` is not a condition on "
                f"the block's iterators, so which elements of {buf.name} it writes is not known",
                detail="cache_write handles predicates that compare an iterator's binding (such as the "
                       "i_0 * 32 + i_1 < n of a split) with a bound; cache_write before such a split.",
                node=realize)
        if not _implied_by_domain(on_iters, blk, an):
            kept.append(on_iters)
    if not kept:
        return None
    dims = _write_iters(blk, buf)
    iter_ids = {id(iv.var) for iv in blk.iter_vars}
    for c in kept:
        for v in collect_vars(c):
            if id(v) in iter_ids and id(v) not in dims:
                raise DependenceError(
                    f"cannot cache_write {buf.name} of block {blk.name}: its predicate `{c}` depends on iterator "
                    f"{v.name}, which does not index {buf.name}, so which elements it writes is not known",
                    node=realize)
    cond = logical_and(*kept)

    def guard(copy_vars: list) -> PrimExpr:
        vmap = {}
        for v in collect_vars(cond):
            if id(v) in dims:
                d, a, lo = dims[id(v)]
                w = copy_vars[d] if isinstance(a, IntImm) and a.value == 1 else FloorDiv(copy_vars[d], a)
                vmap[v] = an.simplify(w + lo)
        return substitute(cond, vmap)
    return guard


@primitive("caching")
def cache_inplace(sch, block, read_buffer_index: int, scope: str) -> Outcome:
    """Cache a buffer the block updates in place; returns ``[copy-in block, copy-out block]``.

    For a block that reads and writes the same buffer without an init (accumulating
    into an output, as a tensorized matmul does), where ``cache_write`` would start the
    cache with garbage. Move both copies under a loop with ``compute_at`` (the copy-in)
    and ``reverse_compute_at`` (the copy-out) to keep a register tile.

    Before::

        for i, j, k in wb.grid(64, 64, 64):
            with wb.block("C"):
                vi, vj, vk = wb.axis.remap("SSR", [i, j, k])
                C[vi, vj] = C[vi, vj] + A[vi, vk] * B[vk, vj]

    ``sch.cache_inplace(sch.get_block("C"), 0, "local")`` gives::

        C_local = wb.alloc_buffer((64, 64), scope="local")
        for ax0, ax1 in wb.grid(64, 64):
            with wb.block("C_local_in"):
                v0, v1 = wb.axis.remap("SS", [ax0, ax1])
                C_local[v0, v1] = C[v0, v1]
        for i, j, k in wb.grid(64, 64, 64):
            with wb.block("C"):
                vi, vj, vk = wb.axis.remap("SSR", [i, j, k])
                C_local[vi, vj] = C_local[vi, vj] + A[vi, vk] * B[vk, vj]
        for ax0, ax1 in wb.grid(64, 64):
            with wb.block("C_local"):
                v0, v1 = wb.axis.remap("SS", [ax0, ax1])
                C[v0, v1] = C_local[v0, v1]
    """
    realize, anc = sch.block_of(block)
    blk = realize.block
    _check_scope(scope, f"cannot cache_inplace for block {blk.name}")
    buf = _region_buffer(blk, blk.reads, read_buffer_index, "read", realize)
    if not any(r.buffer is buf for r in blk.writes):
        raise ScheduleArgumentError(f"cannot cache_inplace {buf.name} for block {blk.name}: the block reads "
                                    f"{buf.name} but does not write it; cache_read caches a buffer that is only read",
                                    node=realize)
    idx = sch.index()
    sc = idx.scope_of(anc)
    top = _top_stmt(anc, sc, realize)
    writers, readers = buffer_users(idx, buf)
    for other in writers + readers:
        if other != blk.name and _in_nest(idx, sc, top, other):
            raise DependenceError(
                f"cannot cache_inplace {buf.name} for block {blk.name}: block {other} also uses {buf.name} in "
                "the same loop nest, so copies of the whole buffer around that nest would not see its accesses",
                detail="cache_inplace first, then move blocks with compute_at.", node=idx.blocks[other][0])
    cname = _buf_name(buf.name, scope, sch.func)
    cbuf = Buffer(cname, buf.shape, buf.dtype, scope=scope)
    in_name = fresh_name(f"{cname}_in", idx.blocks)
    out_name = fresh_name(cname, set(idx.blocks) | {in_name})
    copy_in = _copy_block(sch, in_name, buf, cbuf)
    copy_out = _copy_block(sch, out_name, cbuf, buf)
    new_real = realize.replace(block=substitute(blk, {}, {buf: cbuf}))
    at = _position(sc, top)
    func = _with_copies(sch, sc, {id(realize): new_real}, [(at, copy_in), (at + 1, copy_out)], cbuf)
    return Outcome(func=func, outputs=[("block", in_name), ("block", out_name)])


@primitive("caching")
def set_scope(sch, block, buffer_index: int, storage_scope: str) -> Outcome:
    """Change the storage scope of a buffer the block writes (not a function parameter).

    Before: ``B = wb.alloc_buffer((64,))``; after ``sch.set_scope(b, 0, "shared")``:
    ``B = wb.alloc_buffer((64,), scope="shared")``.
    """
    realize, anc = sch.block_of(block)
    blk = realize.block
    _check_scope(storage_scope, f"cannot set the scope of a buffer of block {blk.name}")
    buf = _region_buffer(blk, blk.writes, buffer_index, "write", realize)
    if buf in set(sch.func.buffer_map.values()):
        raise ScheduleArgumentError(f"cannot set the scope of {buf.name}: it is a parameter of the function, whose "
                                    "memory the caller provides", node=realize)
    if buf.scope == storage_scope:
        return Outcome()
    nb = buf.replace(scope=storage_scope)
    return Outcome(func=sch.func.replace(body=substitute(sch.func.body, {}, {buf: nb})))


@primitive("caching")
def storage_align(sch, block, buffer_index: int, axis: int, factor: int, offset: int) -> Outcome:
    """Pad the stride of ``axis`` of a written intermediate buffer to ``k * factor + offset`` (avoids bank
    conflicts). Function parameters are refused: the caller lays out their memory.

    Recorded as the block annotation ``buffer_dim_align`` (as in TVM), read by lowering.
    Before: ``with wb.block("B"):``; after ``sch.storage_align(b, 0, axis=0, factor=32, offset=1)``:
    ``wb.block_attr({"buffer_dim_align": [[0, 0, 32, 1]]})`` in block ``B``.
    """
    realize, anc = sch.block_of(block)
    blk = realize.block
    buf = _region_buffer(blk, blk.writes, buffer_index, "write", realize)
    if any(b is buf for b in sch.func.buffer_map.values()):
        raise ScheduleArgumentError(f"cannot storage_align {buf.name}: it is a parameter of the function, whose "
                                    "memory layout the caller provides; only intermediate buffers can be aligned",
                                    detail="cache_write (or cache_read) it into an intermediate buffer and align "
                                           "that one.", node=realize)
    nd = len(buf.shape)
    if not isinstance(axis, int) or not (-nd <= axis < nd):
        raise ScheduleArgumentError(f"cannot storage_align {buf.name}: axis {axis!r} is out of range for a "
                                    f"{nd}-dimensional buffer", node=realize)
    if axis < 0:
        axis += nd
    if not isinstance(factor, int) or factor <= 0:
        raise ScheduleArgumentError(f"cannot storage_align {buf.name}: factor must be a positive int, got {factor!r}",
                                    node=realize)
    if not isinstance(offset, int) or not (0 <= offset < factor):
        raise ScheduleArgumentError(f"cannot storage_align {buf.name}: offset must be an int in [0, {factor}), "
                                    f"got {offset!r}", node=realize)
    ann = dict(blk.annotations)
    entries = [list(e) for e in ann.get("buffer_dim_align", []) if not (e[0] == buffer_index and e[1] == axis)]
    entries.append([buffer_index, axis, factor, offset])
    ann["buffer_dim_align"] = entries
    new_real = realize.replace(block=blk.replace(annotations=FrozenDict(ann)))
    return Outcome(func=replace_many(sch.func, {id(realize): new_real}))
