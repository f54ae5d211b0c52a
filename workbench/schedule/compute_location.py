"""Compute location: ``compute_at``, ``reverse_compute_at``, ``compute_inline``, ``reverse_compute_inline``."""
from __future__ import annotations

from ..ir.expr import BufferLoad, IntImm, LT, GE, Var, as_int, logical_and
from ..ir.functor import substitute, uses_var
from ..ir.stmt import Block, BlockRealize, BufferStore, For, ForKind, IterType, SeqStmt, seq
from .bounds import const_of, lin_bounds, lin_sub, linear, loop_range, to_expr
from .errors import (ComputeLocationError, DependenceError, InlineError, RegionCoverError,
                     ScheduleArgumentError)
from .legality import (ReplaceLoads, allocating_block, box_fits, buffer_users, is_reduction, loops_between,
                       refresh_regions, region_under, relax_map, written_box)
from .loops import loop_names
from .lookup import consumers_of, producers_of
from .state import Outcome
from .tree import fresh_name, replace_many


def _is_root_rv(sch, loop) -> bool:
    ident = sch._rvs.get(getattr(loop, "id", None))
    return ident is not None and isinstance(ident[1], str)


def _setup(sch, block, loop, what):
    realize, b_anc = sch.block_of(block)
    f, l_anc = sch.loop_of(loop)
    idx = sch.index()
    name = realize.block.name
    from .legality import check_affine
    from .tree import all_realizes

    check_affine([realize] + all_realizes(f), f"{what} block {name} at loop {f.loop_var.name}")
    blk = realize.block
    if blk.init is None and any(iv.iter_type == IterType.REDUCE for iv in blk.iter_vars):
        raise ComputeLocationError(
            f"cannot {what} block {name} at loop {f.loop_var.name}: it accumulates over a reduce axis without its "
            "own init (it was decomposed), so computing it again inside a loop could add twice",
            detail="Move the reduction block before decompose_reduction.", node=realize)
    if f in b_anc:
        raise ComputeLocationError(f"cannot {what} block {name} at loop {f.loop_var.name}: the block is already "
                                   "inside that loop", node=f)
    scope = idx.scope_of(b_anc)
    if idx.scope_of(l_anc) is not scope:
        raise ComputeLocationError(f"cannot {what} block {name} at loop {f.loop_var.name}: the loop is in another "
                                   "block scope", node=f)
    return realize, b_anc, f, l_anc, idx, scope, name


def _contains(idx, name: str, loop: For) -> bool:
    return any(a is loop for a in idx.blocks[name][1])


def _through_whole_writer(idx, scope, f: For, mine: str, other: str, kind: str, via: list[str]) -> bool:
    """True when block ``other``, outside loop ``f``, exchanges values with block ``mine`` only
    through a block of ``via`` (inside ``f``) that writes the whole of every buffer they share.

    ``kind`` says what ``other`` is to ``mine``: a ``"consumer"`` must come after ``f``, a
    ``"producer"`` before it. This is the copy-in / update / copy-out chain of ``cache_inplace``:
    the copy-out reads what the copy-in wrote, but only after the update rewrote all of it, so
    the copy-in can move into the update's loop while the copy-out stays after it (and back).
    """
    from .lookup import accessed

    names = idx.blocks_in_scope(scope)
    inside = [n for n in names if _contains(idx, n, f)]
    if not inside or other not in names:
        return False
    pos = names.index(other)
    b_mine, b_other = idx.block(mine), idx.block(other)
    if kind == "consumer":
        if pos < names.index(inside[-1]):
            return False
        shared = accessed(b_mine, "write") & accessed(b_other, "read")
    else:
        if pos > names.index(inside[0]):
            return False
        shared = accessed(b_other, "write") & accessed(b_mine, "read")
    bufs = {id(r.buffer): r.buffer for b in (b_mine, b_other) for r in b.reads + b.writes}
    for bid in shared:
        buf = bufs.get(bid)
        if buf is None:
            return False
        whole = False
        for w in via:
            box = written_box(idx.blocks[w][0], buf)
            if box is not None and box_fits(box, buf) == "whole":
                whole = True
                break
        if not whole:
            return False
    return True


