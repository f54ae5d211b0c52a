"""Caching and storage: ``cache_read``, ``cache_write``, ``cache_inplace``, ``set_scope``, ``storage_align``.

Every scope (``global``, ``shared``, ``local``) builds for the CPU too. Cache blocks copy
the whole buffer, or exactly the box a block writes (correct for symbolic sizes too); move
them with ``compute_at`` / ``reverse_compute_at`` to copy only what a loop needs.
"""
from __future__ import annotations

from ..ir.arith import Analyzer
from ..ir.buffer import SCOPES, Buffer
from ..ir.expr import GE, GT, LE, LT, And, BufferLoad, CmpOp, FloorDiv, IntImm, PrimExpr, Var, as_int, logical_and
from ..ir.functor import Mutator, collect_vars, post_order_visit, substitute, uses_var
from ..ir.node import FrozenDict
from ..ir.stmt import (Block, BlockRealize, BufferStore, For, ForKind, IfThenElse, IterType, IterVar, SeqStmt,
                       seq)
from .errors import DependenceError, ScheduleArgumentError, ScheduleError
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
    """Where the top-level statement ``top`` stands in the scope's body. A statement in the scope block's
    ``init`` (a blockized reduction's init nest) has no place there for a new stage: refused."""
    found = [k for k, s in enumerate(_scope_items(sc)) if s is top]
    if not found:
        raise ScheduleError(f"the block is in the init of block {sc.block.name}, not in its body, so no new "
                            f"stage can be placed next to it; work on the init before blockize, or "
                            f"decompose_reduction of block {sc.block.name} first", node=sc)
    return found[0]


def _with_copies(sch, sc: BlockRealize, mapping: dict, inserts: list, cbuf):
    """The function with the scope's statements rewritten by ``mapping`` (``id(realize) -> new``),
    each ``(k, nest)`` of ``inserts`` placed before the scope's k-th statement (k = its length:
    at the end), and ``cbuf`` (a buffer or a list of them) allocated in the scope."""
    items = _scope_items(sc)
    new_items = [replace_in_stmt(s, mapping) for s in items]
    for k, nest in sorted(inserts, key=lambda kn: -kn[0]):
        new_items.insert(k, nest)
    allocs = tuple(cbuf) if isinstance(cbuf, (list, tuple)) else (cbuf,)
    new_sc = sc.replace(block=sc.block.replace(body=seq(*new_items), alloc_buffers=sc.block.alloc_buffers + allocs))
    return replace_many(sch.func, {id(sc): new_sc})


def _buffer_names(func) -> set[str]:
    idx = Index(func)
    taken = {b.name for b in func.buffer_map.values()}
    for n in idx.order:
        taken |= {b.name for b in idx.block(n).alloc_buffers}
    return taken


