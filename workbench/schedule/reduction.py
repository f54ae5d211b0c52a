"""Reductions: ``decompose_reduction`` (init in its own block) and ``rfactor``."""
from __future__ import annotations

from ..ir.buffer import Buffer
from ..ir.expr import Add, BufferLoad, IntImm, Range, Var, as_int
from ..ir.functor import collect_vars, substitute, uses_var
from ..ir.stmt import Block, BlockRealize, BufferRegion, BufferStore, For, ForKind, IterType, IterVar, seq
from .errors import ScheduleArgumentError, ScheduleError
from .legality import refresh_regions
from .loops import loop_names
from .state import Outcome
from .tree import Index, fresh_name, replace_in_stmt, replace_many


def decompose_reduction(sch, block, loop) -> Outcome:
    """Split a reduction block into an init block placed before ``loop`` and an update block.

    Returns the handle of the new init block; the original block becomes ``<name>_update``
    (its handle follows it).

    Before::

        for i, j, k in wb.grid(128, 128, 128):
            with wb.block("Y"):
                vi, vj, vk = wb.axis.remap("SSR", [i, j, k])
                with wb.init():
                    Y[vi, vj] = 0.0
                Y[vi, vj] = Y[vi, vj] + A[vi, vk] * B[vk, vj]

    ``sch.decompose_reduction(sch.get_block("Y"), k)`` gives::

        for i, j in wb.grid(128, 128):
            with wb.block("Y_init"):
                vi, vj = wb.axis.remap("SS", [i, j])
                Y[vi, vj] = 0.0
            for k in range(128):
                with wb.block("Y_update"):
                    vi, vj, vk = wb.axis.remap("SSR", [i, j, k])
                    Y[vi, vj] = Y[vi, vj] + A[vi, vk] * B[vk, vj]
    """
    realize, b_anc = sch.block_of(block)
    f, l_anc = sch.loop_of(loop)
    blk = realize.block
    name = blk.name
    if blk.init is None:
        raise ScheduleError(f"cannot decompose block {name}: it has no init statement (it is not a reduction "
                            "block, or it was decomposed already)", node=realize)
    if f not in b_anc:
        raise ScheduleArgumentError(f"cannot decompose block {name} at loop {f.loop_var.name}: the loop is not an "
                                    "ancestor of the block", node=f)
    pos = [k for k, a in enumerate(b_anc) if a is f][0]
    reduce_vals = [(iv, val) for iv, val in zip(blk.iter_vars, realize.iter_values)
                   if iv.iter_type != IterType.SPATIAL]
    for a in sch.index().loops_of(name):
        if a is f:
            break
        for iv, val in reduce_vals:
            if uses_var(val, a.loop_var):
                raise ScheduleError(
                    f"cannot decompose block {name} at loop {f.loop_var.name}: loop {a.loop_var.name}, outside it, "
                    f"feeds the reduction axis {iv.var.name}, so the init would run again on each of its iterations; "
                    f"decompose at loop {a.loop_var.name} or further out", node=f)
    below = [a for a in b_anc[pos:] if isinstance(a, For)]
    for lp in below:
        if as_int(lp.extent) != 1 and not any(uses_var(v, lp.loop_var) for v in realize.iter_values) and \
                not uses_var(realize.predicate, lp.loop_var):
            raise ScheduleError(
                f"cannot decompose block {name} at loop {f.loop_var.name}: loop {lp.loop_var.name} inside it feeds "
                f"none of the block's axes, so the update would run again on each of its iterations after a single "
                "init", node=lp)
    spatial = [(iv, val) for iv, val in zip(blk.iter_vars, realize.iter_values) if iv.iter_type == IterType.SPATIAL]
    taken = loop_names(sch.func)
    lmap = {}
    init_loops = []
    for lp in below:
        if any(uses_var(val, lp.loop_var) for _, val in spatial):
            nv = Var(fresh_name(f"{lp.loop_var.name}_init", taken), lp.loop_var.dtype)
            taken.add(nv.name)
            lmap[lp.loop_var] = nv
            init_loops.append((lp, nv))
    ivmap = {iv.var: Var(iv.var.name, iv.var.dtype) for iv, _ in spatial}
    new_ivs = tuple(IterVar(ivmap[iv.var], iv.dom, IterType.SPATIAL) for iv, _ in spatial)
    init_body = substitute(blk.init, ivmap)
    init_name = fresh_name(f"{name}_init", Index(sch.func).blocks)
    init_blk = Block(init_name, new_ivs, (), tuple(substitute(w, ivmap) for w in blk.writes), init_body)
    init_blk = refresh_regions(init_blk)
    dropped = [lp.loop_var for lp in below if lp.loop_var not in lmap]
    pred = realize.predicate
    if any(uses_var(pred, v) for v in dropped):
        pred = IntImm(1, "bool")
    pred = substitute(pred, lmap)
    init_real = BlockRealize(tuple(substitute(val, lmap) for _, val in spatial), pred, init_blk)
    nest = init_real
    for lp, nv in reversed(init_loops):
        nest = For(nv, lp.min, lp.extent, lp.kind, nest, lp.thread)
    update_name = fresh_name(f"{name}_update", Index(sch.func).blocks)
    update = realize.replace(block=refresh_regions(blk.replace(init=None, name=update_name)))
    new_f = replace_in_stmt(f, {id(realize): update})
    new_func = replace_many(sch.func, {id(f): [nest, new_f]})
    return Outcome(func=new_func, outputs=("block", init_name), renames={name: update_name})