def _new_nest(sch, realize: BlockRealize, dims: dict, loop: For, l_anc: tuple, preserve: bool):
    """The block placed to cover ``dims`` (iter var -> (lo, hi) linear forms), with fresh loops."""
    blk = realize.block
    outer = relax_map([a for a in l_anc if isinstance(a, For)] + [loop]) or {}
    taken = loop_names(sch.func)
    bindings, new_loops, conds = [], [], []
    order = [a.loop_var for a in l_anc if isinstance(a, For)] + [loop.loop_var]
    for iv in blk.iter_vars:
        dmin, dext = as_int(iv.dom.min), as_int(iv.dom.extent)
        rng = dims.get(iv.var)
        ext = None
        if rng is not None:
            ext = const_of(lin_sub(rng[1], rng[0]) or {None: 0})
            if ext is not None:
                ext += 1
        if rng is None or ext is None:
            lo_e, ext_e = iv.dom.min, iv.dom.extent
            lo_lin = None
        else:
            lo_lin = rng[0]
            lo_e, ext_e = to_expr(lo_lin, order), IntImm(ext, iv.var.dtype)
        if as_int(ext_e) == 1 and not preserve:
            val = lo_e
        else:
            v = Var(fresh_name(f"ax{len(new_loops)}", taken), iv.var.dtype)
            taken.add(v.name)
            new_loops.append((v, ext_e))
            val = v if as_int(lo_e) == 0 else lo_e + v
        bindings.append(val)
        if lo_lin is not None and dmin is not None and dext is not None:
            lo_b, _ = lin_bounds(lo_lin, outer)
            _, hi_b = lin_bounds(rng[1], outer)
            lo_c, hi_c = const_of(lo_b), const_of(hi_b)
            if lo_c is None or lo_c < dmin:
                conds.append(GE(val, IntImm(dmin, iv.var.dtype)))
            if hi_c is None or hi_c > dmin + dext - 1:
                conds.append(LT(val, IntImm(dmin + dext, iv.var.dtype)))
    pred = logical_and(*conds) if conds else IntImm(1, "bool")
    body = BlockRealize(tuple(bindings), pred, blk)
    for v, e in reversed(new_loops):
        body = For(v, IntImm(0, v.dtype), e, ForKind.SERIAL, body)
    return body


def _insert(loop: For, nest, idx, names: list[str], before: bool):
    """``loop`` with ``nest`` inserted before the first (or after the last) child holding one of ``names``."""
    items = list(loop.body.seq) if isinstance(loop.body, SeqStmt) else [loop.body]

    def holds(stmt):
        return any(any(a is stmt for a in idx.blocks[n][1]) or idx.blocks[n][0] is stmt for n in names)

    pos = [k for k, s in enumerate(items) if holds(s)]
    if before:
        at = pos[0] if pos else 0
    else:
        at = pos[-1] + 1 if pos else len(items)
    items.insert(at, nest)
    return loop.replace(body=seq(*items))


def _iter_dims_from(realize: BlockRealize, regions, buf, buf_dims) -> dict:
    """Map the block's iteration variables to buffer dims they index directly (``B[vi, vj]``)."""
    ivs = {iv.var: iv for iv in realize.block.iter_vars}
    out = {}
    for r in regions:
        if r.buffer is not buf:
            continue
        for d, rng in enumerate(r.region):
            if isinstance(rng.min, Var) and rng.min in ivs and as_int(rng.extent) == 1 and rng.min not in out:
                if buf_dims[d] is not None:
                    out[rng.min] = buf_dims[d]
    return out


