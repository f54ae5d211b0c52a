"""Padding: ``pad_einsum`` (pad an einsum's iteration domain) and ``decompose_padding``.

``pad_einsum`` rounds the iteration domain of an einsum-like block (every buffer indexed
by plain iteration variables, as ``C[i, j] += A[i, k] * B[k, j]``) up to multiples, so
loops split evenly: the inputs are copied into zero-padded buffers, the block computes
into a padded output, and a block copies the valid part back. ``decompose_padding``
splits a block that writes a padded buffer (``P[v] = if_then_else(in_bounds, X[v - 1], 0)``)
into a block that fills the pad value and a block that copies the interior without a
condition, as TVM does.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Sequence

from ..ir.arith import Analyzer, detect_iter_map
from ..ir.arith.region import bounds_from_condition
from ..ir.buffer import Buffer
from ..ir.dtype import is_integer, max_value
from ..ir.expr import (EQ, GE, GT, LE, LT, Add, BufferLoad, Call, Cast, Div, FloatImm, FloorDiv, FloorMod,
                       IntImm, Max, Min, Mod, Mul, PrimExpr, Range, Sub, Var, as_int, if_then_else, logical_and)
from ..ir.functor import Mutator, post_order_visit, substitute, uses_var
from ..ir.stmt import Block, BlockRealize, BufferStore, For, ForKind, IterType, IterVar, SeqStmt, seq
from .errors import (DependenceError, LoopPositionError, NonAffineBindingError, NotEinsumError, NotPaddingError,
                     ScheduleArgumentError)
from .legality import buffer_users, refresh_regions
from .loops import loop_names
from .primitive import primitive
from .reduction import conjuncts, match_reduction
from .state import Outcome
from .tree import Index, all_realizes, fresh_name, replace_in_stmt, replace_many


# pad_einsum -------------------------------------------------------------------------------------------------------
@dataclass
class _Einsum:
    """The accesses of an einsum-like block: its store, and one index tuple per input buffer."""

    store: BufferStore
    inputs: dict  # Buffer -> tuple of indices (each an iteration variable or an int constant)


def _is_trivial(indices, ivars: set) -> bool:
    return all(isinstance(i, IntImm) or (isinstance(i, Var) and id(i) in ivars) for i in indices)


def _loads(expr) -> list[BufferLoad]:
    out: list[BufferLoad] = []
    post_order_visit(expr, lambda n: out.append(n) if isinstance(n, BufferLoad) else None)
    return out


def _same_indices(a, b) -> bool:
    return len(a) == len(b) and all(x is y or (isinstance(x, IntImm) and isinstance(y, IntImm) and x.value == y.value)
                                    for x, y in zip(a, b))


def _extract_einsum(realize: BlockRealize) -> _Einsum:
    """The block's accesses, or a ``NotEinsumError`` saying why it is not einsum-like."""
    blk = realize.block
    name = blk.name
    ivars = {id(iv.var) for iv in blk.iter_vars}

    def refuse(why: str):
        raise NotEinsumError(f"cannot pad_einsum block {name}: {why}, so it is not einsum-like", node=realize)

    store = blk.body
    if not isinstance(store, BufferStore):
        refuse("its body is not a single store")
    if not _is_trivial(store.indices, ivars):
        refuse(f"it writes {store.buffer.name} at indices that are not plain iteration variables")
    if blk.init is not None and not (isinstance(blk.init, BufferStore) and blk.init.buffer is store.buffer
                                     and _same_indices(blk.init.indices, store.indices)):
        refuse("its init is not one store to the element its body writes")
    inputs: dict = {}
    for load in _loads(store.value) + ([] if blk.init is None else _loads(blk.init.value)):
        if load.buffer is store.buffer:
            if blk.init is None or not _same_indices(load.indices, store.indices):
                refuse(f"it reads the buffer {store.buffer.name} it writes (an in-place update without an init)")
            continue
        if not _is_trivial(load.indices, ivars):
            refuse(f"it reads {load.buffer.name} at indices that are not plain iteration variables")
        seen = inputs.setdefault(load.buffer, load.indices)
        if not _same_indices(seen, load.indices):
            refuse(f"it reads {load.buffer.name} at two different indices")
    return _Einsum(store, inputs)


def _check_padding(realize: BlockRealize, padding) -> list[int]:
    blk = realize.block
    n = len(blk.iter_vars)
    ok = isinstance(padding, (list, tuple)) and len(padding) == n and all(
        isinstance(p, numbers.Integral) and not isinstance(p, bool) and int(p) > 0 for p in padding)
    if not ok:
        raise ScheduleArgumentError(f"cannot pad_einsum block {blk.name}: padding must be a list of {n} positive "
                                    f"ints (one per iteration variable), got {padding!r}", node=realize)
    return [int(p) for p in padding]