def _buf_name(base: str, scope: str, func) -> str:
    return fresh_name(f"{base}_{scope.replace('.', '_')}", _buffer_names(func))


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

    >>> import workbench as wb
    >>> from workbench import te
    >>> A = te.placeholder((4,), "float32", name="A")
    >>> B = te.compute((4,), lambda i: A[i] * 2.0, name="B")
    >>> sch = wb.Schedule(wb.create_prim_func([A, B]))
    >>> print(sch.func.script())
    @wb.prim_func
    def main(A: wb.Buffer((4,), "float32"), B: wb.Buffer((4,), "float32")):
        for i in wb.serial(4):
            with wb.block("B"):
                v_i, = wb.axis.remap("S", [i])
                wb.reads(A[v_i])
                wb.writes(B[v_i])
                B[v_i] = A[v_i] * 2.0
    >>> sch.cache_read(sch.get_block("B"), 0, "shared")
    BlockRV('A_shared')
    >>> print(sch.func.script())
    @wb.prim_func
    def main(A: wb.Buffer((4,), "float32"), B: wb.Buffer((4,), "float32")):
        A_shared = wb.alloc_buffer((4,), "float32", scope="shared")
        for ax0 in wb.serial(4):
            with wb.block("A_shared"):
                v0, = wb.axis.remap("S", [ax0])
                wb.reads(A[v0])
                wb.writes(A_shared[v0])
                A_shared[v0] = A[v0]
        for i in wb.serial(4):
            with wb.block("B"):
                v_i, = wb.axis.remap("S", [i])
                wb.reads(A_shared[v_i])
                wb.writes(B[v_i])
                B[v_i] = A_shared[v_i] * 2.0
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
    for t in targets:
        if t in writers:
            raise DependenceError(
                f"cannot cache_read {buf.name} for block {t}: the block also writes {buf.name} (it updates it in "
                f"place), so a copy made before it would be stale and its writes would go to the copy",
                detail="cache_inplace caches a buffer that a block reads and writes.", node=idx.realize(t))
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
            if _position(sc, _top_stmt(t_anc, sc, t_real)) < at - 1:
                raise DependenceError(
                    f"cannot cache_read {buf.name} for block {t}: it runs before block {writers[-1]} writes "
                    f"{buf.name}, and the copy can only go after the last writer", node=t_real)
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

    >>> import workbench as wb
    >>> from workbench import te
    >>> A = te.placeholder((4,), "float32", name="A")
    >>> B = te.compute((4,), lambda i: A[i] * 2.0, name="B")
    >>> sch = wb.Schedule(wb.create_prim_func([A, B]))
    >>> print(sch.func.script())
    @wb.prim_func
    def main(A: wb.Buffer((4,), "float32"), B: wb.Buffer((4,), "float32")):
        for i in wb.serial(4):
            with wb.block("B"):
                v_i, = wb.axis.remap("S", [i])
                wb.reads(A[v_i])
                wb.writes(B[v_i])
                B[v_i] = A[v_i] * 2.0
    >>> sch.cache_write(sch.get_block("B"), 0, "local")
    BlockRV('B_local')
    >>> print(sch.func.script())
    @wb.prim_func
    def main(A: wb.Buffer((4,), "float32"), B: wb.Buffer((4,), "float32")):
        B_local = wb.alloc_buffer((4,), "float32", scope="local")
        for i in wb.serial(4):
            with wb.block("B"):
                v_i, = wb.axis.remap("S", [i])
                wb.reads(A[v_i])
                wb.writes(B_local[v_i])
                B_local[v_i] = A[v_i] * 2.0
        for ax0 in wb.serial(4):
            with wb.block("B_local"):
                v0, = wb.axis.remap("S", [ax0])
                wb.reads(B_local[v0])
                wb.writes(B[v0])
                B[v0] = B_local[v0]
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
    bound = s.max if type(cond) in (LT, LE) else s.min
    return bound is not None and an.can_prove(test(s))   # None: unbounded, so not always true


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

    >>> import workbench as wb
    >>> from workbench import te
    >>> func = wb.parse('''
    ... def acc(A: wb.Buffer((4,), "float32"), C: wb.Buffer((1,), "float32")):
    ...     for k in wb.serial(4):
    ...         with wb.block("C"):
    ...             vk = wb.axis.reduce(4, k)
    ...             C[0] = C[0] + A[vk]
    ... ''')
    >>> sch = wb.Schedule(func)
    >>> print(sch.func.script())
    @wb.prim_func
    def acc(A: wb.Buffer((4,), "float32"), C: wb.Buffer((1,), "float32")):
        for k in wb.serial(4):
            with wb.block("C"):
                vk, = wb.axis.remap("R", [k])
                wb.reads(C[0], A[vk])
                wb.writes(C[0])
                C[0] = C[0] + A[vk]
    >>> sch.cache_inplace(sch.get_block("C"), 0, "local")
    [BlockRV('C_local_in'), BlockRV('C_local')]
    >>> print(sch.func.script())
    @wb.prim_func
    def acc(A: wb.Buffer((4,), "float32"), C: wb.Buffer((1,), "float32")):
        C_local = wb.alloc_buffer((1,), "float32", scope="local")
        for ax0 in wb.serial(1):
            with wb.block("C_local_in"):
                v0, = wb.axis.remap("S", [ax0])
                wb.reads(C[v0])
                wb.writes(C_local[v0])
                C_local[v0] = C[v0]
        for k in wb.serial(4):
            with wb.block("C"):
                vk, = wb.axis.remap("R", [k])
                wb.reads(C_local[0], A[vk])
                wb.writes(C_local[0])
                C_local[0] = C_local[0] + A[vk]
        for ax0 in wb.serial(1):
            with wb.block("C_local"):
                v0, = wb.axis.remap("S", [ax0])
                wb.reads(C_local[v0])
                wb.writes(C[v0])
                C[v0] = C_local[v0]
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
    earlier = [w for w in writers if w != blk.name and not any(a is blk or a is realize for a in idx.blocks[w][1])]
    if not earlier and buf not in set(sch.func.buffer_map.values()):
        raise DependenceError(
            f"cannot cache_inplace {buf.name} for block {blk.name}: nothing but that block writes {buf.name} (it is "
            f"allocated in the function), so the copy-in would read memory nothing has written; cache_write caches "
            f"a buffer the block produces", node=realize)
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

    >>> import workbench as wb
    >>> from workbench import te
    >>> A = te.placeholder((4,), "float32", name="A")
    >>> B = te.compute((4,), lambda i: A[i] * 2.0, name="B")
    >>> C = te.compute((4,), lambda i: B[i] + 1.0, name="C")
    >>> sch = wb.Schedule(wb.create_prim_func([A, C]))
    >>> print(sch.func.script())
    @wb.prim_func
    def main(A: wb.Buffer((4,), "float32"), C: wb.Buffer((4,), "float32")):
        B = wb.alloc_buffer((4,), "float32")
        for i in wb.serial(4):
            with wb.block("B"):
                v_i, = wb.axis.remap("S", [i])
                wb.reads(A[v_i])
                wb.writes(B[v_i])
                B[v_i] = A[v_i] * 2.0
        for i in wb.serial(4):
            with wb.block("C"):
                v_i, = wb.axis.remap("S", [i])
                wb.reads(B[v_i])
                wb.writes(C[v_i])
                C[v_i] = B[v_i] + 1.0
    >>> sch.set_scope(sch.get_block("B"), 0, "shared")
    >>> print(sch.func.script())
    @wb.prim_func
    def main(A: wb.Buffer((4,), "float32"), C: wb.Buffer((4,), "float32")):
        B = wb.alloc_buffer((4,), "float32", scope="shared")
        for i in wb.serial(4):
            with wb.block("B"):
                v_i, = wb.axis.remap("S", [i])
                wb.reads(A[v_i])
                wb.writes(B[v_i])
                B[v_i] = A[v_i] * 2.0
        for i in wb.serial(4):
            with wb.block("C"):
                v_i, = wb.axis.remap("S", [i])
                wb.reads(B[v_i])
                wb.writes(C[v_i])
                C[v_i] = B[v_i] + 1.0
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

    >>> import workbench as wb
    >>> from workbench import te
    >>> A = te.placeholder((4, 4), "float32", name="A")
    >>> B = te.compute((4, 4), lambda i, j: A[i, j] * 2.0, name="B")
    >>> C = te.compute((4, 4), lambda i, j: B[i, j] + 1.0, name="C")
    >>> sch = wb.Schedule(wb.create_prim_func([A, C]))
    >>> print(sch.func.script())
    @wb.prim_func
    def main(A: wb.Buffer((4, 4), "float32"), C: wb.Buffer((4, 4), "float32")):
        B = wb.alloc_buffer((4, 4), "float32")
        for i, j in wb.grid(4, 4):
            with wb.block("B"):
                v_i, v_j = wb.axis.remap("SS", [i, j])
                wb.reads(A[v_i, v_j])
                wb.writes(B[v_i, v_j])
                B[v_i, v_j] = A[v_i, v_j] * 2.0
        for i, j in wb.grid(4, 4):
            with wb.block("C"):
                v_i, v_j = wb.axis.remap("SS", [i, j])
                wb.reads(B[v_i, v_j])
                wb.writes(C[v_i, v_j])
                C[v_i, v_j] = B[v_i, v_j] + 1.0
    >>> sch.storage_align(sch.get_block("B"), 0, axis=0, factor=8, offset=1)
    >>> print(sch.func.script())
    @wb.prim_func
    def main(A: wb.Buffer((4, 4), "float32"), C: wb.Buffer((4, 4), "float32")):
        B = wb.alloc_buffer((4, 4), "float32")
        for i, j in wb.grid(4, 4):
            with wb.block("B"):
                v_i, v_j = wb.axis.remap("SS", [i, j])
                wb.reads(A[v_i, v_j])
                wb.writes(B[v_i, v_j])
                wb.block_attr({"buffer_dim_align": [[0, 0, 8, 1]]})
                B[v_i, v_j] = A[v_i, v_j] * 2.0
        for i, j in wb.grid(4, 4):
            with wb.block("C"):
                v_i, v_j = wb.axis.remap("SS", [i, j])
                wb.reads(B[v_i, v_j])
                wb.writes(C[v_i, v_j])
                C[v_i, v_j] = B[v_i, v_j] + 1.0
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


