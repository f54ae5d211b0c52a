"""Reductions: ``decompose_reduction`` (init in its own block) and ``rfactor``.

A reduction block has an ``init`` store ``B[idx] = identity`` and an update
``B[idx] = B[idx] <op> value``; ``rfactor`` recognises ``<op>`` as ``+`` (sum), ``*``
(product), ``wb.max`` or ``wb.min`` from that init and update pair, as TVM does.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..ir.arith import Analyzer, detect_iter_map
from ..ir.buffer import Buffer
from ..ir.dtype import is_float, max_value, min_value
from ..ir.expr import (Add, And, BufferLoad, FloatImm, IntImm, Max, Min, Mul, PrimExpr,
                       Range, Var, as_int, logical_and)
from ..ir.functor import collect_vars, substitute, uses_var
from ..ir.stmt import Block, BlockRealize, BufferStore, For, ForKind, IterType, IterVar
from ..ir.structural import structural_equal
from .errors import ScheduleArgumentError, ScheduleError
from .legality import loads_buffer, refresh_regions
from .loops import loop_names
from .state import Outcome
from .tree import Index, child_blocks, fresh_name, replace_in_stmt, replace_many
from .primitive import primitive


# predicates ---------------------------------------------------------------------------------------
def conjuncts(pred: PrimExpr) -> list[PrimExpr]:
    """The terms of ``a and b and ...`` (none for ``True``; a predicate that is no conjunction is one term)."""
    if isinstance(pred, And):
        return conjuncts(pred.a) + conjuncts(pred.b)
    if isinstance(pred, IntImm) and pred.value == 1:
        return []
    return [pred]


def split_predicate(pred: PrimExpr, dropped: Callable[[Var], bool]) -> tuple[PrimExpr, list[PrimExpr]]:
    """``(kept, removed)``: the conjunction of the terms of ``pred`` that use no variable for which
    ``dropped`` holds, and the list of the terms that do.

    >>> from workbench.ir.expr import Var
    >>> i, k = Var("i"), Var("k")
    >>> kept, removed = split_predicate(logical_and(i < 100, k < 100), lambda v: v is k)
    >>> str(kept), [str(c) for c in removed]
    ('i < 100', ['k < 100'])
    """
    kept, removed = [], []
    for c in conjuncts(pred):
        (removed if uses_var(c, dropped) else kept).append(c)
    return logical_and(*kept), removed


def in_vars(vars_) -> Callable[[Var], bool]:
    """A test for "is one of ``vars_``" (by identity), for ``uses_var``."""
    ids = {id(v) for v in vars_}
    return lambda v: id(v) in ids


# decompose_reduction --------------------------------------------------------------------------------
@primitive("reduction")
def decompose_reduction(sch, block, loop) -> Outcome:
    """Split a reduction block into an init block placed before ``loop`` and an update block.

    Returns the handle of the new init block; the original block becomes ``<name>_update``
    (its handle follows it). The init block keeps the terms of the block's predicate that do
    not use the reduction loops it leaves behind (those of a non-dividing split of a spatial
    loop), so it writes exactly the elements that the update writes.

    >>> import workbench as wb
    >>> from workbench import te
    >>> A = te.placeholder((4, 4), "float32", name="A")
    >>> B = te.placeholder((4, 4), "float32", name="B")
    >>> k = te.reduce_axis((0, 4), name="k")
    >>> Y = te.compute((4, 4), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="Y")
    >>> sch = wb.Schedule(wb.create_prim_func([A, B, Y]))
    >>> print(sch.func.script())
    @wb.prim_func
    def main(A: wb.Buffer((4, 4), "float32"), B: wb.Buffer((4, 4), "float32"),
             Y: wb.Buffer((4, 4), "float32")):
        for i, j, k in wb.grid(4, 4, 4):
            with wb.block("Y"):
                v_i, v_j, v_k = wb.axis.remap("SSR", [i, j, k])
                wb.reads(A[v_i, v_k], B[v_k, v_j])
                wb.writes(Y[v_i, v_j])
                with wb.init():
                    Y[v_i, v_j] = 0.0
                Y[v_i, v_j] = Y[v_i, v_j] + A[v_i, v_k] * B[v_k, v_j]
    >>> i, j, k = sch.get_loops(sch.get_block("Y"))
    >>> init = sch.decompose_reduction(sch.get_block("Y"), k)
    >>> print(sch.func.script())
    @wb.prim_func
    def main(A: wb.Buffer((4, 4), "float32"), B: wb.Buffer((4, 4), "float32"),
             Y: wb.Buffer((4, 4), "float32")):
        for i, j in wb.grid(4, 4):
            with wb.block("Y_init"):
                v_i, v_j = wb.axis.remap("SS", [i, j])
                wb.reads()
                wb.writes(Y[v_i, v_j])
                Y[v_i, v_j] = 0.0
            for k in wb.serial(4):
                with wb.block("Y_update"):
                    v_i, v_j, v_k = wb.axis.remap("SSR", [i, j, k])
                    wb.reads(Y[v_i, v_j], A[v_i, v_k], B[v_k, v_j])
                    wb.writes(Y[v_i, v_j])
                    Y[v_i, v_j] = Y[v_i, v_j] + A[v_i, v_k] * B[v_k, v_j]

    With a predicate (``B[i] = sum_k A[i, k]`` over 100 x 100, ``i`` and ``k`` split by 32 and
    reordered to ``i_0, k_0, i_1, k_1``), decomposing at ``k_0`` gives::

        for i_0 in range(4):
            for i_1_init in range(32):
                with wb.block("B_init"):
                    vi = wb.axis.spatial(100, i_0 * 32 + i_1_init)
                    wb.where(i_0 * 32 + i_1_init < 100)
                    B[vi] = 0.0
            for k_0, i_1, k_1 in wb.grid(4, 32, 32):
                with wb.block("B_update"):
                    vi = wb.axis.spatial(100, i_0 * 32 + i_1)
                    vk = wb.axis.reduce(100, k_0 * 32 + k_1)
                    wb.where(i_0 * 32 + i_1 < 100 and k_0 * 32 + k_1 < 100)
                    B[vi] = B[vi] + A[vi, vk]
    """
    realize, b_anc = sch.block_of(block)
    f, _ = sch.loop_of(loop)
    blk = realize.block
    name = blk.name
    fn = f.loop_var.name
    if blk.init is None:
        raise ScheduleError(f"cannot decompose block {name}: it has no init statement (it is not a reduction "
                            "block, or it was decomposed already)", node=realize)
    if f not in b_anc:
        raise ScheduleArgumentError(f"cannot decompose block {name} at loop {fn}: the loop is not an "
                                    "ancestor of the block", node=f)
    pos = next(k for k, a in enumerate(b_anc) if a is f)
    reduce_vals = [(iv, val) for iv, val in zip(blk.iter_vars, realize.iter_values)
                   if iv.iter_type != IterType.SPATIAL]
    block_loops = sch.index().loops_of(name)
    for a in block_loops:
        if a is f:
            break
        for iv, val in reduce_vals:
            if uses_var(val, a.loop_var):
                raise ScheduleError(
                    f"cannot decompose block {name} at loop {fn}: loop {a.loop_var.name}, outside it, "
                    f"feeds the reduction axis {iv.var.name}, so the init would run again on each of its iterations; "
                    f"decompose at loop {a.loop_var.name} or further out", node=f)
    below = [a for a in b_anc[pos:] if isinstance(a, For)]
    _require_init_at_first_iteration(name, fn, reduce_vals, below, f)
    for lp in below:
        if as_int(lp.extent) != 1 and not any(uses_var(v, lp.loop_var) for v in realize.iter_values) and \
                not uses_var(realize.predicate, lp.loop_var):
            raise ScheduleError(
                f"cannot decompose block {name} at loop {fn}: loop {lp.loop_var.name} inside it feeds "
                f"none of the block's axes, so the update would run again on each of its iterations after a single "
                "init", node=lp)
    _require_each_iteration_once(realize, below, fn)
    spatial = [(iv, val) for iv, val in zip(blk.iter_vars, realize.iter_values) if iv.iter_type == IterType.SPATIAL]
    feeds_spatial = in_vars(lp.loop_var for lp in block_loops if any(uses_var(val, lp.loop_var) for _, val in spatial))
    taken = loop_names(sch.func)
    lmap = {}
    init_loops = []
    for lp in below:
        if feeds_spatial(lp.loop_var):
            nv = Var(fresh_name(f"{lp.loop_var.name}_init", taken), lp.loop_var.dtype)
            taken.add(nv.name)
            lmap[lp.loop_var] = nv
            init_loops.append((lp, nv))
    pred = init_predicate(realize.predicate, [lp.loop_var for lp in below if not feeds_spatial(lp.loop_var)],
                           feeds_spatial, f"cannot decompose block {name} at loop {fn}", realize)
    ivmap = {iv.var: Var(iv.var.name, iv.var.dtype) for iv, _ in spatial}
    new_ivs = tuple(IterVar(ivmap[iv.var], iv.dom, IterType.SPATIAL) for iv, _ in spatial)
    init_body = substitute(blk.init, ivmap)
    init_name = fresh_name(f"{name}_init", Index(sch.func).blocks)
    init_blk = Block(init_name, new_ivs, (), tuple(substitute(w, ivmap) for w in blk.writes), init_body)
    init_blk = refresh_regions(init_blk)
    init_real = BlockRealize(tuple(substitute(val, lmap) for _, val in spatial), substitute(pred, lmap), init_blk)
    nest = init_real
    for lp, nv in reversed(init_loops):
        nest = For(nv, lp.min, lp.extent, lp.kind, nest, lp.thread)
    update_name = fresh_name(f"{name}_update", Index(sch.func).blocks)
    update = realize.replace(block=refresh_regions(blk.replace(init=None, name=update_name)))
    new_f = replace_in_stmt(f, {id(realize): update})
    new_func = replace_many(sch.func, {id(f): [nest, new_f]})
    return Outcome(func=new_func, outputs=("block", init_name), renames={name: update_name})


def _require_each_iteration_once(realize: BlockRealize, below: list, fn: str) -> None:
    """The loops from the decomposition point inward must run each iteration of the block once: one that runs
    again (``v_i0 = ax0_0 // 8``, a row recomputed under a loop that compute_at made) starts again from its
    init each time, and a single init before the loop cannot repeat that (the update would add up 8 times)."""
    feeding = [lp for lp in below if any(uses_var(v, lp.loop_var) for v in realize.iter_values)]
    if not feeding:
        return
    doms = {lp.loop_var: Range(lp.min, lp.extent) for lp in feeding}
    if detect_iter_map(list(realize.iter_values), doms, check_level="bijective") is None:
        blk = realize.block
        binds = ", ".join(f"{iv.var.name} = {v}" for iv, v in zip(blk.iter_vars, realize.iter_values))
        raise ScheduleError(
            f"cannot decompose block {blk.name} at loop {fn}: the loops from {fn} inward "
            f"({', '.join(lp.loop_var.name for lp in feeding)}) do not map one-to-one onto the block's axes "
            f"({binds}), so some iteration of the block runs more than once there, each time starting from its "
            "init, which one init before the loop cannot repeat", node=realize)


def _require_init_at_first_iteration(name: str, fn: str, reduce_vals, below: list, node) -> None:
    """The block's init runs where every reduction axis is at its domain's minimum; the decomposed init runs
    before the first iteration of the loops ``below``. Those agree only when the first iteration puts every
    reduction axis at its minimum (a loop that loop_partition started above 0 does not: its block never
    runs the init, and a decomposed one would reset the partial result)."""
    missed = axis_off_start(reduce_vals, below)
    if missed is not None:
        iv, first = missed
        raise ScheduleError(
            f"cannot decompose block {name} at loop {fn}: its first iteration puts the reduction axis "
            f"{iv.var.name} at {first}, not at the start {iv.dom.min} of its domain, so the block "
            f"never runs its init there and a separate init would reset the partial result", node=node)


def axis_off_start(reduce_vals, loops) -> tuple | None:
    """``(axis, value)`` of the first reduction axis that the first iteration of ``loops`` (each at its min)
    does not put at its domain's start, where the block's init runs; None when every one is there.
    ``reduce_vals``: ``(IterVar, binding)`` pairs."""
    start = {lp.loop_var: lp.min for lp in loops}
    an = Analyzer()
    for iv, val in reduce_vals:
        first = substitute(val, start)
        if not an.can_prove_equal(first, iv.dom.min):
            return iv, an.simplify(first)
    return None


def init_predicate(pred: PrimExpr, dropped_loops, feeds_spatial: Callable[[Var], bool], what: str,
                    node) -> PrimExpr:
    """The predicate of an init that runs outside ``dropped_loops`` (reduction loops): the terms of
    ``pred`` that do not use them. A term that uses one of them together with a loop that feeds a
    spatial axis cannot be separated: refused (``what`` starts the message)."""
    kept, removed = split_predicate(pred, in_vars(dropped_loops))
    for c in removed:
        if uses_var(c, feeds_spatial):
            raise ScheduleError(f"{what}: the term `{c}` of its predicate mixes reduction loops with loops of the "
                                "spatial axes, so the init's condition cannot be separated from the update's",
                                node=node)
    return kept


# rfactor ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Reducer:
    """A commutative reduction recognised from a block's update ``B = combiner(B, value)``."""

    name: str
    combiner: type
    identity_text: str

    def is_identity(self, value: float, dtype: str) -> bool:
        """Whether ``value`` is this reducer's identity in ``dtype`` (the extreme values of a dtype both count
        for max and min: ``-inf`` and the lowest finite float, as TVM uses)."""
        if self.combiner is Add:
            return value == 0
        if self.combiner is Mul:
            return value == 1
        low, high = _extremes(dtype)
        return value in low if self.combiner is Max else value in high


REDUCERS = (Reducer("sum", Add, "0"), Reducer("product", Mul, "1"),
            Reducer("max", Max, "the lowest value of the dtype"),
            Reducer("min", Min, "the highest value of the dtype"))


def _extremes(dtype: str) -> tuple[set, set]:
    """(lowest values, highest values) of a dtype: +-inf and the finite extremes for floats."""
    low, high = {float(min_value(dtype))}, {float(max_value(dtype))}
    if is_float(dtype):
        try:
            finfo = np.finfo(np.dtype(dtype))
        except TypeError:  # bfloat16: numpy has no such dtype
            return low, high
        low.add(float(finfo.min))
        high.add(float(finfo.max))
    return low, high


def _same_indices(a, b) -> bool:
    return len(a) == len(b) and all(x is y or structural_equal(x, y) for x, y in zip(a, b))


def match_reduction(block: Block) -> tuple[Reducer, PrimExpr] | None:
    """The reducer of ``block`` and the value it folds in (``A[vi, vk]`` for ``B[vi] = B[vi] + A[vi, vk]``,
    either operand order), or None when its init and body are not one store each of that form."""
    body, init = block.body, block.init
    if not (isinstance(body, BufferStore) and isinstance(init, BufferStore) and init.buffer is body.buffer
            and _same_indices(init.indices, body.indices)):
        return None
    for reducer in REDUCERS:
        if not isinstance(body.value, reducer.combiner):
            continue
        for acc, value in ((body.value.a, body.value.b), (body.value.b, body.value.a)):
            if isinstance(acc, BufferLoad) and acc.buffer is body.buffer and \
                    _same_indices(acc.indices, body.indices) and not loads_buffer(value, body.buffer):
                return reducer, value
    return None


def _const_value(e: PrimExpr) -> float | None:
    return float(e.value) if isinstance(e, (IntImm, FloatImm)) else None


def _check_rfactor_block(realize: BlockRealize, ln: str) -> tuple[Reducer, PrimExpr]:
    """Refuse a block that rfactor cannot split: not a recognised reduction, an output indexed by a reduce
    axis, or an init that is not the identity. Returns the reducer and the value folded in."""
    blk = realize.block
    name = blk.name
    matched = match_reduction(blk)
    out = blk.body.buffer.name if isinstance(blk.body, BufferStore) else "B"
    if matched is None:
        raise ScheduleError(f"cannot rfactor loop {ln}: block {name} is not a sum reduction `{out}[...] = {out}[...] "
                            "+ value` with an init, nor a product, max or min one", node=realize)
    reducer, value = matched
    body = blk.body
    for iv in blk.iter_vars:
        if iv.iter_type != IterType.SPATIAL and any(uses_var(i, iv.var) for i in body.indices):
            idx = ", ".join(str(i) for i in body.indices)
            raise ScheduleError(f"cannot rfactor loop {ln}: block {name} writes {out}[{idx}], indexed by its reduce "
                                f"axis {iv.var.name}, so it does not reduce into one element per spatial point",
                                node=realize)
    init_value = _const_value(blk.init.value)
    if init_value is None or not reducer.is_identity(init_value, body.buffer.dtype):
        raise ScheduleError(f"cannot rfactor loop {ln}: the init of block {name} sets {out} to `{blk.init.value}`, "
                            f"not {reducer.identity_text} (the identity of its {reducer.name}), so every partial "
                            "result would start from it", node=realize)
    return reducer, value


def _check_rfactor_loop(f: For, realize: BlockRealize, block_loops: list[For]) -> tuple[int, list[Var]]:
    """Refuse a loop that rfactor cannot factor out. Returns the position of the reduce axis it feeds and the
    other loops that feed that axis."""
    ln = f.loop_var.name
    blk = realize.block
    if f.kind != ForKind.SERIAL:
        how = f"bound to {f.thread}" if f.kind == ForKind.THREAD_BINDING else f"{f.kind}"
        raise ScheduleError(f"cannot rfactor loop {ln}: it is {how}, and rfactor needs a serial reduction loop; "
                            "rfactor first, then parallelize or bind the factored loop of the new block", node=f)
    axes = list(zip(blk.iter_vars, realize.iter_values))
    fed = [(k, iv) for k, (iv, val) in enumerate(axes) if uses_var(val, f.loop_var)]
    _refuse_fused(f.loop_var, axes, ln, blk.name, f)
    if len(fed) != 1 or fed[0][1].iter_type != IterType.REDUCE:
        raise ScheduleError(f"cannot rfactor loop {ln}: it must feed exactly one reduce axis of block {blk.name}",
                            node=f)
    k_rf = fed[0][0]
    others = [lv for lv in collect_vars(realize.iter_values[k_rf]) if lv is not f.loop_var]
    by_var = {lp.loop_var: lp for lp in block_loops}
    for lv in others:
        lp = by_var.get(lv)
        if lp is None or as_int(lp.extent) is None or as_int(lp.min) is None:
            raise ScheduleError(f"cannot rfactor loop {ln}: the loops of the reduce axis {fed[0][1].var.name} must "
                                f"have constant bounds, and `{lv.name}` is not such a loop", node=f)
        _refuse_fused(lv, axes, ln, blk.name, lp)
    return k_rf, others


def _refuse_fused(lv: Var, axes, ln: str, name: str, node) -> None:
    """Refuse a loop that feeds both a spatial and a reduce axis (one fused from spatial and reduction loops)."""
    sp = [iv.var.name for iv, val in axes if iv.iter_type == IterType.SPATIAL and uses_var(val, lv)]
    rd = [iv.var.name for iv, val in axes if iv.iter_type != IterType.SPATIAL and uses_var(val, lv)]
    if sp and rd:
        raise ScheduleError(f"cannot rfactor loop {ln}: loop {lv.name} feeds both the spatial axis {sp[0]} and the "
                            f"reduce axis {rd[0]} of block {name} (it fuses spatial and reduction loops), so its "
                            "partial results would not be separate", node=node)


@primitive("reduction")
def rfactor(sch, loop, factor_axis: int = 0) -> Outcome:
    """Factor a reduction over ``loop`` into a partial-result buffer plus a final reduction.

    The block under ``loop`` must be a reduction ``B[...] = B[...] <op> value`` with ``<op>``
    one of ``+``, ``*``, ``wb.max``, ``wb.min`` and an init that is the identity of ``<op>``
    (0, 1, the lowest or the highest value), and ``loop`` must be a serial loop that feeds
    one of its reduce axes and no spatial axis. The partial results go to ``B_rf`` (a new
    dimension at ``factor_axis`` indexed by that loop), and a new block ``B`` combines them;
    the partial block ``B_rf`` can then be parallelized over ``loop``.

    >>> import workbench as wb
    >>> from workbench import te
    >>> A = te.placeholder((2, 8), "float32", name="A")
    >>> k = te.reduce_axis((0, 8), name="k")
    >>> B = te.compute((2,), lambda i: te.sum(A[i, k], axis=k), name="B")
    >>> sch = wb.Schedule(wb.create_prim_func([A, B]))
    >>> print(sch.func.script())
    @wb.prim_func
    def main(A: wb.Buffer((2, 8), "float32"), B: wb.Buffer((2,), "float32")):
        for i, k in wb.grid(2, 8):
            with wb.block("B"):
                v_i, v_k = wb.axis.remap("SR", [i, k])
                wb.reads(A[v_i, v_k])
                wb.writes(B[v_i])
                with wb.init():
                    B[v_i] = 0.0
                B[v_i] = B[v_i] + A[v_i, v_k]
    >>> i, k = sch.get_loops(sch.get_block("B"))
    >>> ko, ki = sch.split(k, [None, 4])
    >>> rf = sch.rfactor(ki, 0)
    >>> print(sch.func.script())
    @wb.prim_func
    def main(A: wb.Buffer((2, 8), "float32"), B: wb.Buffer((2,), "float32")):
        B_rf = wb.alloc_buffer((4, 2), "float32")
        for i, k_0, k_1 in wb.grid(2, 2, 4):
            with wb.block("B_rf"):
                vk_1, v_i, vk_0 = wb.axis.remap("SSR", [k_1, i, k_0])
                wb.reads(B_rf[vk_1, v_i], A[v_i, vk_0 * 4 + vk_1])
                wb.writes(B_rf[vk_1, v_i])
                with wb.init():
                    B_rf[vk_1, v_i] = 0.0
                B_rf[vk_1, v_i] = B_rf[vk_1, v_i] + A[v_i, vk_0 * 4 + vk_1]
        for ax0, ax1 in wb.grid(2, 4):
            with wb.block("B"):
                v_i, vk_1 = wb.axis.remap("SR", [ax0, ax1])
                wb.reads(B[v_i], B_rf[vk_1, v_i])
                wb.writes(B[v_i])
                with wb.init():
                    B[v_i] = 0.0
                B[v_i] = B[v_i] + B_rf[vk_1, v_i]

    Under a non-dividing split the final reduction reads only the partial results that
    some iteration computed: for a sum over ``k`` in ``range(100)`` split by ``[None, 128]``,
    ``sch.rfactor(k_1)`` gives a final block with ``wb.where(ax1 < 100)``.
    """
    f, _ = sch.loop_of(loop)
    idx = sch.index()
    ln = f.loop_var.name
    reals = child_blocks(f)
    if len(reals) != 1:
        raise ScheduleError(f"cannot rfactor loop {ln}: it must contain exactly one block, it contains {len(reals)}",
                            node=f)
    realize = reals[0]
    blk = realize.block
    name = blk.name
    reducer, value = _check_rfactor_block(realize, ln)
    block_loops = idx.loops_of(name)
    k_rf, red_loops = _check_rfactor_loop(f, realize, block_loops)
    body = blk.body
    out_buf = body.buffer
    nd = len(out_buf.shape)
    if not isinstance(factor_axis, int) or not (-(nd + 1) <= factor_axis <= nd):
        raise ScheduleArgumentError(f"cannot rfactor loop {ln}: factor_axis {factor_axis!r} is out of range for a "
                                    f"{nd + 1}-dimensional buffer", node=f)
    if factor_axis < 0:
        factor_axis += nd + 1
    top_stmt = next(a for a in idx.blocks[name][1] if isinstance(a, For))
    sharing = [r.block.name for r in child_blocks(top_stmt) if r is not realize]
    if sharing:
        raise ScheduleError(
            f"cannot rfactor loop {ln}: block {name} shares its outer loop {top_stmt.loop_var.name} with block(s) "
            f"{', '.join(sharing)}, so its final reduction would have no place before them; apply rfactor before "
            "compute_at/reverse_compute_at", node=top_stmt)
    spatial_ids = in_vars(lp.loop_var for lp in block_loops
                           if any(uses_var(val, lp.loop_var) for iv, val in zip(blk.iter_vars, realize.iter_values)
                                  if iv.iter_type == IterType.SPATIAL))
    rf_buf = _rf_buffer(sch, idx, out_buf, factor_axis, f.extent)
    rf_real = _rf_block(idx, realize, f, k_rf, red_loops, block_loops, rf_buf, factor_axis, reducer, value)
    wb_nest = _write_back(sch, realize, f, k_rf, block_loops, spatial_ids, rf_buf, factor_axis, reducer)
    new_top = replace_in_stmt(top_stmt, {id(realize): rf_real})
    func = replace_many(sch.func, {id(top_stmt): [new_top, wb_nest]})
    # allocate the rf buffer in the scope block
    sreal = Index(func).realize(idx.scope_of(idx.blocks[name][1]).block.name)
    func = replace_many(func, {id(sreal): sreal.replace(block=sreal.block.replace(
        alloc_buffers=sreal.block.alloc_buffers + (rf_buf,)))})
    return Outcome(func=func, outputs=("block", rf_real.block.name))


def _rf_buffer(sch, idx: Index, out_buf: Buffer, factor_axis: int, extent: PrimExpr) -> Buffer:
    shape = list(out_buf.shape)
    shape.insert(factor_axis, extent)
    taken = {b.name for b in sch.func.buffer_map.values()} | \
        {b.name for n in idx.order for b in idx.block(n).alloc_buffers}
    return Buffer(fresh_name(f"{out_buf.name}_rf", taken), tuple(shape), out_buf.dtype, scope=out_buf.scope)


def _from_zero(v: PrimExpr, lo: PrimExpr) -> PrimExpr:
    return v if as_int(lo) == 0 else v - lo


def _rf_block(idx: Index, realize: BlockRealize, f: For, k_rf: int, red_loops: list[Var], block_loops: list[For],
              rf_buf: Buffer, factor_axis: int, reducer: Reducer, value: PrimExpr) -> BlockRealize:
    """The block computing the partial results: the reduction with ``f`` made a spatial axis."""
    blk = realize.block
    body = blk.body
    taken = {iv.var.name for iv in blk.iter_vars}
    ln = f.loop_var.name
    v_rf = Var(fresh_name(f"v{ln}", taken), f.loop_var.dtype)
    taken.add(v_rf.name)
    by_var = {lp.loop_var: lp for lp in block_loops}
    red_ivs, red_map = [], {f.loop_var: v_rf}
    for lv in red_loops:
        lp = by_var[lv]
        nv = Var(fresh_name(f"v{lv.name}", taken), lv.dtype)
        taken.add(nv.name)
        red_ivs.append(IterVar(nv, Range(lp.min, lp.extent), IterType.REDUCE))
        red_map[lv] = nv
    old_expr = substitute(realize.iter_values[k_rf], red_map)
    others = [iv for k, iv in enumerate(blk.iter_vars) if k != k_rf]
    other_vals = [v for k, v in enumerate(realize.iter_values) if k != k_rf]
    rf_idx = list(body.indices)
    rf_idx.insert(factor_axis, _from_zero(v_rf, f.min))
    rf_idx = tuple(rf_idx)
    folded = substitute(value, {blk.iter_vars[k_rf].var: old_expr})
    rf_store = BufferStore(rf_buf, reducer.combiner(BufferLoad(rf_buf, rf_idx), folded), rf_idx)
    rf_init = BufferStore(rf_buf, blk.init.value, rf_idx)
    rf_ivars = (IterVar(v_rf, Range(f.min, f.extent), IterType.SPATIAL),) + tuple(others) + tuple(red_ivs)
    rf_vals = (f.loop_var,) + tuple(other_vals) + tuple(red_loops)
    rf_name = fresh_name(f"{blk.name}_rf", set(idx.blocks))
    rf_blk = refresh_regions(Block(rf_name, rf_ivars, (), (), rf_store, rf_init))
    return BlockRealize(rf_vals, realize.predicate, rf_blk)


def _write_back(sch, realize: BlockRealize, f: For, k_rf: int, block_loops: list[For],
                spatial_ids: Callable[[Var], bool], rf_buf: Buffer, factor_axis: int, reducer: Reducer) -> For:
    """The final reduction: loops over the spatial axes and over ``f``, combining the partial results."""
    blk = realize.block
    body = blk.body
    out_buf = body.buffer
    others = [iv for k, iv in enumerate(blk.iter_vars) if k != k_rf]
    wb_ivs, wb_vals, wb_loops = [], [], []
    vmap = {}
    taken_loops = loop_names(sch.func)
    for iv in others:
        if iv.iter_type != IterType.SPATIAL:
            continue
        nv = Var(iv.var.name, iv.var.dtype)
        lv = Var(fresh_name(f"ax{len(wb_loops)}", taken_loops), iv.var.dtype)
        taken_loops.add(lv.name)
        vmap[iv.var] = nv
        lo, extent = _covered(iv, realize, block_loops)
        wb_ivs.append(IterVar(nv, iv.dom, IterType.SPATIAL))
        wb_vals.append(lv if as_int(lo) == 0 else lo + lv)
        wb_loops.append((lv, extent))
    r_var = Var(fresh_name(f"v{f.loop_var.name}", {iv.var.name for iv in others}), f.loop_var.dtype)
    r_loop = Var(fresh_name(f"ax{len(wb_loops)}", taken_loops), f.loop_var.dtype)
    r_val = r_loop if as_int(f.min) == 0 else f.min + r_loop
    wb_ivs.append(IterVar(r_var, Range(f.min, f.extent), IterType.REDUCE))
    wb_vals.append(r_val)
    wb_loops.append((r_loop, f.extent))
    out_idx = tuple(substitute(i, vmap) for i in body.indices)
    rf_read = list(out_idx)
    rf_read.insert(factor_axis, _from_zero(r_var, f.min))
    wb_store = BufferStore(out_buf, reducer.combiner(BufferLoad(out_buf, out_idx),
                                                     BufferLoad(rf_buf, tuple(rf_read))), out_idx)
    wb_init = BufferStore(out_buf, blk.init.value, out_idx)
    wb_blk = refresh_regions(Block(blk.name, tuple(wb_ivs), (), (), wb_store, wb_init))
    pred = _initialised_partials(realize, f, r_val, r_loop, block_loops, spatial_ids)
    nest = BlockRealize(tuple(wb_vals), pred, wb_blk)
    for lv, e in reversed(wb_loops):
        nest = For(lv, IntImm(0, lv.dtype), e, ForKind.SERIAL, nest)
    return nest


def _covered(iv: IterVar, realize: BlockRealize, block_loops: list[For]) -> tuple[PrimExpr, PrimExpr]:
    """``(min, extent)`` of the part of the spatial axis ``iv``'s domain that the block computes: the whole
    domain, or the range of the one loop bound to it when that covers less (a loop of ``wb.serial(2, 6)``
    after loop_partition). The final reduction must write exactly those elements. Refused otherwise."""
    blk = realize.block
    val = realize.iter_values[list(blk.iter_vars).index(iv)]
    an = Analyzer()
    for lp in block_loops:
        an.bind(lp.loop_var, Range(lp.min, lp.extent))
    dom_lo, dom_ext = as_int(iv.dom.min), as_int(iv.dom.extent)
    b = an.const_int_bound(val)
    if dom_lo is None or dom_ext is None or b.min_value <= dom_lo and b.max_value >= dom_lo + dom_ext - 1:
        return iv.dom.min, iv.dom.extent
    lo, hi = max(b.min_value, dom_lo), min(b.max_value, dom_lo + dom_ext - 1)
    if isinstance(val, Var) and any(lp.loop_var is val for lp in block_loops) and hi >= lo:
        return IntImm(lo, val.dtype), IntImm(hi - lo + 1, val.dtype)
    raise ScheduleError(f"cannot rfactor block {blk.name}: its spatial axis {iv.var.name} is bound to `{val}`, "
                        f"which covers only part of the axis' domain, so the final reduction could not tell "
                        "which elements to write", node=realize)


def _initialised_partials(realize: BlockRealize, f: For, r_val: PrimExpr, r_loop: Var, block_loops: list[For],
                          spatial_ids: Callable[[Var], bool]) -> PrimExpr:
    """Where the partial result for ``f == r_val`` exists: the block's init for it runs (under a non-dividing
    split some partials have every iteration predicated away and are never written). That is the block's
    predicate, without its terms over spatial loops only (the final reduction covers the spatial domains),
    at ``f == r_val`` and every other loop at its first iteration, where the init runs."""
    name = realize.block.name
    first = {lp.loop_var: lp.min for lp in block_loops}
    first[f.loop_var] = r_val
    is_loop = in_vars(lp.loop_var for lp in block_loops)
    terms = []
    for c in conjuncts(realize.predicate):
        if not uses_var(c, spatial_ids):
            terms.append(substitute(c, first))
        elif uses_var(c, lambda v: is_loop(v) and not spatial_ids(v)):
            raise ScheduleError(f"cannot rfactor loop {f.loop_var.name}: the term `{c}` of the predicate of block "
                                f"{name} mixes reduction loops with loops of the spatial axes, so the partial results "
                                "that exist cannot be told apart", node=realize)
    an = Analyzer()
    an.bind(r_loop, Range(IntImm(0, r_loop.dtype), f.extent))
    return an.simplify(logical_and(*terms))