def _padded_extents(realize: BlockRealize, padding: list[int], an: Analyzer) -> dict:
    """``{iteration variable: padded extent}`` for the variables whose extent changes."""
    out = {}
    for iv, p in zip(realize.block.iter_vars, padding):
        ext = iv.dom.extent
        if p > max_value(ext.dtype) or (isinstance(ext, IntImm) and -(-ext.value // p) * p > max_value(ext.dtype)):
            raise ScheduleArgumentError(f"cannot pad_einsum block {realize.block.name}: padding {iv.var.name} to a "
                                        f"multiple of {p} is more than its dtype {ext.dtype} can count", node=realize)
        new = IntImm(-(-ext.value // p) * p, ext.dtype) if isinstance(ext, IntImm) else \
            an.simplify(FloorDiv(ext + (p - 1), IntImm(p, ext.dtype)) * p)
        if an.can_prove_equal(new, ext):
            continue
        if not an.can_prove_equal(iv.dom.min, 0):
            raise NotEinsumError(f"cannot pad_einsum block {realize.block.name}: its iteration variable "
                                 f"{iv.var.name} starts at {iv.dom.min}, not 0", node=realize)
        out[iv.var] = new
    return out


def _vanishes(expr: PrimExpr, zero) -> bool:
    """True when ``expr`` is 0 whenever every load for which ``zero(load)`` holds reads 0."""
    if isinstance(expr, BufferLoad):
        return zero(expr)
    if isinstance(expr, Mul):
        return _vanishes(expr.a, zero) or _vanishes(expr.b, zero)
    if isinstance(expr, (Add, Sub)):
        return _vanishes(expr.a, zero) and _vanishes(expr.b, zero)
    if isinstance(expr, Cast):
        return _vanishes(expr.value, zero)
    if isinstance(expr, (IntImm, FloatImm)):
        return expr.value == 0
    return False


def _check_padded_reduction(realize: BlockRealize, ein: _Einsum, padded: dict) -> None:
    """Padding a reduce axis adds iterations that fold in values computed from zero padding: allowed only for a
    sum whose folded value is 0 there (a product of a padded input, as in matmul)."""
    blk = realize.block
    for iv in blk.iter_vars:
        if iv.iter_type == IterType.SPATIAL or iv.var not in padded:
            continue
        matched = match_reduction(blk)
        if matched is None or matched[0].name != "sum":
            raise NotEinsumError(
                f"cannot pad_einsum block {blk.name}: padding its reduce axis {iv.var.name} needs a sum reduction "
                "(the extra iterations fold in zeros), and the block is not one", node=realize)
        def padded_load(load: BufferLoad, v: Var = iv.var) -> bool:
            return load.buffer in ein.inputs and any(i is v for i in load.indices)

        if not _vanishes(matched[1], padded_load):
            raise NotEinsumError(
                f"cannot pad_einsum block {blk.name}: padding its reduce axis {iv.var.name} would add "
                f"`{matched[1]}` at padded points, which is not 0 when the padded inputs are 0", node=realize)


def _check_no_division(realize: BlockRealize, ein: _Einsum) -> None:
    """Padded inputs hold zeros: an integer division by a loaded value could then divide by zero."""
    found = []

    def note(n):
        if isinstance(n, (Div, Mod, FloorDiv, FloorMod)) and is_integer(n.dtype) and _loads(n.b):
            found.append(n)

    post_order_visit(ein.store.value, note)
    if found:
        raise NotEinsumError(f"cannot pad_einsum block {realize.block.name}: it divides by `{found[0].b}`, which "
                             "is 0 at padded points", node=realize)


def _padded_buffer(buf: Buffer, indices, padded: dict, box: dict, taken: set, an: Analyzer) -> Buffer | None:
    """The padded copy of ``buf`` (None when no dimension is indexed by a padded variable). A dimension indexed by
    an unpadded variable keeps its extent unless the block's box of that variable runs past it (a block that reads
    ``buf`` only under a guard, as a padding block does): the copy then spans the box."""
    if not any(isinstance(i, Var) and i in padded for i in indices):
        return None
    shape = tuple(padded[i] if isinstance(i, Var) and i in padded else _spanned_extent(i, dim, box, an)
                  for i, dim in zip(indices, buf.shape))
    name = fresh_name(f"{buf.name}_pad", taken)
    taken.add(name)
    return Buffer(name, shape, buf.dtype, scope=buf.scope)


def _spanned_extent(index, dim: PrimExpr, box: dict, an: Analyzer) -> PrimExpr:
    """``dim``, or the end of the box of ``index`` when that box may run past ``dim``."""
    if not isinstance(index, Var):
        return dim
    start, ext = box[id(index)]
    end = an.simplify(start + ext)
    return dim if an.can_prove(end <= dim) else an.simplify(Max(dim, end))


def _copy_nest(name: str, box, make_body, taken_loops: set) -> For:
    """``for i0, i1, ...: with block(name): body(v)`` over ``box`` (one ``(start, extent)`` per dimension);
    ``make_body`` gets the block's iteration variables offset by the box's starts."""
    ivs, loops, idx = [], [], []
    for d, (start, ext) in enumerate(box):
        v = Var(f"v{d}", ext.dtype)
        lv = Var(fresh_name(f"i{d}", taken_loops), ext.dtype)
        taken_loops.add(lv.name)
        ivs.append(IterVar(v, Range(IntImm(0, ext.dtype), ext), IterType.SPATIAL))
        loops.append((lv, ext))
        idx.append(v if as_int(start) == 0 else v + start)
    blk = refresh_regions(Block(name, tuple(ivs), (), (), make_body(tuple(idx))))
    nest = BlockRealize(tuple(lv for lv, _ in loops), IntImm(1, "bool"), blk)
    for lv, ext in reversed(loops):
        nest = For(lv, IntImm(0, ext.dtype), ext, ForKind.SERIAL, nest)
    return nest


def _read_copy(src: Buffer, dst: Buffer, indices, read_box: dict, valid_end: dict, name: str, taken_loops: set,
               an: Analyzer) -> For:
    """``dst[v] = if_then_else(v < valid end, src[v], 0)`` over exactly the box of ``dst`` the padded block reads."""
    def body(v):
        conds = []
        for d, (i, dim) in enumerate(zip(indices, src.shape)):
            if not isinstance(i, Var):
                continue
            start, ext = read_box[id(i)]
            end = valid_end.get(id(i), an.simplify(start + ext))
            if id(i) in valid_end:
                conds.append(v[d] < end)
            if not an.can_prove(dim >= end):
                conds.append(v[d] < dim)
        zero = FloatImm(0.0, src.dtype) if not is_integer(src.dtype) else IntImm(0, src.dtype)
        cond = logical_and(*conds) if conds else None
        return BufferStore(dst, BufferLoad(src, v) if cond is None else if_then_else(cond, BufferLoad(src, v), zero), v)

    return _copy_nest(name, _index_box(indices, read_box), body, taken_loops)


def _write_back(src: Buffer, dst: Buffer, indices, write_box: dict, name: str, taken_loops: set) -> For:
    """``dst[v] = src[v]`` over exactly the box of ``dst`` that the block writes."""
    return _copy_nest(name, _index_box(indices, write_box), lambda v: BufferStore(dst, BufferLoad(src, v), v),
                      taken_loops)


def _index_box(indices, box: dict) -> list:
    """``(start, extent)`` per index: the iteration variable's box, or the one element of a constant index."""
    return [box[id(i)] if isinstance(i, Var) else (i, IntImm(1, i.dtype)) for i in indices]


def _iteration_box(idx: Index, realize: BlockRealize) -> dict:
    """``{id(iteration variable): (start, extent)}``: exactly the values the block's loops and predicate give each
    variable (which may be less than its domain, as in one part of a partitioned loop). Refused when that set is
    not a box, since the copies could then not cover exactly what the block reads and writes."""
    blk = realize.block
    loops = idx.loops_of(blk.name)
    an = Analyzer()
    for lp in loops:
        an.bind(lp.loop_var, Range(lp.min, lp.extent))

    def refuse(why: str):
        raise NonAffineBindingError(f"cannot pad_einsum block {blk.name}: {why}, so the part of its buffers it "
                                    "touches is not a box the padded copies could cover exactly", node=realize)

    found = detect_iter_map(list(realize.iter_values), {lp.loop_var: Range(lp.min, lp.extent) for lp in loops})
    if found is None:
        refuse("its bindings are not an affine map of its loops")
    box = []
    for iv, val, term in zip(blk.iter_vars, realize.iter_values, found.indices):
        dt = iv.var.dtype
        if not term.args:
            box.append([term.base, term.base + IntImm(1, dt)])
            continue
        split = term.args[0]
        if split.scale != 1:
            refuse(f"its iteration variable {iv.var.name} = {val} steps by {split.scale}")
        box.append([term.base, an.simplify(term.base + _as_expr(split.extent, dt))])
    for lp in loops:
        if not any(uses_var(v, lp.loop_var) for v in realize.iter_values) and not an.can_prove(lp.extent >= 1):
            refuse(f"its loop {lp.loop_var.name} feeds no iteration variable and may run no iteration")
    for term in conjuncts(realize.predicate):
        if not _narrow_by(box, term, realize.iter_values, loops, an):
            refuse(f"its predicate term `{term}` does not bound one of its iteration variables by a loop-free value")
    return {id(iv.var): (lo, an.simplify(hi - lo)) for iv, (lo, hi) in zip(blk.iter_vars, box)}


def _as_expr(x, dtype: str) -> PrimExpr:
    return IntImm(x, dtype) if isinstance(x, int) else x


def _narrow_by(box: list, term: PrimExpr, values, loops: list[For], an: Analyzer) -> bool:
    """Narrow ``box`` (``[lo, hi)`` per binding) by the predicate ``term`` when it bounds one binding by a
    loop-free value; False when it does not."""
    used = False
    for e, kind, c in bounds_from_condition(term):
        if any(uses_var(c, lp.loop_var) for lp in loops):
            continue
        k = next((k for k, v in enumerate(values) if v.dtype == e.dtype and an.can_prove_equal(e, v)), None)
        if k is None:
            continue
        used = True
        lo, hi = box[k]
        if kind == "le":
            end = an.simplify(c + IntImm(1, c.dtype))
            box[k][1] = hi if an.can_prove(hi <= end) else end if an.can_prove(end <= hi) else an.simplify(Min(hi, end))
        else:
            box[k][0] = lo if an.can_prove(c <= lo) else c if an.can_prove(lo <= c) else an.simplify(Max(lo, c))
    return used


def _top_stmt(anc: tuple, scope: BlockRealize, node):
    """The statement directly in the scope's body that holds ``node``."""
    chain = list(anc) + [node]
    k = next(k for k, a in enumerate(chain) if a is scope.block)
    nxt = chain[k + 1]
    return chain[k + 2] if isinstance(nxt, SeqStmt) else nxt


def _check_neighbours(idx: Index, realize: BlockRealize, anc: tuple, moved_inputs, output) -> None:
    """The copies go before and after the block's loop nest: no producer of a padded input and no other user of
    the padded output may share that nest."""
    scope = idx.scope_of(anc)
    top = _top_stmt(anc, scope, realize)
    name = realize.block.name
    in_nest = {r.block.name for r in all_realizes(top)}
    for buf in moved_inputs:
        writers = [w for w in buffer_users(idx, buf)[0] if w in in_nest]
        if writers:
            raise DependenceError(f"cannot pad_einsum block {name}: block {writers[0]} writes its input {buf.name} "
                                  "in the same loop nest, so a padded copy before that nest would miss it",
                                  node=idx.realize(writers[0]))
    if output is not None:
        writers, readers = buffer_users(idx, output)
        others = [b for b in writers + readers if b != name and b in in_nest]
        if others:
            raise DependenceError(f"cannot pad_einsum block {name}: block {others[0]} uses its output "
                                  f"{output.name} in the same loop nest, so copying the padded result back after "
                                  "that nest would come too late", node=idx.realize(others[0]))


def _extend_loops(idx: Index, realize: BlockRealize, anc: tuple, padded: dict, an: Analyzer) -> dict:
    """``{id(loop): loop with the padded extent}`` for each padded variable bound to a loop of its own (a loop that
    holds only this block and feeds only that variable); other loops keep their extents (the block then simply
    does not run the padded iterations)."""
    blk = realize.block
    loops = {lp.loop_var: lp for lp in idx.loops_of(blk.name)}
    out = {}
    for iv, val in zip(blk.iter_vars, realize.iter_values):
        lp = loops.get(val) if isinstance(val, Var) else None
        if iv.var not in padded or lp is None:
            continue
        uses = sum(1 for other in realize.iter_values if uses_var(other, lp.loop_var))
        pos = next(k for k, a in enumerate(anc) if a is lp)
        own = all(isinstance(a, For) for a in anc[pos:])   # a chain of loops down to the block alone
        exact = an.can_prove_equal(lp.min, 0) and an.can_prove_equal(lp.extent, iv.dom.extent)
        if uses == 1 and own and exact and not uses_var(realize.predicate, lp.loop_var):
            out[id(lp)] = padded[iv.var]
    return out


def _padded_box(idx: Index, realize: BlockRealize, box: dict, extended: dict, padded: dict) -> tuple[dict, dict]:
    """``(box the padded block iterates, {id(var): end of its real values})``: a variable whose loop grows runs
    over ``[0, padded extent)``, of which only ``[0, old end)`` holds data; the others keep their box."""
    grown = {lp.loop_var for lp in idx.loops_of(realize.block.name) if id(lp) in extended}
    out, valid_end = dict(box), {}
    for iv, val in zip(realize.block.iter_vars, realize.iter_values):
        if isinstance(val, Var) and val in grown:
            start, extent = box[id(iv.var)]
            out[id(iv.var)] = (start, padded[iv.var])
            valid_end[id(iv.var)] = extent
    return out, valid_end


def _rewrite_nest(stmt, realize: BlockRealize, new_realize: BlockRealize, extents: dict):
    """``stmt`` with ``realize`` replaced and the loops named in ``extents`` (by id) given their new extents."""
    if stmt is realize:
        return new_realize
    if isinstance(stmt, For):
        body = _rewrite_nest(stmt.body, realize, new_realize, extents)
        ext = extents.get(id(stmt), stmt.extent)
        return stmt if body is stmt.body and ext is stmt.extent else stmt.replace(body=body, extent=ext)
    if isinstance(stmt, SeqStmt):
        items = [_rewrite_nest(c, realize, new_realize, extents) for c in stmt.seq]
        return stmt if all(a is b for a, b in zip(items, stmt.seq)) else seq(*items)
    return replace_in_stmt(stmt, {id(realize): new_realize})


@primitive("padding")
def pad_einsum(sch, block, padding: Sequence[int]) -> Outcome:
    """Pad the iteration domain of an einsum-like block to multiples of ``padding`` (one int per iteration variable).

    Each input indexed by a padded variable is copied into a zero-padded buffer ``<name>_pad``
    (a block before the computation), the block computes into a padded output and a block
    after it copies the valid part back. The copies cover exactly the box of each buffer the
    block touches (less than the buffer when the block is one part of a partitioned loop);
    a block whose bindings or predicate do not touch a box is refused. Loops bound to a
    padded variable alone grow to the padded extent. The block must be einsum-like: one store, and every buffer indexed by
    plain iteration variables or constants; padding a reduce axis needs a sum whose folded
    value is 0 where an input is 0 (``A * B``), so that the padded iterations add nothing.

    >>> import workbench as wb
    >>> from workbench import te
    >>> A = te.placeholder((5, 3), "float32", name="A")
    >>> B = te.placeholder((3,), "float32", name="B")
    >>> k = te.reduce_axis((0, 3), name="k")
    >>> C = te.compute((5,), lambda i: te.sum(A[i, k] * B[k], axis=k), name="C")
    >>> sch = wb.Schedule(wb.create_prim_func([A, B, C]))
    >>> print(sch.func.script())
    @wb.prim_func
    def main(A: wb.Buffer((5, 3), "float32"), B: wb.Buffer((3,), "float32"),
             C: wb.Buffer((5,), "float32")):
        for i, k in wb.grid(5, 3):
            with wb.block("C"):
                v_i, v_k = wb.axis.remap("SR", [i, k])
                wb.reads(A[v_i, v_k], B[v_k])
                wb.writes(C[v_i])
                with wb.init():
                    C[v_i] = 0.0
                C[v_i] = C[v_i] + A[v_i, v_k] * B[v_k]
    >>> sch.pad_einsum(sch.get_block("C"), [4, 1])
    >>> print(sch.func.script())
    @wb.prim_func
    def main(A: wb.Buffer((5, 3), "float32"), B: wb.Buffer((3,), "float32"),
             C: wb.Buffer((5,), "float32")):
        A_pad = wb.alloc_buffer((8, 3), "float32")
        C_pad = wb.alloc_buffer((8,), "float32")
        for i0, i1 in wb.grid(8, 3):
            with wb.block("A_pad"):
                v0, v1 = wb.axis.remap("SS", [i0, i1])
                wb.reads(A[v0, v1])
                wb.writes(A_pad[v0, v1])
                A_pad[v0, v1] = wb.if_then_else(v0 < 5, A[v0, v1], 0.0)
        for i, k in wb.grid(8, 3):
            with wb.block("C"):
                v_i, v_k = wb.axis.remap("SR", [i, k])
                wb.reads(A_pad[v_i, v_k], B[v_k])
                wb.writes(C_pad[v_i])
                with wb.init():
                    C_pad[v_i] = 0.0
                C_pad[v_i] = C_pad[v_i] + A_pad[v_i, v_k] * B[v_k]
        for i0_1 in wb.serial(5):
            with wb.block("C_pad"):
                v0, = wb.axis.remap("S", [i0_1])
                wb.reads(C_pad[v0])
                wb.writes(C[v0])
                C[v0] = C_pad[v0]
    """
    realize, anc = sch.block_of(block)
    blk = realize.block
    pads = _check_padding(realize, padding)
    ein = _extract_einsum(realize)
    an = Analyzer()
    padded = _padded_extents(realize, pads, an)
    if not padded:
        return Outcome(func=None)
    _check_padded_reduction(realize, ein, padded)
    _check_no_division(realize, ein)
    idx = sch.index()
    taken = {b.name for b in sch.func.buffer_map.values()}
    for n in idx.order:
        taken |= {b.name for b in idx.block(n).alloc_buffers}
    write_box = _iteration_box(idx, realize)
    extended = _extend_loops(idx, realize, anc, padded, an)
    read_box, valid_end = _padded_box(idx, realize, write_box, extended, padded)
    new_inputs = {buf: p for buf, ind in ein.inputs.items()
                  if (p := _padded_buffer(buf, ind, padded, read_box, taken, an)) is not None}
    out_buf = ein.store.buffer
    out_pad = _padded_buffer(out_buf, ein.store.indices, padded, read_box, taken, an)
    _check_neighbours(idx, realize, anc, list(new_inputs), out_buf if out_pad is not None else None)
    taken_loops = loop_names(sch.func)
    block_names = set(idx.blocks)
    before = []
    for buf, pbuf in new_inputs.items():
        name = fresh_name(pbuf.name, block_names)
        block_names.add(name)
        before.append(_read_copy(buf, pbuf, ein.inputs[buf], read_box, valid_end, name, taken_loops, an))
    after = []
    buffer_map = dict(new_inputs)
    if out_pad is not None:
        buffer_map[out_buf] = out_pad
        name = fresh_name(out_pad.name, block_names)
        after.append(_write_back(out_pad, out_buf, ein.store.indices, write_box, name, taken_loops))
    new_ivs = tuple(iv.replace(dom=Range(iv.dom.min, padded[iv.var])) if iv.var in padded else iv
                    for iv in blk.iter_vars)
    new_blk = substitute(blk, {}, buffer_map).replace(iter_vars=new_ivs)
    scope = idx.scope_of(anc)
    top = _top_stmt(anc, scope, realize)
    new_top = _rewrite_nest(top, realize, realize.replace(block=new_blk), extended)
    items = list(scope.block.body.seq) if isinstance(scope.block.body, SeqStmt) else [scope.block.body]
    pos = next((k for k, s in enumerate(items) if s is top), None)
    if pos is None:   # blockize moved a reduction's init block into the init of the block it made
        raise ScheduleArgumentError(
            f"cannot pad_einsum block {blk.name}: it is inside the init of block {scope.block.name}, where no "
            f"copy blocks can go around it; pad the reduction block instead, before blockize", node=realize)
    items[pos:pos + 1] = before + [new_top] + after
    allocs = scope.block.alloc_buffers + tuple(new_inputs.values()) + ((out_pad,) if out_pad is not None else ())
    new_scope = scope.replace(block=scope.block.replace(body=seq(*items), alloc_buffers=allocs))
    return Outcome(func=replace_many(sch.func, {id(scope): new_scope}))


# decompose_padding --------------------------------------------------------------------------------------------
@dataclass
class _Padding:
    """A padding block: ``buffer[indices] = if_then_else(cond, value, pad)`` with ``cond`` true exactly on the box
    ``lo[k] <= v_k < hi[k]`` of the block's iteration variables."""

    store: BufferStore
    value: PrimExpr
    pad: PrimExpr
    box: list  # (lo, hi) per iteration variable, ints


def _bound_of(term: PrimExpr, ivars: dict):
    """``(var, lo, hi)`` (half-open, None where unbounded) that a comparison of one iteration variable with a
    constant means, or None when ``term`` is not such a comparison."""
    from ..ir.arith.linear import linear

    if not isinstance(term, (LT, LE, GT, GE, EQ)):
        return None
    lin = linear(Sub(term.a, term.b)) if term.a.dtype == term.b.dtype else None
    if lin is None:
        return None
    vs = [v for v in lin if v is not None]
    if len(vs) != 1 or id(vs[0]) not in ivars or lin[vs[0]] not in (1, -1):
        return None
    v, sign, c = vs[0], lin[vs[0]], lin.get(None, 0)
    # sign * v + c  <op>  0
    op = type(term)
    if sign == -1:
        op = {LT: GT, LE: GE, GT: LT, GE: LE, EQ: EQ}[op]
    x = -c * sign   # v <op> x
    return v, {LT: (None, x), LE: (None, x + 1), GT: (x + 1, None), GE: (x, None), EQ: (x, x + 1)}[op]


def _in_bound_box(realize: BlockRealize, cond: PrimExpr) -> list:
    """The box of iteration values where ``cond`` holds (refused unless it is a conjunction of constant bounds)."""
    blk = realize.block
    ivars = {id(iv.var): k for k, iv in enumerate(blk.iter_vars)}
    box = []
    for iv in blk.iter_vars:
        lo, ext = as_int(iv.dom.min), as_int(iv.dom.extent)
        if lo is None or ext is None:
            raise NotPaddingError(f"cannot decompose the padding of block {blk.name}: its iteration variable "
                                  f"{iv.var.name} has a symbolic domain", node=realize)
        box.append([lo, lo + ext])
    for term in conjuncts(cond):
        hit = _bound_of(term, ivars)
        if hit is None:
            raise NotPaddingError(f"cannot decompose the padding of block {blk.name}: the term `{term}` of its "
                                  "condition does not bound one iteration variable by a constant", node=realize)
        v, (lo, hi) = hit
        k = ivars[id(v)]
        if lo is not None:
            box[k][0] = max(box[k][0], lo)
        if hi is not None:
            box[k][1] = min(box[k][1], hi)
    if any(lo >= hi for lo, hi in box):
        raise NotPaddingError(f"cannot decompose the padding of block {blk.name}: its condition `{cond}` never "
                              "holds, so the block writes only padding", node=realize)
    full = all(lo == as_int(iv.dom.min) and hi == lo + as_int(iv.dom.extent)
               for (lo, hi), iv in zip(box, blk.iter_vars))
    if full:
        raise NotPaddingError(f"cannot decompose the padding of block {blk.name}: its condition `{cond}` holds on "
                              "its whole domain, so there is no padding to separate", node=realize)
    return [tuple(b) for b in box]


def _match_padding(idx: Index, realize: BlockRealize) -> _Padding:
    blk = realize.block
    name = blk.name

    def refuse(why: str):
        raise NotPaddingError(f"cannot decompose the padding of block {name}: {why}", node=realize)

    store = blk.body
    if blk.init is not None or any(iv.iter_type != IterType.SPATIAL for iv in blk.iter_vars):
        refuse("it is a reduction; a padding block has spatial iteration variables only")
    if not isinstance(store, BufferStore):
        refuse("its body is not a single store")
    value = store.value
    if not (isinstance(value, Call) and value.op == "if_then_else"):
        refuse(f"it stores `{value}`, not wb.if_then_else(in_bounds, value, pad_value)")
    cond, inner, pad = value.args
    if not isinstance(pad, (IntImm, FloatImm)):
        refuse(f"its pad value `{pad}` is not a constant")
    if any(load.buffer is store.buffer for load in _loads(inner)):
        refuse(f"it reads the buffer {store.buffer.name} it writes")
    if any(isinstance(n, Call) and n.op == "call_extern" for n in _calls(inner)):
        refuse("its in-bound value calls an external function, which may have side effects")
    doms = {iv.var: iv.dom for iv in blk.iter_vars}
    if detect_iter_map(list(store.indices), doms, check_level="bijective") is None:
        at = f"{store.buffer.name}[{', '.join(map(str, store.indices))}]"
        refuse(f"its store to {at} cannot be shown one-to-one in its iteration variables (as in a rolling buffer, "
               "several iterations write one element), so a fill placed before the loop could overwrite values "
               "and be overwritten by them in another order than the block's")
    writers = buffer_users(idx, store.buffer)[0]
    if writers != [name]:
        other = next(w for w in writers if w != name)
        refuse(f"block {other} also writes {store.buffer.name}")
    return _Padding(store, inner, pad, _in_bound_box(realize, cond))


def _calls(expr) -> list:
    out: list = []
    post_order_visit(expr, lambda n: out.append(n) if isinstance(n, Call) else None)
    return out


def _block_loops(idx: Index, realize: BlockRealize, anc: tuple, f: For) -> list[For]:
    """The loops from ``f`` down to the block (``f`` first); refused when ``f`` is not above the block."""
    loops = idx.loops_of(realize.block.name)
    pos = next((k for k, lp in enumerate(loops) if lp is f), None)
    if pos is None:
        raise LoopPositionError(f"cannot decompose the padding of block {realize.block.name} at loop "
                                    f"{f.loop_var.name}: the loop is not above the block (in its scope)", node=f)
    return loops[pos:]


def _single_chain(loops: list[For], realize: BlockRealize) -> list[For]:
    """The innermost loops of ``loops`` that hold nothing but the next loop (or the block): these can be narrowed."""
    chain = []
    below = realize
    for lp in reversed(loops):
        if lp.body is not below:
            break
        chain.append(lp)
        below = lp
    return chain[::-1]


def _const_nest(realize: BlockRealize, info: _Padding, loops: list[For], name: str, taken: set) -> For:
    """The block filling the pad value over the block's whole domain, under copies of ``loops``."""
    blk = realize.block
    lmap = {}
    for lp in loops:
        nv = Var(fresh_name(f"{lp.loop_var.name}_pad", taken), lp.loop_var.dtype)
        taken.add(nv.name)
        lmap[lp.loop_var] = nv
    vmap = {iv.var: Var(iv.var.name, iv.var.dtype) for iv in blk.iter_vars}
    ivs = tuple(IterVar(vmap[iv.var], iv.dom, IterType.SPATIAL) for iv in blk.iter_vars)
    body = BufferStore(info.store.buffer, info.pad, tuple(substitute(i, vmap) for i in info.store.indices))
    new_blk = refresh_regions(Block(name, ivs, (), (), body))
    nest = BlockRealize(tuple(substitute(v, lmap) for v in realize.iter_values),
                        substitute(realize.predicate, lmap), new_blk)
    for lp in reversed(loops):
        nest = For(lmap[lp.loop_var], lp.min, lp.extent, ForKind.SERIAL, nest)
    return nest


def _in_bound_nest(realize: BlockRealize, info: _Padding, loops: list[For], chain: list[For]) -> For:
    """The block writing the box without a condition. A loop of ``chain`` that alone enumerates one iteration
    variable narrows to the box; other bindings are shifted, with the box's bounds in the predicate."""
    blk = realize.block
    an = Analyzer()
    for lp in loops:
        an.bind(lp.loop_var, Range(lp.min, lp.extent))
    in_chain = {id(lp.loop_var): lp for lp in chain}
    narrowed: dict = {}   # id(loop) -> new extent
    ivs, values, bounds, vmap = [], [], [], {}
    for iv, val, (lo, hi) in zip(blk.iter_vars, realize.iter_values, info.box):
        nv = Var(iv.var.name, iv.var.dtype)
        ivs.append(IterVar(nv, Range(IntImm(0, nv.dtype), IntImm(hi - lo, nv.dtype)), IterType.SPATIAL))
        vmap[iv.var] = nv + lo if lo else nv
        lp = in_chain.get(id(val)) if isinstance(val, Var) else None
        if lp is not None and _enumerates(lp, val, iv, realize, an):
            narrowed[id(lp)] = IntImm(hi - lo, lp.extent.dtype)
            values.append(val)
            continue
        values.append(an.simplify(val - lo) if lo else val)
        dom_lo, dom_hi = as_int(iv.dom.min), as_int(iv.dom.min) + as_int(iv.dom.extent)
        if lo > dom_lo:
            bounds.append(val >= lo)
        if hi < dom_hi:
            bounds.append(val < hi)
    store = info.store
    body = BufferStore(store.buffer, _SimplifyIndices(an).visit(substitute(info.value, vmap)),
                       tuple(an.simplify(substitute(i, vmap)) for i in store.indices))
    new_blk = refresh_regions(Block(blk.name, tuple(ivs), (), (), body, annotations=blk.annotations))
    pred = an.simplify(logical_and(realize.predicate, *bounds))
    nest = BlockRealize(tuple(values), pred, new_blk)
    for lp in reversed(chain):
        ext = narrowed.get(id(lp))
        nest = lp.replace(body=nest) if ext is None else lp.replace(body=nest, min=IntImm(0, ext.dtype), extent=ext)
    return nest


class _SimplifyIndices(Mutator):
    """Simplifies the indices of every load (``X[v + 1 - 1]`` becomes ``X[v]``)."""

    def __init__(self, an: Analyzer):
        self.an = an

    def visit_BufferLoad(self, e: BufferLoad) -> BufferLoad:
        return e.replace(indices=tuple(self.an.simplify(self.visit(i)) for i in e.indices))


def _enumerates(lp: For, val: Var, iv: IterVar, realize: BlockRealize, an: Analyzer) -> bool:
    """Whether loop ``lp`` enumerates exactly the domain of ``iv`` and feeds nothing else of the block."""
    uses = sum(1 for other in realize.iter_values if uses_var(other, val))
    return uses == 1 and not uses_var(realize.predicate, val) and an.can_prove_equal(lp.min, iv.dom.min) \
        and an.can_prove_equal(lp.extent, iv.dom.extent)


def _decompose(sch, block, loop) -> tuple:
    """The analysis and the new program of ``decompose_padding``: ``(new func, name of the fill block)``."""
    realize, anc = sch.block_of(block)
    f, _ = sch.loop_of(loop)
    idx = sch.index()
    loops = _block_loops(idx, realize, anc, f)
    info = _match_padding(idx, realize)
    chain = _single_chain(loops, realize)
    name = fresh_name(f"{realize.block.name}_pad_const", idx.blocks)
    const = _const_nest(realize, info, loops, name, loop_names(sch.func))
    inner = _in_bound_nest(realize, info, idx.loops_of(realize.block.name), chain)
    top = chain[0] if chain else realize
    new_f = replace_in_stmt(f, {id(top): inner}) if top is not f else inner
    return replace_many(sch.func, {id(f): [const, new_f]}), name


@primitive("padding")
def decompose_padding(sch, block, loop) -> Outcome:
    """Split a padding block into a block filling the pad value, placed before ``loop``, and a block writing the
    interior without a condition; returns the fill block (the original block keeps its name and handle).

    The block must store ``wb.if_then_else(cond, value, pad)`` with a constant ``pad`` and a
    ``cond`` that bounds each iteration variable by constants (a box), as the padding blocks
    of ``conv2d`` and ``max_pool2d`` do. The fill block ``<name>_pad_const`` writes ``pad``
    over the whole domain under copies of the loops from ``loop`` down; the interior block
    runs over the box only (its loops narrowed, or its bindings shifted and predicated).

    >>> import workbench as wb
    >>> from workbench import te
    >>> X = te.placeholder((4,), "float32", name="X")
    >>> P = te.compute((6,), lambda i: te.if_then_else(te.all(i >= 1, i < 5), X[i - 1], 0.0), name="P")
    >>> sch = wb.Schedule(wb.create_prim_func([X, P]))
    >>> print(sch.func.script())
    @wb.prim_func
    def main(X: wb.Buffer((4,), "float32"), P: wb.Buffer((6,), "float32")):
        for i in wb.serial(6):
            with wb.block("P"):
                v_i, = wb.axis.remap("S", [i])
                wb.reads(X[v_i - 1])
                wb.writes(P[v_i])
                P[v_i] = wb.if_then_else(v_i >= 1 and v_i < 5, X[v_i - 1], 0.0)
    >>> (i,) = sch.get_loops(sch.get_block("P"))
    >>> fill = sch.decompose_padding(sch.get_block("P"), i)
    >>> print(sch.func.script())
    @wb.prim_func
    def main(X: wb.Buffer((4,), "float32"), P: wb.Buffer((6,), "float32")):
        for i_pad in wb.serial(6):
            with wb.block("P_pad_const"):
                v_i, = wb.axis.remap("S", [i_pad])
                wb.reads()
                wb.writes(P[v_i])
                P[v_i] = 0.0
        for i in wb.serial(4):
            with wb.block("P"):
                v_i, = wb.axis.remap("S", [i])
                wb.reads(X[v_i])
                wb.writes(P[v_i + 1])
                P[v_i + 1] = X[v_i]
    """
    func, name = _decompose(sch, block, loop)
    return Outcome(func=func, outputs=("block", name))


@primitive("padding")
def can_decompose_padding(sch, block, loop) -> Outcome:
    """Whether ``decompose_padding(block, loop)`` would succeed: 1 or 0 (an ``ExprRV``; never raises for a block
    that is not a padding block or a loop that is not above it). The program is unchanged.

    >>> import workbench as wb
    >>> from workbench import te
    >>> X = te.placeholder((4,), "float32", name="X")
    >>> P = te.compute((6,), lambda i: te.if_then_else(te.all(i >= 1, i < 5), X[i - 1], 0.0), name="P")
    >>> Y = te.compute((6,), lambda i: P[i] * 2.0, name="Y")
    >>> sch = wb.Schedule(wb.create_prim_func([X, Y]))
    >>> (i,) = sch.get_loops(sch.get_block("P"))
    >>> bool(sch.can_decompose_padding(sch.get_block("P"), i)), bool(sch.can_decompose_padding(sch.get_block("Y"), i))
    (True, False)
    """
    try:
        _decompose(sch, block, loop)
    except (NotPaddingError, LoopPositionError):
        return Outcome(func=None, outputs=("expr", 0))
    return Outcome(func=None, outputs=("expr", 1))
