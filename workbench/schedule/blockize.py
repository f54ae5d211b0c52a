"""``blockize``: wrap the sub-tree under a loop (or a run of sibling blocks) into an outer block.

The outer block's iteration variables are the *outer* parts of the inner block's
bindings, found by dividing each binding into an outer and an inner part
(``workbench.ir.arith.subspace_divide``): ``vi = i_0 * 16 + i_1`` becomes
``vi_o = i_0`` outside and ``vi_i = i_1`` inside, with ``vi = vi_o * 16 + vi_i``
in the body. Its read and write regions cover what the inner loops touch. This is
the step before ``tensorize``: the outer block is the unit a tensor intrinsic replaces.
"""
from __future__ import annotations

from typing import Sequence

from ..ir.arith import Analyzer, detect_iter_map, infer_block_access_regions, subspace_divide
from ..ir.arith.linear import AtomTable, lin_bounds, lin_sub, linear_atoms, to_expr
from ..ir.expr import GE, GT, LE, LT, IntImm, PrimExpr, Range, Var, as_int, logical_and
from ..ir.functor import collect_vars, substitute, uses_var
from ..ir.stmt import Block, BlockRealize, BufferRegion, For, ForKind, IterType, IterVar, SeqStmt
from .errors import NonAffineBindingError, ScheduleArgumentError, ScheduleError
from .reduction import in_vars, init_predicate, split_predicate
from .state import Outcome
from .trace import BlockRV, LoopRV
from .tree import Index, child_blocks, fresh_name, rebuild, replace_in_stmt, replace_many
from .primitive import primitive


class BlockizeError(ScheduleError):
    """The sub-tree cannot become one block (several blocks under the loop, blocks that are not siblings, ...)."""


class BindingDivisionError(BlockizeError, NonAffineBindingError):
    """A block binding that does not divide into a part outside the loop and a part inside it."""


def refresh_clamped(block: Block, loops: Sequence[For] = ()) -> Block:
    """``block`` with its regions inferred from its body, then clamped to the buffers' bounds
    (``loops``: the loops around the block, whose variables its regions may use)."""

    reads, writes = infer_block_access_regions(block)
    block = block.replace(reads=reads, writes=writes)
    an = Analyzer()
    for lp in loops:
        an.bind(lp.loop_var, Range(lp.min, lp.extent))
    for iv in block.iter_vars:
        an.bind(iv.var, iv.dom)
    return block.replace(reads=tuple(_clamped(r, an) for r in block.reads),
                         writes=tuple(_clamped(r, an) for r in block.writes))


def _clamped(region: BufferRegion, an: Analyzer) -> BufferRegion:
    """``region`` cut to the buffer where it provably reaches past an edge.

    The inner accesses of a padding block (``x[vi - 1]`` under ``if_then_else(vi >= 1, ...)``)
    or of a block under an overshooting split are guarded, so what the outer block really
    touches never leaves the buffer: ``x[-1:8]`` over a buffer of 7 is ``x[0:7]``. Where it
    depends on the outer axes whether an edge is passed, the region stays as inferred.
    """
    dims = []
    for rg, size in zip(region.region, region.buffer.shape):
        last = an.simplify(rg.min + rg.extent - 1)
        lo = IntImm(0, rg.min.dtype) if an.can_prove(rg.min <= 0) else rg.min
        hi = an.simplify(size - 1) if an.can_prove(last >= size - 1) else last
        if lo is rg.min and hi is last or an.can_prove(hi < lo):
            dims.append(rg)
        else:
            dims.append(Range(lo, an.simplify(hi - lo + 1)))
    return region.replace(region=tuple(dims))