def compute_at(sch, block, loop, preserve_unit_loops: bool = False) -> Outcome:
    """Move a producer block under ``loop`` so that it computes, per iteration of the loop,
    exactly the region its consumers there read.

    Before::

        for i, j in wb.grid(128, 128):
            with wb.block("B"):
                vi, vj = wb.axis.remap("SS", [i, j])
                B[vi, vj] = A[vi, vj] * 2.0
        for i, j in wb.grid(128, 128):
            with wb.block("C"):
                vi, vj = wb.axis.remap("SS", [i, j])
                C[vi, vj] = B[vi, vj] + 1.0

    ``sch.compute_at(sch.get_block("B"), i_of_C)`` gives::

        for i in range(128):
            for ax0 in range(128):
                with wb.block("B"):
                    vi = wb.axis.spatial(128, i)
                    vj = wb.axis.spatial(128, ax0)
                    B[vi, vj] = A[vi, vj] * 2.0
            for j in range(128):
                with wb.block("C"): ...

    Unit loops are dropped unless ``preserve_unit_loops=True``.
    """
    if _is_root_rv(sch, loop):
        sch.block_of(block)
        return Outcome()
    realize, b_anc, f, l_anc, idx, scope, name = _setup(sch, block, loop, "compute_at")
    ln = f.loop_var.name
    cons = consumers_of(idx, scope, name)
    if not cons:
        raise ComputeLocationError(f"cannot compute block {name} at loop {ln}: no block after it reads what it "
                                   "writes, so there is no consumer to compute it for", node=realize)
    inside = [c for c in cons if _contains(idx, c, f)]
    for c in cons:
        if c not in inside and not _through_whole_writer(idx, scope, f, name, c, "consumer", inside):
            raise ComputeLocationError(
                f"cannot compute block {name} at loop {ln}: its consumer block {c} is not inside loop {ln}, "
                f"so that loop is not an ancestor of all its consumers", node=f)
    if not inside:
        raise ComputeLocationError(f"cannot compute block {name} at loop {ln}: none of its consumers "
                                   f"({', '.join(cons)}) is inside that loop", node=f)
    cons = inside
    for p in producers_of(idx, scope, name):
        if _contains(idx, p, f):
            raise DependenceError(f"cannot compute block {name} at loop {ln}: its producer block {p} is inside "
                                  "that loop and would then run after it", node=f)
    _check_no_shared_writes(idx, name, cons, "compute", ln, f, l_anc)
    blk = realize.block
    if len(blk.writes) != 1:
        raise ComputeLocationError(f"cannot compute block {name} at loop {ln}: it writes {len(blk.writes)} "
                                   "buffers; compute_at supports blocks writing one buffer", node=realize)
    buf = blk.writes[0].buffer
    region = None
    for c in cons:
        c_real, c_anc = idx.blocks[c]
        inner = loops_between(c_anc, f)
        relax = relax_map(inner)
        if relax is None:
            relax = {}
            full = True
        dims = region_under(c_real, c_real.block.reads, buf, relax, None)
        if dims is None:
            continue
        if not relax and inner:
            dims = [None] * len(dims)
        from .legality import union

        region = dims if region is None else union(region, dims)
    if region is None:
        region = [None] * len(buf.shape)
    iv_dims = _iter_dims_from(realize, blk.writes, buf, region)
    nest = _new_nest(sch, realize, iv_dims, f, l_anc, preserve_unit_loops)
    new_loop = _insert(f, nest, idx, cons, before=True)
    new_func = replace_many(sch.func, {id(realize): None, id(f): new_loop})
    return Outcome(func=new_func)