# cache_index ---------------------------------------------------------------------------------

def _sub_exprs(e: PrimExpr) -> list:
    """The expressions directly below ``e`` (operands, indices, arguments)."""
    out = []
    for name in e._fields:
        v = getattr(e, name)
        if isinstance(v, PrimExpr):
            out.append(v)
        elif isinstance(v, tuple):
            out.extend(x for x in v if isinstance(x, PrimExpr))
    return out


def _complexity(e: PrimExpr) -> int:
    return 1 + sum(_complexity(x) for x in _sub_exprs(e))


def _index_computation(e: PrimExpr, iter_ids: set, sizes: set) -> bool:
    """An integer computation of the block's iteration variables (and the function's sizes) alone, with no
    load, call or vector, dividing only by constants: what cache_index can precompute."""
    from ..ir.dtype import is_integer, lanes_of
    from ..ir.expr import Div, FloorMod, Mod

    if isinstance(e, (Var, IntImm)) or not is_integer(e.dtype) or lanes_of(e.dtype) != 1:
        return False
    ok = True
    uses_iter = False

    def check(n):
        nonlocal ok, uses_iter
        if isinstance(n, Var):
            uses_iter = uses_iter or id(n) in iter_ids
            ok = ok and (id(n) in iter_ids or id(n) in sizes)
        elif isinstance(n, (Div, Mod, FloorDiv, FloorMod)):
            ok = ok and isinstance(n.b, IntImm) and n.b.value != 0
        elif isinstance(n, PrimExpr) and not isinstance(n, (IntImm, CmpOp)) and \
                type(n).__name__ not in _INDEX_NODES:
            ok = False

    post_order_visit(e, check)
    return ok and uses_iter