@primitive("blockize")
def blockize(sch, target: "LoopRV | Sequence[BlockRV]", preserve_unit_iters: bool = True) -> Outcome:
    """Wrap everything under ``target`` (a loop, or a list of sibling blocks) into a new outer block.

    Returns the outer block's handle (named ``<block>_o``). A reduction's ``init`` moves to
    the outer block, so it still runs once per output element.

    >>> import workbench as wb
    >>> from workbench import te
    >>> A = te.placeholder((8, 8), "float32", name="A")
    >>> B = te.compute((8, 8), lambda i, j: A[i, j] * 2.0, name="B")
    >>> sch = wb.Schedule(wb.create_prim_func([A, B]))
    >>> i, j = sch.get_loops(sch.get_block("B"))
    >>> i_0, i_1 = sch.split(i, [None, 4])
    >>> j_0, j_1 = sch.split(j, [None, 4])
    >>> sch.reorder(i_0, j_0, i_1, j_1)
    >>> print(sch.func.script())
    @wb.prim_func
    def main(A: wb.Buffer((8, 8), "float32"), B: wb.Buffer((8, 8), "float32")):
        for i_0, j_0, i_1, j_1 in wb.grid(2, 2, 4, 4):
            with wb.block("B"):
                v_i = wb.axis.spatial(8, i_0 * 4 + i_1)
                v_j = wb.axis.spatial(8, j_0 * 4 + j_1)
                wb.reads(A[v_i, v_j])
                wb.writes(B[v_i, v_j])
                B[v_i, v_j] = A[v_i, v_j] * 2.0
    >>> outer = sch.blockize(i_1)
    >>> print(sch.func.script())
    @wb.prim_func
    def main(A: wb.Buffer((8, 8), "float32"), B: wb.Buffer((8, 8), "float32")):
        for i_0, j_0 in wb.grid(2, 2):
            with wb.block("B_o"):
                v_i_o, v_j_o = wb.axis.remap("SS", [i_0, j_0])
                wb.reads(A[v_i_o * 4:v_i_o * 4 + 4, v_j_o * 4:v_j_o * 4 + 4])
                wb.writes(B[v_i_o * 4:v_i_o * 4 + 4, v_j_o * 4:v_j_o * 4 + 4])
                for i_1, j_1 in wb.grid(4, 4):
                    with wb.block("B"):
                        v_i_i, v_j_i = wb.axis.remap("SS", [i_1, j_1])
                        wb.reads(A[v_i_o * 4 + v_i_i, v_j_o * 4 + v_j_i])
                        wb.writes(B[v_i_o * 4 + v_i_i, v_j_o * 4 + v_j_i])
                        B[v_i_o * 4 + v_i_i, v_j_o * 4 + v_j_i] = A[v_i_o * 4 + v_i_i, v_j_o * 4 + v_j_i] * 2.0

    Under a non-dividing split the predicate is shared out: its terms over loops outside
    the new block guard the outer block, the others stay on the inner block with the outer
    loops read through the outer axes, and the init keeps the terms of its spatial loops.
    A term over both also guards the outer block with what it asks of the outer loops alone
    (``i_0 * 32 + i_1 < 100`` gives ``i_0 * 32 < 100``, left out where it always holds, as here),
    so an outer loop that overshoots its axis (``split(i, [16, None])`` over 6) never runs the block.
    For ``B[i] = sum_k A[i, k]`` over 100 x 100 with ``i`` and ``k`` split by 32 and reordered
    to ``i_0, k_0, i_1, k_1``, ``sch.blockize(i_1)`` gives::

        for i_0, k_0 in wb.grid(4, 4):
            with wb.block("B_o"):
                vi_o, vk_o = wb.axis.remap("SR", [i_0, k_0])
                with wb.init():
                    for i_1_init in range(32):
                        with wb.block("B_init"):
                            vi_i = wb.axis.spatial(32, i_1_init)
                            wb.where(vi_o * 32 + i_1_init < 100)
                            B[vi_o * 32 + vi_i] = 0.0
                for i_1, k_1 in wb.grid(32, 32):
                    with wb.block("B"):
                        vi_i, vk_i = wb.axis.remap("SR", [i_1, k_1])
                        wb.where(vi_o * 32 + i_1 < 100 and vk_o * 32 + k_1 < 100)
                        B[vi_o * 32 + vi_i] = B[vi_o * 32 + vi_i] + A[vi_o * 32 + vi_i, vk_o * 32 + vk_i]

    ``sch.blockize([b1, b2])`` wraps consecutive sibling blocks into one block without
    iteration variables.
    """
    if isinstance(target, LoopRV):
        return _blockize_loop(sch, target, preserve_unit_iters)
    if isinstance(target, BlockRV):
        target = [target]
    if isinstance(target, (list, tuple)) and target and all(isinstance(b, BlockRV) for b in target):
        return _blockize_blocks(sch, list(target))
    raise ScheduleArgumentError(f"blockize needs a loop handle or a list of block handles, got {target!r}")