def reverse_compute_at(sch, block, loop, preserve_unit_loops: bool = False) -> Outcome:
    """Move a consumer block under ``loop`` so that, per iteration of the loop, it consumes
    exactly the region its producers there have just written.

    Before (``Y`` computed under loops ``i, j_0, k, j_1``)::

        for i, j_0, k, j_1 in wb.grid(128, 32, 128, 4):
            with wb.block("Y"): ...
        for i, j in wb.grid(128, 128):
            with wb.block("C"):
                vi, vj = wb.axis.remap("SS", [i, j])
                C[vi, vj] = wb.max(Y[vi, vj], 0.0)

    ``sch.reverse_compute_at(sch.get_block("C"), j_0)`` gives::

        for i, j_0 in wb.grid(128, 32):
            for k, j_1 in wb.grid(128, 4):
                with wb.block("Y"): ...
            for ax0 in range(4):
                with wb.block("C"):
                    vi = wb.axis.spatial(128, i)
                    vj = wb.axis.spatial(128, j_0 * 4 + ax0)
                    C[vi, vj] = wb.max(Y[vi, vj], 0.0)
    """
    realize, b_anc, f, l_anc, idx, scope, name = _setup(sch, block, loop, "reverse_compute_at")
    ln = f.loop_var.name
    prods = producers_of(idx, scope, name)
    if not prods:
        raise ComputeLocationError(f"cannot reverse-compute block {name} at loop {ln}: no block before it writes "
                                   "what it reads", node=realize)
    inside = [p for p in prods if _contains(idx, p, f)]
    for p in prods:
        if p not in inside and not _through_whole_writer(idx, scope, f, name, p, "producer", inside):
            raise ComputeLocationError(
                f"cannot reverse-compute block {name} at loop {ln}: its producer block {p} is not inside loop {ln}, "
                f"so that loop is not an ancestor of all its producers", node=f)
    if not inside:
        raise ComputeLocationError(f"cannot reverse-compute block {name} at loop {ln}: none of its producers "
                                   f"({', '.join(prods)}) is inside that loop", node=f)
    prods = inside
    for c in consumers_of(idx, scope, name):
        if _contains(idx, c, f):
            raise DependenceError(f"cannot reverse-compute block {name} at loop {ln}: its consumer block {c} is "
                                  "inside that loop and would then run before it", node=f)
    _check_no_shared_writes(idx, name, prods, "reverse-compute", ln, f, l_anc)
    outer_loops = [a for a in l_anc if isinstance(a, For)] + [f]
    blk = realize.block
    iv_dims: dict = {}
    for p in prods:
        p_real, p_anc = idx.blocks[p]
        # the producer must have finished its reduction inside the loop
        for iv, val in zip(p_real.block.iter_vars, p_real.iter_values):
            if iv.iter_type == IterType.REDUCE:
                for ol in outer_loops:
                    if uses_var(val, ol.loop_var):
                        where = (f"loop {ln} is itself a reduction loop of {p}" if ol is f else
                                 f"loop {ln} is inside {p}'s reduction loop {ol.loop_var.name}")
                        raise DependenceError(
                            f"cannot reverse-compute block {name} at loop {ln}: its producer block {p} has not "
                            f"finished its reduction there ({where})", node=f)
        inner = loops_between(p_anc, f)
        relax = relax_map(inner)
        for w in p_real.block.writes:
            if not any(r.buffer is w.buffer for r in blk.reads):
                continue
            dims = region_under(p_real, p_real.block.writes, w.buffer, relax or {}, None)
            if relax is None:
                dims = [None] * len(dims)
            _check_reads_matchable(realize, w.buffer, dims, name, ln, f)
            got = _iter_dims_from(realize, blk.reads, w.buffer, dims)
            for v in got:
                if got[v] is None:
                    raise ComputeLocationError(f"cannot reverse-compute block {name} at loop {ln}: the region of "
                                               f"{w.buffer.name} its producer writes there cannot be bounded",
                                               node=f)
            iv_dims.update(got)
    nest = _new_nest(sch, realize, iv_dims, f, l_anc, preserve_unit_loops)
    new_loop = _insert(f, nest, idx, prods, before=False)
    new_func = replace_many(sch.func, {id(realize): None, id(f): new_loop})
    return Outcome(func=new_func)


def _check_no_shared_writes(idx, name: str, others: list[str], verb: str, ln: str, f, l_anc=()) -> None:
    """Refuse when another block writes the same buffer and accumulates into it across iterations of
    the loop (an init and its update with the loop inside the reduction): moving one of them into
    that loop would overwrite the other's results.

    Allowed: the other block updates exactly the elements it reads (``C[vi, vj] = C[vi, vj] + ...``)
    and finishes them within one iteration of the loop (no reduce iterator bound to the loop or
    one outside it), as a ``cache_inplace`` copy-in moved into its update's tile loop.
    """
    from .lookup import accessed

    mine = accessed(idx.block(name), "write")
    outer = [a.loop_var for a in l_anc if isinstance(a, For)] + [f.loop_var]
    for o in others:
        common = mine & accessed(idx.block(o), "write")
        if not common:
            continue
        o_real = idx.blocks[o][0]
        ob = o_real.block
        across = any(iv.iter_type == IterType.REDUCE and any(uses_var(val, v) for v in outer)
                     for iv, val in zip(ob.iter_vars, o_real.iter_values))
        if across or ob.init is not None or not all(_updates_in_place(ob, bid) for bid in common):
            buf = [r.buffer.name for r in idx.block(name).writes if id(r.buffer) in common] or ["its buffer"]
            raise DependenceError(
                f"cannot {verb} block {name} at loop {ln}: block {o} writes {buf[0]} too, so running {name} inside "
                f"that loop would overwrite what {o} has accumulated", node=f)