_INDEX_NODES = {"Add", "Sub", "Mul", "Div", "Mod", "FloorDiv", "FloorMod", "Min", "Max", "Cast"}


def _same_computation(a: PrimExpr, b: PrimExpr) -> bool:
    """The same computation of the same variables (``structural_equal`` alone renames: ``vi - 1 == vj - 1``)."""
    from ..ir.structural import structural_equal

    return structural_equal(a, b) and [id(v) for v in collect_vars(a)] == [id(v) for v in collect_vars(b)]


class _Table:
    """Computations with their counts, equal ones merged, in order of first appearance."""

    def __init__(self):
        self.items: list[list] = []

    def find(self, e: PrimExpr):
        return next((it for it in self.items if _same_computation(it[0], e)), None)

    def add(self, e: PrimExpr, count: int) -> None:
        hit = self.find(e)
        if hit is None:
            self.items.append([e, count])
        else:
            hit[1] += count


def _largest_computations(e, eligible, table: _Table, count: int = 1) -> None:
    """Count the largest eligible computations in ``e`` (not those inside them), as TVM's CSE does."""
    if isinstance(e, (Var, IntImm)):
        return
    if isinstance(e, PrimExpr) and eligible(e):
        table.add(e, count)
        return
    subs = _sub_exprs(e) if isinstance(e, PrimExpr) else list(e)
    for x in subs:
        _largest_computations(x, eligible, table, count)


def _index_exprs(stores: list, eligible, cse_thresh: int) -> list:
    """The computations cache_index precomputes (TVM's rule): the largest eligible computations of each store;
    one seen fewer than ``cse_thresh`` times gives way to its own largest sub-computations (which inherit its
    count); those seen at least ``cse_thresh`` times in the stored value are kept, most complex first."""
    exprs: list = []
    for st in stores:
        table = _Table()
        _largest_computations([st.value, *st.indices], eligible, table)
        k = 0
        while k < len(table.items):
            e, c = table.items[k]
            if c < cse_thresh:
                for x in _sub_exprs(e):
                    _largest_computations(x, eligible, table, c)
            k += 1

        _record_repeated(st.value, table, cse_thresh, exprs)
    return sorted(exprs, key=_complexity, reverse=True)