def _blockize_loop(sch, loop: LoopRV, preserve_unit_iters: bool) -> Outcome:
    f_loop, anc = sch.loop_of(loop)
    lname = f_loop.loop_var.name
    realizes = child_blocks(f_loop)
    if len(realizes) != 1:
        names = ", ".join(r.block.name for r in realizes) or "none"
        raise BlockizeError(
            f"cannot blockize loop {lname}: it holds {len(realizes)} blocks ({names}), but blockize of a loop "
            f"needs exactly one; blockize a list of sibling blocks instead (sch.blockize([b1, b2]))", node=f_loop)
    realize = realizes[0]
    block = realize.block
    idx = sch.index()
    _, r_anc = idx.blocks[block.name]
    # loops from f_loop down to the block; loops above f_loop up to the enclosing block
    path = list(r_anc)
    k0 = next(k for k, a in enumerate(path) if a is f_loop)
    inner_loops = [a for a in path[k0:] if isinstance(a, For)]
    outer_loops = []
    for a in reversed(path[:k0]):
        if isinstance(a, (Block, BlockRealize)):
            break
        if isinstance(a, For):
            outer_loops.append(a)
    outer_loops.reverse()
    for f in outer_loops + inner_loops:
        if as_int(f.extent) is None or as_int(f.min) is None:
            raise BlockizeError(f"cannot blockize loop {lname}: loop {f.loop_var.name} has the symbolic extent "
                                f"`{f.extent}`; blockize needs constant loop bounds", node=f)
    doms = {f.loop_var: Range(f.min, f.extent) for f in outer_loops + inner_loops}
    inner_vars = [f.loop_var for f in inner_loops]
    div = subspace_divide(list(realize.iter_values), doms, inner_vars, realize.predicate)
    if div is None:
        errs: list = []
        detect_iter_map(list(realize.iter_values), doms, errors=errs)
        why = errs[0] if errs else "an index mixes loops inside and outside the blockized loop in a way that " \
                                   "does not split into outer * extent + inner"
        binds = ", ".join(f"{iv.var.name} = {v}" for iv, v in zip(block.iter_vars, realize.iter_values))
        raise BindingDivisionError(
            f"cannot blockize loop {lname}: the bindings of block {block.name} do not divide into a part outside "
            f"loop {lname} and a part inside it ({why})",
            detail=f"bindings: {binds}; loops inside: {', '.join(v.name for v in inner_vars)}. Each binding must "
                   f"be `outer * inner_extent + inner`, e.g. i_0 * 16 + i_1 with i_1 inside.",
            node=f_loop)
    # terms of the predicate over outer loops only guard the outer block; the others stay inside
    outer_pred, inner_terms = split_predicate(realize.predicate, in_vars(inner_vars))
    outer_pred = logical_and(outer_pred, *_outer_guards(inner_terms, outer_loops, inner_loops))
    an = Analyzer()
    loop_an = Analyzer()
    for v, r in doms.items():
        loop_an.bind(v, r)
    outer_ivs, outer_vals, inner_ivs, inner_vals = [], [], [], []
    vmap = {}
    taken_vars = {iv.var.name for iv in block.iter_vars}
    for iv, d in zip(block.iter_vars, div):
        if as_int(iv.dom.min) not in (0,):
            raise BlockizeError(f"cannot blockize loop {lname}: iteration variable {iv.var.name} of block "
                                f"{block.name} starts at {iv.dom.min}, not 0", node=f_loop)
        o, i, oe, ie = d.outer, d.inner, d.outer_extent, d.inner_extent
        dom_extent = as_int(iv.dom.extent)
        if dom_extent is not None:  # a non-dividing split: the outer part stays in the axis' domain
            oe = min(oe, -(-dom_extent // ie))
        dt = iv.var.dtype
        base = 0  # what the new axes leave out: a part's lowest value, e.g. 3 for loop i in wb.serial(3, 6)
        # an outer part that varies with the loops needs an axis even when its extent is 1 (a binding
        # `i0 * 3 + i1` under `where(i0 * 3 + i1 < 1)`): substituted into the blocks, it would use outer loops
        if oe != 1 or as_int(o) is None:
            o, o_low, oe = _outer_from_zero(o, oe, i, ie, dom_extent, loop_an, lname, iv.var.name, block.name)
            base += o_low * ie
            vo = Var(fresh_name(iv.var.name + "_o", taken_vars), dt)
            taken_vars.add(vo.name)
            outer_ivs.append(IterVar(vo, Range(IntImm(0, dt), IntImm(oe, dt)), iv.iter_type))
            outer_vals.append(o)
            o_term = vo
        else:
            o_term = o
        if ie != 1 or preserve_unit_iters and _uses_inner(i, inner_vars):
            i, i_low = _from_zero(i, loop_an)
            base += i_low
            vi = Var(fresh_name(iv.var.name + "_i", taken_vars), dt)
            taken_vars.add(vi.name)
            inner_ivs.append(IterVar(vi, Range(IntImm(0, dt), IntImm(ie, dt)), iv.iter_type))
            inner_vals.append(i)
            i_term = vi
        else:
            i_term = i
        whole = o_term * ie + i_term if ie != 1 else o_term + i_term
        vmap[iv.var] = an.simplify(whole + IntImm(base, dt) if base else whole)
    for iv in outer_ivs + inner_ivs:
        an.bind(iv.var, iv.dom)
    inner_body, folded = simplify_indices(substitute(block.body, vmap), an)
    new_inner = Block(block.name, tuple(inner_ivs), substitute(block.reads, vmap), substitute(block.writes, vmap),
                      inner_body, None, block.alloc_buffers, substitute(block.match_buffers, vmap), block.annotations)
    if folded:   # an access in a branch that never runs leaves the regions too
        new_inner = new_inner.replace(**dict(zip(("reads", "writes"), infer_block_access_regions(new_inner))))
    inner_pred = _through_outer_axes(inner_terms, outer_loops, outer_ivs, outer_vals, lname, realize)
    new_inner_realize = BlockRealize(tuple(inner_vals), inner_pred, new_inner)
    outer_init = None
    if block.init is not None and _init_ever_runs(block, realize, loop_an):   # else it is dropped: it never ran
        _check_init_point(block, vmap, outer_ivs + inner_ivs, an, lname)
        spatial = [f.loop_var for f in inner_loops
                   if any(uses_var(v, f.loop_var) for iv, v in zip(block.iter_vars, realize.iter_values)
                          if iv.iter_type == IterType.SPATIAL)]
        spatial += [iv.var for iv in outer_ivs if iv.iter_type == IterType.SPATIAL]
        outer_init = _outer_init(block, simplify_indices(substitute(block.init, vmap), an)[0],
                                 list(zip(inner_ivs, inner_vals)), inner_loops, inner_pred, spatial, idx, realize)
    body = replace_in_stmt(f_loop, {id(realize): new_inner_realize})
    outer_name = fresh_name(block.name + "_o", idx.blocks)
    outer = refresh_clamped(Block(outer_name, tuple(outer_ivs), (), (), body, outer_init))
    outer_realize = BlockRealize(tuple(outer_vals), outer_pred, outer)
    return Outcome(func=rebuild(sch.func, anc, f_loop, outer_realize), outputs=("block", outer_name))


def _from_zero(part: PrimExpr, loop_an: Analyzer) -> tuple[PrimExpr, int]:
    """``(part - low, low)`` where ``low`` is the lowest value of a divided binding part over its loops, so that
    the new axis bound to it starts at 0 even under a loop with a non-zero min (``wb.serial(3, 6)``)."""
    low = loop_an.const_int_bound(part).min_value
    if not isinstance(low, int) or low == 0:
        return part, 0
    return loop_an.simplify(part - low), low


def _init_ever_runs(block: Block, realize: BlockRealize, loop_an: Analyzer) -> bool:
    """Whether the block's init runs at all: it runs where every reduction axis is at 0, which a binding
    that stays above 0 over its loops never is (a piece of ``loop_partition``: ``v_k = k1`` for k1 in [2, 4))."""
    for iv, value in zip(block.iter_vars, realize.iter_values):
        if iv.iter_type != IterType.SPATIAL:
            b = loop_an.const_int_bound(value)
            if isinstance(b.min_value, int) and b.min_value > 0 or isinstance(b.max_value, int) and b.max_value < 0:
                return False
    return True


def _check_init_point(block: Block, vmap: dict, new_axes: list[IterVar], an: Analyzer, lname: str) -> None:
    """The outer block's init runs where its reduction axes and the inner ones start (all 0); refuse when the
    block's own reduction axes are not all 0 there, so the init would run at another iteration than before."""
    start = {iv.var: IntImm(0, iv.var.dtype) for iv in new_axes if iv.iter_type != IterType.SPATIAL}
    for iv in block.iter_vars:
        if iv.iter_type == IterType.SPATIAL:
            continue
        first = an.simplify(substitute(vmap[iv.var], start))
        if as_int(first) != 0:
            raise BlockizeError(f"cannot blockize loop {lname}: block {block.name}'s init runs where its reduction "
                                f"axis {iv.var.name} is 0, but the first iteration of the new blocks has "
                                f"{iv.var.name} = {first}, so the init would run at another iteration")


def _outer_from_zero(o: PrimExpr, oe: int, inner: PrimExpr, ie: int, dom_extent: int | None,
                     loop_an: Analyzer, lname: str, var: str, block: str) -> tuple[PrimExpr, int, int]:
    """The outer part ``o`` of a divided binding shifted to start at 0, its shift and its extent.

    Over its loops ``o`` may start below 0 when a predicate keeps the block off those iterations (a padding
    block ``v = i - 1`` under ``where(i >= 1 and i < 7)``); then it is kept as it is, and its extent is what
    the axis' domain allows: ``o = v // ie`` lies in ``[0, ceil(dom / ie))`` whenever the block runs."""
    bound = loop_an.const_int_bound(o)
    low, high = bound.min_value, bound.max_value
    if not isinstance(low, int) or low >= 0:
        o, shift = _from_zero(o, loop_an)
        return o, shift, oe
    ib = loop_an.const_int_bound(inner)
    if dom_extent is None or not isinstance(ib.min_value, int) or ib.min_value < 0 \
            or not isinstance(ib.max_value, int) or ib.max_value >= ie:
        raise BlockizeError(f"cannot blockize loop {lname}: the part of {var}'s binding outside the loop, `{o}`, "
                            f"can be negative, and the part inside does not stay within [0, {ie}); block {block} "
                            f"would get an outer axis outside its domain")
    extent = -(-dom_extent // ie)
    if isinstance(high, int):
        extent = min(extent, high + 1)
    return o, 0, extent


def _outer_guards(terms: list, outer_loops: list[For], inner_loops: list[For]) -> list[PrimExpr]:
    """What the predicate ``terms`` require of the loops outside the new block: for each linear inequality,
    the condition that some point of the inner loops satisfies it (``i_0 * 16 + i_1 < 100`` with ``i_1`` in
    ``[0, 16)`` gives ``i_0 * 16 < 100``), so the outer block never runs where no inner iteration would.

    This is the outer predicate of TVM's subspace division. The inner block keeps the full terms; a term
    that holds for every outer point, or that is not linear in the inner loops, gives nothing."""
    inner = {f.loop_var: (as_int(f.min), as_int(f.min) + as_int(f.extent) - 1) for f in inner_loops}
    an = Analyzer()
    for f in outer_loops:
        an.bind(f.loop_var, Range(f.min, f.extent))
    guards = []
    for c in terms:
        guard = _projected(c, inner)
        if guard is not None and not an.can_prove(guard):
            guards.append(guard)
    return guards


def _projected(cond: PrimExpr, inner: dict) -> PrimExpr | None:
    """``exists inner: cond`` for an integer comparison ``cond`` that is linear in the ``inner`` variables
    (inclusive ranges), as ``lhs < rhs`` / ``lhs <= rhs`` over the other variables; None otherwise."""
    if not isinstance(cond, (LT, LE, GT, GE)) or not cond.a.dtype.startswith(("int", "uint")):
        return None
    small, big = (cond.a, cond.b) if isinstance(cond, (LT, LE)) else (cond.b, cond.a)
    atoms = AtomTable()
    diff = lin_sub(linear_atoms(small, atoms), linear_atoms(big, atoms))
    if any(k is not None and k not in inner and uses_var(k, in_vars(inner)) for k in diff):
        return None  # an inner loop inside a non-linear term
    lowest, _ = lin_bounds(diff, inner)
    lhs = _side({k: v for k, v in lowest.items() if k is not None and v > 0}, small.dtype)
    rhs = _side({k: -v for k, v in lowest.items() if k is None or v < 0}, small.dtype)
    return lhs < rhs if isinstance(cond, (LT, GT)) else lhs <= rhs


def _side(lin: dict, dtype: str) -> PrimExpr:
    """One side of a projected comparison, in the comparison's integer type."""
    if all(k is None for k in lin):
        return IntImm(lin.get(None, 0), dtype)
    return to_expr(lin)


def _through_outer_axes(terms: list, outer_loops: list[For], outer_ivs: list[IterVar], outer_vals: list,
                        lname: str, realize: BlockRealize):
    """The inner block's predicate: ``terms`` with each loop outside the new outer block replaced by the outer
    axis bound to it (``i_0 * 32 + i_1 < 100`` becomes ``vi_o * 32 + i_1 < 100``), since a block sees the loops
    outside it only through its iteration variables."""
    through = {val: iv.var for iv, val in zip(outer_ivs, outer_vals) if isinstance(val, Var)}
    for f in outer_loops:
        if f.loop_var not in through and as_int(f.extent) == 1:
            through[f.loop_var] = f.min
    hidden = in_vars(f.loop_var for f in outer_loops if f.loop_var not in through)
    for c in terms:
        if uses_var(c, hidden):
            lv = next(v for v in collect_vars(c) if hidden(v))
            raise BlockizeError(f"cannot blockize loop {lname}: the term `{c}` of the predicate of block "
                                f"{realize.block.name} uses loop {lv.name}, which is outside the new block and is "
                                "not by itself one of its axes, so the inner block could not see it", node=realize)
    return logical_and(*(substitute(c, through) for c in terms))


def simplify_indices(stmt, an: Analyzer) -> tuple:
    """``(stmt', folded)``: ``stmt`` with every buffer index simplified (``(vj_o * 8 + vj_i) // 8`` -> ``vj_o``), and guards
    that the substitution made constant folded away.

    A padding block read ``x[v - 1]`` under ``if_then_else(v >= 1 and v < 8, ...)``; blockized where
    ``v`` is the constant 8, the guard is ``8 < 8`` and the read ``x[7]`` is past the end of ``x``.
    It never ran, so it goes (``folded`` says a branch went: the block's regions must no longer claim it)::

        if_then_else(vy >= 1 and 8 < 8, x[vy - 1, 7], 0.0)   ->   0.0
    """
    from ..ir.functor import Mutator

    folded = []

    def constant(cond) -> bool | None:
        c = an.simplify(cond)
        return bool(c.value) if isinstance(c, IntImm) else None

    def fold(branch):
        folded.append(branch)
        return branch

    class _S(Mutator):
        def visit_BufferLoad(self, e):
            e = self.generic_visit(e)
            return e.replace(indices=tuple(an.simplify(i) for i in e.indices))

        def visit_BufferStore(self, s):
            s = self.generic_visit(s)
            return s.replace(indices=tuple(an.simplify(i) for i in s.indices))

        def visit_Call(self, e):
            c = constant(e.args[0]) if e.op == "if_then_else" and len(e.args) == 3 else None
            if c is None:
                return self.generic_visit(e)
            return self.visit(fold(e.args[1] if c else e.args[2]))

        def visit_Select(self, e):
            c = constant(e.condition)
            if c is None:
                return self.generic_visit(e)
            return self.visit(fold(e.true_value if c else e.false_value))

        def visit_IfThenElse(self, s):
            c = constant(s.condition)
            if c is True or c is False and s.else_case is not None:
                return self.visit(fold(s.then_case if c else s.else_case))
            return self.generic_visit(s)

    out = _S().visit(stmt)
    return out, bool(folded)


def _uses_inner(e, inner_vars) -> bool:
    return uses_var(e, in_vars(inner_vars))


def _outer_init(block: Block, init, inner_axes: list, inner_loops: list[For], inner_pred,
                spatial_loops: list[Var], idx: Index, realize: BlockRealize):
    """The reduction's init for the outer block, as in TVM: the inner loops that feed the inner spatial
    axes the init uses, copied (``i_1`` becomes ``i_1_init``), around a block over those axes. Its predicate
    keeps the terms of the inner predicate that do not use the loops left out (the reduction loops), so
    under a non-dividing split it writes only the elements that the update writes."""
    used = {id(v) for v in collect_vars(init)}
    spatial = [(iv, val) for iv, val in inner_axes if iv.iter_type == IterType.SPATIAL and id(iv.var) in used]
    reduce_used = [iv for iv, _ in inner_axes if iv.iter_type != IterType.SPATIAL and id(iv.var) in used]
    if reduce_used:
        raise BlockizeError(f"cannot blockize block {block.name}: its init uses the reduction variable "
                            f"{reduce_used[0].var.name}")
    if not spatial:
        return init
    copied = [f for f in inner_loops if any(uses_var(val, f.loop_var) for _, val in spatial)]
    left_out = [f.loop_var for f in inner_loops if f not in copied]
    pred = init_predicate(inner_pred, left_out, in_vars(spatial_loops), f"cannot blockize block {block.name}",
                           realize)
    taken = {v.name for v in idx.loops}
    lmap = {}
    for f in copied:
        lmap[f.loop_var] = Var(fresh_name(f"{f.loop_var.name}_init", taken), f.loop_var.dtype)
        taken.add(lmap[f.loop_var].name)
    init_ivs = [IterVar(Var(iv.var.name, iv.var.dtype), iv.dom, IterType.SPATIAL) for iv, _ in spatial]
    body = substitute(init, {iv.var: niv.var for (iv, _), niv in zip(spatial, init_ivs)})
    init_block = refresh_clamped(Block(fresh_name(block.name + "_init", idx.blocks), tuple(init_ivs), (), (), body))
    stmt = BlockRealize(tuple(substitute(val, lmap) for _, val in spatial), substitute(pred, lmap), init_block)
    for f in reversed(copied):
        stmt = For(lmap[f.loop_var], f.min, f.extent, ForKind.SERIAL, stmt)
    return stmt


def _blockize_blocks(sch, blocks: list) -> Outcome:
    found = [sch.block_of(b) for b in blocks]
    names = [r.block.name for r, _ in found]
    if len(set(names)) != len(names):
        raise ScheduleArgumentError(f"blockize: a block is given twice among {', '.join(names)}")
    # the lowest common ancestor, and the statement directly under it that holds each block
    common = 0
    first = found[0][1]
    while all(len(anc) > common and anc[common] is first[common] for _, anc in found) and common < len(first):
        common += 1
    parent = first[common - 1]
    tops = [anc[common] if len(anc) > common else r for r, anc in found]
    if len({id(t) for t in tops}) != len(tops):
        raise BlockizeError(f"cannot blockize blocks {', '.join(names)}: two of them share a loop that is not "
                            "shared by all; blockize that loop instead", node=found[0][0])
    if len(found) == 1:
        group = [tops[0]]
    else:
        if not isinstance(parent, SeqStmt):
            raise BlockizeError(f"cannot blockize blocks {', '.join(names)}: they are not siblings")
        pos = sorted(next(k for k, s in enumerate(parent.seq) if s is t) for t in tops)
        if pos != list(range(pos[0], pos[0] + len(pos))):
            raise BlockizeError(f"cannot blockize blocks {', '.join(names)}: they are not consecutive; other "
                                "statements sit between them", node=found[0][0])
        group = [parent.seq[k] for k in pos]
    for t in group:
        for r in child_blocks(t) if not isinstance(t, BlockRealize) else [t]:
            if r.block.name not in names:
                raise BlockizeError(f"cannot blockize blocks {', '.join(names)}: block {r.block.name} sits "
                                    "between them; list it too", node=r)
    names = [r.block.name for r in (group if all(isinstance(t, BlockRealize) for t in group) else
                                      [x for t in group for x in ([t] if isinstance(t, BlockRealize)
                                                                   else child_blocks(t))])]
    idx = sch.index()
    outer_name = fresh_name("_".join(names) + "_o", idx.blocks)
    body = group[0] if len(group) == 1 else SeqStmt(tuple(group))
    outer = refresh_clamped(Block(outer_name, (), (), (), body), [a for a in first[:common] if isinstance(a, For)])
    outer_realize = BlockRealize((), IntImm(1, "bool"), outer)
    mapping = {id(group[0]): outer_realize}
    for r in group[1:]:
        mapping[id(r)] = None
    return Outcome(func=replace_many(sch.func, mapping), outputs=("block", outer_name))


__all__ = ["blockize", "BlockizeError", "BindingDivisionError", "refresh_clamped"]