def _updates_in_place(blk: Block, buffer_id: int) -> bool:
    """The block reads the buffer, and exactly the region it writes (``C[vi, vj] = C[vi, vj] + ...``)."""
    from ..ir.structural import structural_equal

    reads = [r.region for r in blk.reads if id(r.buffer) == buffer_id]
    writes = [w.region for w in blk.writes if id(w.buffer) == buffer_id]
    return bool(reads) and all(structural_equal(r, w) for r in reads for w in writes)


def _check_reads_matchable(realize, buf, dims, name, ln, f) -> None:
    """Each read of ``buf`` must index a produced dimension by an iteration variable, unless the
    producer writes that whole dimension at the loop (then any index is fine)."""
    ivs = {iv.var for iv in realize.block.iter_vars}
    for r in realize.block.reads:
        if r.buffer is not buf:
            continue
        for d, rng in enumerate(r.region):
            whole = False
            if dims[d] is not None:
                lo, hi = const_of(dims[d][0] or {None: 0}), const_of(dims[d][1] or {None: 0})
                whole = lo == 0 and hi is not None and as_int(buf.shape[d]) == hi + 1
            simple = isinstance(rng.min, Var) and rng.min in ivs and as_int(rng.extent) == 1
            if not whole and not simple:
                raise RegionCoverError(
                    f"cannot reverse-compute block {name} at loop {ln}: it reads {buf.name} at `{rng.min}` in "
                    f"dimension {d}, which is not one of its iteration variables, so what it needs cannot be matched "
                    "to the part its producer has written there", node=f)


def _simple_store(blk: Block, what: str, realize) -> BufferStore:
    name = blk.name
    if is_reduction(blk):
        raise InlineError(f"cannot {what} block {name}: it is a reduction block (it has an init or a reduce axis), "
                          "and only spatial blocks computing one element per iteration can be inlined", node=realize)
    if len(blk.writes) != 1:
        raise InlineError(f"cannot {what} block {name}: it writes {len(blk.writes)} buffers (only blocks with one "
                          "write can be inlined)", node=realize)
    if not isinstance(blk.body, BufferStore):
        raise InlineError(f"cannot {what} block {name}: its body is not a single store `B[...] = ...`", node=realize)
    return blk.body


def compute_inline(sch, block) -> Outcome:
    """Inline a spatial block into its consumers: every read of its buffer becomes its expression.

    Before::

        for i, j in wb.grid(128, 128):
            with wb.block("B"):
                vi, vj = wb.axis.remap("SS", [i, j])
                B[vi, vj] = A[vi, vj] * 2.0
        for i, j in wb.grid(128, 128):
            with wb.block("C"):
                vi, vj = wb.axis.remap("SS", [i, j])
                C[vi, vj] = B[vi, vj] + 1.0

    ``sch.compute_inline(sch.get_block("B"))`` gives::

        for i, j in wb.grid(128, 128):
            with wb.block("C"):
                vi, vj = wb.axis.remap("SS", [i, j])
                C[vi, vj] = A[vi, vj] * 2.0 + 1.0
    """
    realize, anc = sch.block_of(block)
    blk = realize.block
    name = blk.name
    store = _simple_store(blk, "inline", realize)
    buf = store.buffer
    idx = sch.index()
    if buf in set(sch.func.buffer_map.values()):
        raise InlineError(f"cannot inline block {name}: it writes {buf.name}, an output of the function", node=realize)
    ivars = [iv.var for iv in blk.iter_vars]
    if not all(isinstance(i, Var) and i in ivars for i in store.indices) or \
            len({id(i) for i in store.indices}) != len(store.indices):
        raise InlineError(f"cannot inline block {name}: it stores to {buf.name} at indices that are not distinct "
                          "iteration variables of the block", node=realize)
    if len(store.indices) != len(ivars):
        raise InlineError(f"cannot inline block {name}: not every iteration variable indexes {buf.name}",
                          node=realize)
    if any(r.buffer is buf for r in blk.reads):
        raise InlineError(f"cannot inline block {name}: it reads the buffer {buf.name} it writes", node=realize)
    writers, readers = buffer_users(idx, buf)
    if writers != [name]:
        others = [w for w in writers if w != name]
        raise InlineError(f"cannot inline block {name}: block {others[0]} also writes {buf.name}", node=realize)

    def repl(load: BufferLoad):
        return substitute(store.value, dict(zip(store.indices, load.indices)))

    mapping = {id(realize): None}
    for r in readers:
        c_real = idx.realize(r)
        c_blk = c_real.block
        m = ReplaceLoads(buf, repl)
        nb = c_blk.replace(body=m.visit(c_blk.body), init=None if c_blk.init is None else m.visit(c_blk.init))
        mapping[id(c_real)] = c_real.replace(block=refresh_regions(nb))
    func = replace_many(sch.func, mapping)
    return Outcome(func=_drop_alloc(func, buf))