def _record_repeated(value: PrimExpr, table: _Table, cse_thresh: int, exprs: list) -> None:
    """Append to ``exprs`` (in post order, once each) the computations of ``value`` counted ``cse_thresh``
    times or more."""
    def record(n):
        if isinstance(n, PrimExpr):
            hit = table.find(n)
            if hit is not None and hit[1] >= cse_thresh and not any(x is hit[0] for x in exprs):
                exprs.append(hit[0])

    post_order_visit(value, record)


class _ReplaceComputation(Mutator):
    def __init__(self, target: PrimExpr, load: BufferLoad):
        self.target, self.load, self.equal = target, load, _same_computation

    def visit(self, n):
        if isinstance(n, PrimExpr) and not isinstance(n, (Var, IntImm)) and self.equal(n, self.target):
            return self.load
        return super().visit(n)


class _InValues(Mutator):
    """Apply a mutator to the stored values only (indices of stores stay as they are)."""

    def __init__(self, inner: Mutator):
        self.inner = inner

    def visit_BufferStore(self, n: BufferStore):
        value = self.inner.visit(n.value)
        return n if value is n.value else n.replace(value=value)


def _index_stage(sch, name: str, buf: Buffer, expr: PrimExpr, used: list):
    """``for ax...: with block(name): buf[v...] = expr(v...)`` over the domains of the iteration variables."""
    taken = loop_names(sch.func)
    ivs, loops, values = [], [], []
    for d, iv in enumerate(used):
        lv = Var(fresh_name(f"ax{d}", taken), iv.var.dtype)
        taken.add(lv.name)
        ivs.append(IterVar(Var(f"v{d}", iv.var.dtype), iv.dom, IterType.SPATIAL))
        loops.append((lv, iv.dom.extent))
        values.append(lv if as_int(iv.dom.min) == 0 else lv + iv.dom.min)
    own = tuple(iv.var for iv in ivs)
    body = BufferStore(buf, substitute(expr, {iv.var: v for iv, v in zip(used, own)}), own)
    nest = BlockRealize(tuple(values), IntImm(1, "bool"), refresh_regions(Block(name, tuple(ivs), (), (), body)))
    for lv, ext in reversed(loops):
        nest = For(lv, IntImm(0, ext.dtype), ext, ForKind.SERIAL, nest)
    return nest