def rfactor(sch, loop, factor_axis: int = 0) -> Outcome:
    """Factor a reduction over ``loop`` into a partial-result buffer plus a final reduction.

    The block under ``loop`` must compute ``B[...] = B[...] + value`` with ``loop`` feeding
    one of its reduce axes. The partial results go to ``B_rf`` (a new dimension at
    ``factor_axis`` indexed by that axis), and a new block ``B`` sums them; the partial
    block ``B_rf`` can then be parallelized over ``loop``.

    Before::

        for i, k in wb.grid(128, 128):
            with wb.block("B"):
                vi, vk = wb.axis.remap("SR", [i, k])
                with wb.init():
                    B[vi] = 0.0
                B[vi] = B[vi] + A[vi, vk]

    After ``ko, ki = sch.split(k, [None, 4])`` and ``sch.rfactor(ki, 0)``::

        B_rf = wb.alloc_buffer((4, 128))
        for i, k_0, k_1 in wb.grid(128, 32, 4):
            with wb.block("B_rf"):
                vk_1, vi, vk_0 = wb.axis.remap("SSR", [k_1, i, k_0])
                with wb.init():
                    B_rf[vk_1, vi] = 0.0
                B_rf[vk_1, vi] = B_rf[vk_1, vi] + A[vi, vk_0 * 4 + vk_1]
        for i, k_1 in wb.grid(128, 4):
            with wb.block("B"):
                vi, vk_1 = wb.axis.remap("SR", [i, k_1])
                with wb.init():
                    B[vi] = 0.0
                B[vi] = B[vi] + B_rf[vk_1, vi]
    """
    f, l_anc = sch.loop_of(loop)
    idx = sch.index()
    ln = f.loop_var.name
    from .tree import child_blocks

    reals = child_blocks(f)
    if len(reals) != 1:
        raise ScheduleError(f"cannot rfactor loop {ln}: it must contain exactly one block, it contains {len(reals)}",
                            node=f)
    realize = reals[0]
    blk = realize.block
    name = blk.name
    body = blk.body
    if blk.init is None or not isinstance(body, BufferStore) or not isinstance(body.value, Add) or \
            not isinstance(body.value.a, BufferLoad) or body.value.a.buffer is not body.buffer or \
            any(a is not b for a, b in zip(body.value.a.indices, body.indices)):
        raise ScheduleError(f"cannot rfactor loop {ln}: block {name} is not a sum reduction "
                            "`B[...] = B[...] + value` with an init", node=realize)
    rf_ivs = [(k, iv) for k, (iv, val) in enumerate(zip(blk.iter_vars, realize.iter_values))
              if uses_var(val, f.loop_var)]
    if len(rf_ivs) != 1 or rf_ivs[0][1].iter_type != IterType.REDUCE:
        raise ScheduleError(f"cannot rfactor loop {ln}: it must feed exactly one reduce axis of block {name}",
                            node=f)
    k_rf, iv_rf = rf_ivs[0]
    val_rf = realize.iter_values[k_rf]
    if val_rf is not f.loop_var and not isinstance(val_rf, Var):
        # the reduce axis is a combination of loops: make a new axis for this loop alone
        pass
    out_buf = body.buffer
    nd = len(out_buf.shape)
    if not isinstance(factor_axis, int) or not (-(nd + 1) <= factor_axis <= nd):
        raise ScheduleArgumentError(f"cannot rfactor loop {ln}: factor_axis {factor_axis!r} is out of range for a "
                                    f"{nd + 1}-dimensional buffer", node=f)
    if factor_axis < 0:
        factor_axis += nd + 1
    # new iteration variable of the rf block for this loop
    v_rf = Var(f"v{ln}", f.loop_var.dtype)
    # the old reduce axis is now a function of the other loops and v_rf
    old_val = realize.iter_values[k_rf]
    new_val_for_old = substitute(old_val, {f.loop_var: v_rf})
    others = [iv for k, iv in enumerate(blk.iter_vars) if k != k_rf]
    other_vals = [v for k, v in enumerate(realize.iter_values) if k != k_rf]
    # the remaining reduce part: loops feeding the old axis other than f become a reduce axis each
    red_loops = [lv for lv in collect_vars(old_val) if lv is not f.loop_var]
    idx_loops = {a.loop_var: a for a in l_anc if isinstance(a, For)}
    inner_loops = {}
    for a in _loops_below(f):
        inner_loops[a.loop_var] = a
    red_ivs, red_map = [], {}
    for lv in red_loops:
        lp = idx_loops.get(lv) or inner_loops.get(lv)
        if lp is None or as_int(lp.extent) is None:
            raise ScheduleError(f"cannot rfactor loop {ln}: the loops of the reduce axis must have constant extents",
                                node=f)
        nv = Var(f"v{lv.name}", lv.dtype)
        red_ivs.append(IterVar(nv, Range(lp.min, lp.extent), IterType.REDUCE))
        red_map[lv] = nv
    red_map[f.loop_var] = v_rf
    old_expr = substitute(old_val, red_map)
    rf_shape = list(out_buf.shape)
    rf_shape.insert(factor_axis, f.extent)
    taken_bufs = {b.name for b in sch.func.buffer_map.values()} | {b.name for n in idx.order for b in idx.block(n).alloc_buffers}
    rf_buf = Buffer(fresh_name(f"{out_buf.name}_rf", taken_bufs), tuple(rf_shape), out_buf.dtype, scope=out_buf.scope)
    rf_idx = list(body.indices)
    rf_idx.insert(factor_axis, v_rf)
    value = substitute(body.value.b, {iv_rf.var: old_expr})
    rf_store = BufferStore(rf_buf, BufferLoad(rf_buf, tuple(rf_idx)) + value, tuple(rf_idx))
    rf_init = BufferStore(rf_buf, substitute(blk.init.value, {}), tuple(rf_idx)) \
        if isinstance(blk.init, BufferStore) else None
    if rf_init is None:
        raise ScheduleError(f"cannot rfactor loop {ln}: the init of block {name} is not a single store", node=realize)
    rf_ivars = (IterVar(v_rf, Range(f.min, f.extent), IterType.SPATIAL),) + tuple(others) + tuple(red_ivs)
    rf_vals = (f.loop_var,) + tuple(other_vals) + tuple(red_loops)
    blocks_taken = set(idx.blocks)
    rf_name = fresh_name(f"{name}_rf", blocks_taken)
    rf_blk = refresh_regions(Block(rf_name, rf_ivars, (), (), rf_store, rf_init))
    rf_real = BlockRealize(rf_vals, realize.predicate, rf_blk)
    # write-back block: loops over the spatial axes and the rf axis
    sp = [(iv, val) for iv, val in zip(others, other_vals) if iv.iter_type == IterType.SPATIAL]
    wb_ivs, wb_vals, wb_loops = [], [], []
    vmap = {}
    taken_loops = loop_names(sch.func)
    for iv, _ in sp:
        nv = Var(iv.var.name, iv.var.dtype)
        lv = Var(fresh_name(f"ax{len(wb_loops)}", taken_loops), iv.var.dtype)
        taken_loops.add(lv.name)
        vmap[iv.var] = nv
        wb_ivs.append(IterVar(nv, iv.dom, IterType.SPATIAL))
        wb_vals.append(lv if as_int(iv.dom.min) == 0 else iv.dom.min + lv)
        wb_loops.append((lv, iv.dom.extent))
    r_var = Var(v_rf.name, v_rf.dtype)
    r_loop = Var(fresh_name(f"ax{len(wb_loops)}", taken_loops), v_rf.dtype)
    wb_ivs.append(IterVar(r_var, Range(f.min, f.extent), IterType.REDUCE))
    wb_vals.append(r_loop if as_int(f.min) == 0 else f.min + r_loop)
    wb_loops.append((r_loop, f.extent))
    out_idx = tuple(substitute(i, vmap) for i in body.indices)
    rf_read = list(out_idx)
    rf_read.insert(factor_axis, r_var)
    wb_store = BufferStore(out_buf, BufferLoad(out_buf, out_idx) + BufferLoad(rf_buf, tuple(rf_read)), out_idx)
    wb_init = BufferStore(out_buf, substitute(blk.init.value, vmap), out_idx)
    wb_blk = refresh_regions(Block(name, tuple(wb_ivs), (), (), wb_store, wb_init))
    nest = BlockRealize(tuple(wb_vals), IntImm(1, "bool"), wb_blk)
    for lv, e in reversed(wb_loops):
        nest = For(lv, IntImm(0, lv.dtype), e, ForKind.SERIAL, nest)
    # the outermost loop of the block in its scope: put the write-back after it
    top = None
    for a in l_anc + (f,):
        if isinstance(a, For):
            top = a
            break
    b_real, b_anc = idx.blocks[name]
    scope = idx.scope_of(b_anc)
    top_stmt = None
    for a in b_anc:
        if isinstance(a, For):
            top_stmt = a
            break
    sharing = [r.block.name for r in child_blocks(top_stmt) if r is not realize]
    if sharing:
        raise ScheduleError(
            f"cannot rfactor loop {ln}: block {name} shares its outer loop {top_stmt.loop_var.name} with block(s) "
            f"{', '.join(sharing)}, so its final reduction would have no place before them; apply rfactor before "
            "compute_at/reverse_compute_at", node=top_stmt)
    new_top = replace_in_stmt(top_stmt, {id(realize): rf_real})
    func = replace_many(sch.func, {id(top_stmt): [new_top, nest]})
    # allocate the rf buffer in the scope block
    idx2 = Index(func)
    scope_name = scope.block.name
    sreal = idx2.realize(scope_name)
    func = replace_many(func, {id(sreal): sreal.replace(block=sreal.block.replace(
        alloc_buffers=sreal.block.alloc_buffers + (rf_buf,)))})
    return Outcome(func=func, outputs=("block", rf_name))


def _loops_below(f: For):
    out = []
    cur = f.body
    while isinstance(cur, For):
        out.append(cur)
        cur = cur.body
    return out