def _drop_alloc(func, buf):
    from .tree import Index

    idx = Index(func)
    owner = allocating_block(idx, buf)
    if owner is None:
        return func
    writers, readers = buffer_users(idx, buf)
    if writers or readers:
        return func
    real = idx.realize(owner)
    nb = real.block.replace(alloc_buffers=tuple(b for b in real.block.alloc_buffers if b is not buf))
    return replace_many(func, {id(real): real.replace(block=nb)})


def reverse_compute_inline(sch, block) -> Outcome:
    """Inline a consumer block into its single producer: the producer writes the consumer's result directly.

    Before::

        for i, j in wb.grid(128, 128):
            with wb.block("B"):
                vi, vj = wb.axis.remap("SS", [i, j])
                B[vi, vj] = A[vi, vj] * 2.0
        for i, j in wb.grid(128, 128):
            with wb.block("C"):
                vi, vj = wb.axis.remap("SS", [i, j])
                C[vi, vj] = B[vi, vj] + 1.0

    ``sch.reverse_compute_inline(sch.get_block("C"))`` gives::

        for i, j in wb.grid(128, 128):
            with wb.block("B"):
                vi, vj = wb.axis.remap("SS", [i, j])
                C[vi, vj] = A[vi, vj] * 2.0 + 1.0
    """
    realize, anc = sch.block_of(block)
    blk = realize.block
    name = blk.name
    store = _simple_store(blk, "reverse-inline", realize)
    idx = sch.index()
    params = set(sch.func.buffer_map.values())
    inter = [r.buffer for r in blk.reads if r.buffer not in params and buffer_users(idx, r.buffer)[0]]
    if len(inter) != 1:
        raise InlineError(f"cannot reverse-inline block {name}: it must read exactly one buffer produced by another "
                          f"block, but it reads {len(inter)}", node=realize)
    buf = inter[0]
    writers, readers = buffer_users(idx, buf)
    if len(writers) != 1:
        raise InlineError(f"cannot reverse-inline block {name}: {buf.name} is written by {len(writers)} blocks",
                          node=realize)
    p_real = idx.realize(writers[0])
    p_blk = p_real.block
    p_store = _simple_store(p_blk, "reverse-inline into", p_real)
    others = [r for r in readers if r not in (name, writers[0])]
    if others:
        raise InlineError(f"cannot reverse-inline block {name}: block {others[0]} also reads {buf.name}",
                          node=realize)
    p_vars = [iv.var for iv in p_blk.iter_vars]
    if not all(isinstance(i, Var) and i in p_vars for i in p_store.indices):
        raise InlineError(f"cannot reverse-inline block {name}: its producer {p_blk.name} stores at indices that are "
                          "not its iteration variables", node=p_real)
    loads: list[BufferLoad] = []
    from ..ir.functor import post_order_visit

    post_order_visit(store.value, lambda n: loads.append(n) if isinstance(n, BufferLoad) and n.buffer is buf else None)
    c_vars = [iv.var for iv in blk.iter_vars]
    first = loads[0].indices
    same = all(len(l.indices) == len(first) and all(a is b for a, b in zip(l.indices, first)) for l in loads)
    if not same or not all(isinstance(i, Var) and i in c_vars for i in first) or \
            len({id(i) for i in first}) != len(first) or set(map(id, first)) != set(map(id, c_vars)):
        raise InlineError(f"cannot reverse-inline block {name}: it must read {buf.name} at one index that uses each "
                          "of its iteration variables once", node=realize)
    umap = {u: p_store.indices[d] for d, u in enumerate(first)}
    value = ReplaceLoads(buf, lambda load: p_store.value).visit(store.value)
    value = substitute(value, umap)
    new_store = BufferStore(store.buffer, value, tuple(substitute(i, umap) for i in store.indices))
    nb = refresh_regions(p_blk.replace(body=new_store))
    func = replace_many(sch.func, {id(realize): None, id(p_real): p_real.replace(block=nb)})
    return Outcome(func=_drop_alloc(func, buf))