@primitive("caching")
def cache_index(sch, block, storage_scope: str, cse_thresh: int = 0) -> Outcome:
    """Precompute the index computations of a block into buffers; returns the new blocks (none if none).

    As TVM's ``cache_index``: each largest integer computation of the block's iteration
    variables in a stored value (``vi // 4 + vj // 4`` in ``A[vi // 4 + vj // 4, vj // 2]``)
    gets a buffer ``index_var_k`` over the iteration variables it uses, filled by a block
    ``index_k`` placed before the block's loop nest, and the block loads it instead. With
    ``cse_thresh=t`` only computations seen at least ``t`` times are kept (a rarer one gives
    way to its sub-computations); 0 keeps every one. Computations that read memory, call
    functions or divide by a variable are left alone.

    >>> import workbench as wb
    >>> from workbench import te
    >>> A = te.placeholder((1, 3, 40, 40), "float32", name="A")
    >>> B = te.compute((1, 3, 80, 80), lambda n, c, i, j: A[n, c, i // 4 + j // 4, j // 2], name="B")
    >>> sch = wb.Schedule(wb.create_prim_func([A, B]))
    >>> print(sch.func.script())
    @wb.prim_func
    def main(A: wb.Buffer((1, 3, 40, 40), "float32"), B: wb.Buffer((1, 3, 80, 80), "float32")):
        for n, c, i, j in wb.grid(1, 3, 80, 80):
            with wb.block("B"):
                v_n, v_c, v_i, v_j = wb.axis.remap("SSSS", [n, c, i, j])
                wb.reads(A[v_n, v_c, v_i // 4 + v_j // 4, v_j // 2])
                wb.writes(B[v_n, v_c, v_i, v_j])
                B[v_n, v_c, v_i, v_j] = A[v_n, v_c, v_i // 4 + v_j // 4, v_j // 2]
    >>> sch.cache_index(sch.get_block("B"), "global", cse_thresh=1)
    [BlockRV('index_0'), BlockRV('index_1')]
    >>> print(sch.func.script())
    @wb.prim_func
    def main(A: wb.Buffer((1, 3, 40, 40), "float32"), B: wb.Buffer((1, 3, 80, 80), "float32")):
        index_var_0 = wb.alloc_buffer((80, 80), "int32")
        index_var_1 = wb.alloc_buffer((80,), "int32")
        for ax0, ax1 in wb.grid(80, 80):
            with wb.block("index_0"):
                v0, v1 = wb.axis.remap("SS", [ax0, ax1])
                wb.reads()
                wb.writes(index_var_0[v0, v1])
                index_var_0[v0, v1] = v0 // 4 + v1 // 4
        for ax0 in wb.serial(80):
            with wb.block("index_1"):
                v0, = wb.axis.remap("S", [ax0])
                wb.reads()
                wb.writes(index_var_1[v0])
                index_var_1[v0] = v0 // 2
        for n, c, i, j in wb.grid(1, 3, 80, 80):
            with wb.block("B"):
                v_n, v_c, v_i, v_j = wb.axis.remap("SSSS", [n, c, i, j])
                wb.reads(A[v_n, v_c, index_var_0[v_i, v_j], index_var_1[v_j]], index_var_0[v_i, v_j], index_var_1[v_j])
                wb.writes(B[v_n, v_c, v_i, v_j])
                B[v_n, v_c, v_i, v_j] = A[v_n, v_c, index_var_0[v_i, v_j], index_var_1[v_j]]
    """
    realize, anc = sch.block_of(block)
    blk = realize.block
    _check_scope(storage_scope, f"cannot cache_index for block {blk.name}")
    if not isinstance(cse_thresh, int) or isinstance(cse_thresh, bool) or cse_thresh < 0:
        raise ScheduleArgumentError(f"cannot cache_index for block {blk.name}: cse_thresh must be an int >= 0, "
                                    f"got {cse_thresh!r}", node=realize)
    from .loops import _size_vars

    iter_ids, sizes = {id(iv.var) for iv in blk.iter_vars}, _size_vars(sch.func)
    stores = []
    for part in (blk.init, blk.body):
        if part is not None:
            post_order_visit(part, lambda n: stores.append(n) if isinstance(n, BufferStore) else None)
    exprs = _index_exprs(stores, lambda e: _index_computation(e, iter_ids, sizes), cse_thresh)
    if not exprs:
        return Outcome(outputs=[])
    idx = sch.index()
    names, buf_names = set(idx.blocks), _buffer_names(sch.func)
    stages, bufs, new_blk = [], [], blk
    for k, e in enumerate(exprs):
        used = [iv for iv in blk.iter_vars if any(v is iv.var for v in collect_vars(e))]
        bname = fresh_name(f"index_var_{k}", buf_names)
        buf_names.add(bname)
        buf = Buffer(bname, tuple(iv.dom.min + iv.dom.extent if as_int(iv.dom.min) != 0 else iv.dom.extent
                                  for iv in used), e.dtype, scope=storage_scope)
        sname = fresh_name(f"index_{k}", names)
        names.add(sname)
        stages.append((sname, _index_stage(sch, sname, buf, e, used)))
        bufs.append(buf)
        rw = _InValues(_ReplaceComputation(e, BufferLoad(buf, tuple(iv.var for iv in used))))
        new_blk = new_blk.replace(body=rw.visit(new_blk.body),
                                  init=None if new_blk.init is None else rw.visit(new_blk.init))
    sc = idx.scope_of(anc)
    at = _position(sc, _top_stmt(anc, sc, realize))
    new_real = realize.replace(block=refresh_regions(new_blk))
    func = _with_copies(sch, sc, {id(realize): new_real}, [(at, nest) for _, nest in reversed(stages)], bufs)
    return Outcome(func=func, outputs=[("block", n) for n, _ in stages])


# unsafe_set_dtype --------------------------------------------------------------------------

class _Retype(Mutator):
    """``old`` becomes ``new`` (another dtype): stores cast their value to it, loads cast back."""

    def __init__(self, old: Buffer, new: Buffer):
        self.old, self.new = old, new

    def visit_Buffer(self, b: Buffer) -> Buffer:
        return self.new if b is self.old else b

    def visit_BufferLoad(self, n: BufferLoad):
        from ..ir.expr import Cast

        load = self.generic_visit(n)
        if n.buffer is not self.old:
            return load
        return Cast(n.dtype, load.replace(dtype=None))

    def visit_BufferStore(self, n: BufferStore):
        from ..ir.dtype import lanes_of, with_lanes
        from ..ir.expr import Cast

        if n.buffer is not self.old:
            return self.generic_visit(n)
        value, indices = self.visit(n.value), self.visit(n.indices)
        want = with_lanes(self.new.dtype, lanes_of(value.dtype))
        return BufferStore(self.new, value if value.dtype == want else Cast(want, value), indices)


@primitive("caching")
def unsafe_set_dtype(sch, block, buffer_index: int, dtype: str) -> Outcome:
    """Change the dtype of an intermediate buffer the block writes; stores cast to it, loads cast back.

    Unsafe, as in TVM: the program stays type-correct, but the values pass through the new
    dtype, so **this can change the results** (``float16`` rounds, ``int8`` wraps or
    truncates). Function parameters are refused (the caller owns their dtype).

    >>> import workbench as wb
    >>> from workbench import te
    >>> A = te.placeholder((4,), "float32", name="A")
    >>> B = te.compute((4,), lambda i: A[i] * 2.0, name="B")
    >>> C = te.compute((4,), lambda i: B[i] + 1.0, name="C")
    >>> sch = wb.Schedule(wb.create_prim_func([A, C]))
    >>> print(sch.func.script())
    @wb.prim_func
    def main(A: wb.Buffer((4,), "float32"), C: wb.Buffer((4,), "float32")):
        B = wb.alloc_buffer((4,), "float32")
        for i in wb.serial(4):
            with wb.block("B"):
                v_i, = wb.axis.remap("S", [i])
                wb.reads(A[v_i])
                wb.writes(B[v_i])
                B[v_i] = A[v_i] * 2.0
        for i in wb.serial(4):
            with wb.block("C"):
                v_i, = wb.axis.remap("S", [i])
                wb.reads(B[v_i])
                wb.writes(C[v_i])
                C[v_i] = B[v_i] + 1.0
    >>> sch.unsafe_set_dtype(sch.get_block("B"), 0, "float16")
    >>> print(sch.func.script())
    @wb.prim_func
    def main(A: wb.Buffer((4,), "float32"), C: wb.Buffer((4,), "float32")):
        B = wb.alloc_buffer((4,), "float16")
        for i in wb.serial(4):
            with wb.block("B"):
                v_i, = wb.axis.remap("S", [i])
                wb.reads(A[v_i])
                wb.writes(B[v_i])
                B[v_i] = wb.cast(A[v_i] * 2.0, "float16")
        for i in wb.serial(4):
            with wb.block("C"):
                v_i, = wb.axis.remap("S", [i])
                wb.reads(B[v_i])
                wb.writes(C[v_i])
                C[v_i] = wb.cast(B[v_i], "float32") + 1.0
    """
    from ..ir.dtype import lanes_of, normalize_dtype

    realize, _ = sch.block_of(block)
    blk = realize.block
    buf = _region_buffer(blk, blk.writes, buffer_index, "write", realize)
    what = f"cannot set the dtype of {buf.name}"
    try:
        new_dtype = normalize_dtype(dtype)
    except (TypeError, ValueError) as err:
        raise ScheduleArgumentError(f"{what}: {dtype!r} is not a dtype ({err})", node=realize) from None
    if lanes_of(new_dtype) != 1 or new_dtype == "handle":
        raise ScheduleArgumentError(f"{what}: {new_dtype} is not a scalar number type", node=realize)
    if any(b is buf for b in sch.func.buffer_map.values()):
        raise ScheduleArgumentError(f"{what}: it is a parameter of the function, whose dtype the caller provides; "
                                    "only intermediate buffers can change dtype", node=realize)
    idx = sch.index()
    for name in idx.order:
        if any(m.source.buffer is buf for m in idx.block(name).match_buffers):
            raise ScheduleArgumentError(f"{what}: block {name} views it through match_buffer (as a tensor "
                                        "intrinsic does), and the view has the old dtype", node=idx.realize(name))
    if buf.dtype == new_dtype:
        return Outcome()
    body = _Retype(buf, buf.replace(dtype=new_dtype)).visit(sch.func.body)
    return Outcome(func=sch.func.replace(body=body))
