"""Compute location: ``compute_at``, ``reverse_compute_at``, ``compute_inline``, ``reverse_compute_inline``."""
from __future__ import annotations

from ..ir.arith import Analyzer
from ..ir.arith.iter_map import inverse_affine_map
from ..ir.expr import And, BufferLoad, CmpOp, FloorDiv, FloorMod, GE, IntImm, LT, Range, Var, as_int, logical_and
from ..ir.functor import Mutator, collect_vars, substitute, uses_var
from ..ir.stmt import Block, BlockRealize, BufferStore, For, ForKind, IterType, SeqStmt, seq
from ..ir.arith.linear import AtomTable, const_of, lin_bounds, lin_sub, linear, to_expr
from .errors import ComputeLocationError, DependenceError, InlineError, RegionCoverError
from .legality import (ReplaceLoads, allocating_block, box_fits, buffer_users, is_reduction, loops_between,
                       refresh_regions, region_under_loops, relax_map, relaxed_thread_loops, written_box)
from .loops import loop_names
from .lookup import consumers_of, producers_of
from .state import Outcome
from .loop_legality import check_iterations_independent
from .tree import Index, fresh_name, replace_many
from .primitive import primitive


def _setup(sch, block, loop, what):
    realize, b_anc = sch.block_of(block, f"the first argument of {what}")
    f, l_anc = sch.loop_of(loop, f"the second argument of {what}")
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


def _domain_conds(val, lo_lin, hi_lin, first, end, outer: dict, loops: list) -> list:
    """Conditions keeping ``val`` (covering ``lo_lin..hi_lin``) inside ``[first, end)`` (the axis's
    domain, or the part of it the block ran where it was) where the loops may take it outside: the
    last tile of a split that does not divide the extent, also a symbolic one (``i_0 * 32 + ax0 < n``)."""
    an = Analyzer()
    for lp in loops:
        an.bind(lp.loop_var, Range(lp.min, lp.extent))
    lo_b, _ = lin_bounds(lo_lin, outer)
    _, hi_b = lin_bounds(hi_lin, outer)
    out = []
    if not an.can_prove(to_expr(lo_b) >= first):
        out.append(GE(val, first))
    if not an.can_prove(to_expr(hi_b) < end):
        out.append(LT(val, end))
    return out


def _range_conds(val, first, end, loops: list, new_loops: list) -> list:
    """Conditions keeping ``val`` over the new loops inside ``[first, end)`` where it may leave it."""
    an = Analyzer()
    for lp in loops:
        an.bind(lp.loop_var, Range(lp.min, lp.extent))
    for v, e in new_loops:
        an.bind(v, Range(IntImm(0, v.dtype), e))
    out = []
    if not an.can_prove(GE(val, first)):
        out.append(GE(val, first))
    if not an.can_prove(LT(val, end)):
        out.append(LT(val, end))
    return out


def _current_cover(sch, realize: BlockRealize) -> dict:
    """``{v: (first, end)}`` for each axis whose bindings, where the block is now, reach only part of
    its domain: a piece of ``loop_partition`` keeps the whole domain (``wb.axis.reduce(16, k0)``) but
    its loop runs ``k0`` over 0..12 only. Moved elsewhere, the block must still run just those
    iterations: the other piece computes the rest (for a reduction, running them twice adds twice)."""
    an = Analyzer()
    for a in sch.index().blocks[realize.block.name][1]:
        if isinstance(a, For):
            an.bind(a.loop_var, Range(a.min, a.extent))
    out = {}
    for iv, val in zip(realize.block.iter_vars, realize.iter_values):
        lo, ext = as_int(iv.dom.min), as_int(iv.dom.extent)
        if lo is None or ext is None:
            continue
        b = an.const_int_bound(val)
        first = b.min_value if isinstance(b.min_value, int) and b.min_value > lo else lo
        last = b.max_value if isinstance(b.max_value, int) and b.max_value < lo + ext - 1 else lo + ext - 1
        if (first, last) != (lo, lo + ext - 1) and first <= last:
            out[iv.var] = (IntImm(first, iv.var.dtype), IntImm(last + 1, iv.var.dtype))
    return out


def _new_nest(sch, realize: BlockRealize, dims: dict, loop: For, l_anc: tuple, preserve: bool):
    """The block placed to cover ``dims`` (iter var -> (lo, hi) linear forms), with fresh loops."""
    blk = realize.block
    outer = relax_map([a for a in l_anc if isinstance(a, For)] + [loop]) or {}
    taken = loop_names(sch.func)
    bindings, new_loops, conds = [], [], []
    loops = [a for a in l_anc if isinstance(a, For)] + [loop]
    order = [lp.loop_var for lp in loops]
    cover = _current_cover(sch, realize)
    for iv in blk.iter_vars:
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
        first, end = cover.get(iv.var, (iv.dom.min, Analyzer().simplify(iv.dom.min + iv.dom.extent)))
        if lo_lin is not None:
            conds += _domain_conds(val, lo_lin, rng[1], first, end, outer, loops)
        elif iv.var in cover:
            conds += _range_conds(val, first, end, loops, new_loops)
    conds += _own_conditions(sch, realize, bindings, loops)
    pred = logical_and(*conds) if conds else IntImm(1, "bool")
    body = BlockRealize(tuple(bindings), pred, blk)
    for v, e in reversed(new_loops):
        body = For(v, IntImm(0, v.dtype), e, ForKind.SERIAL, body)
    return body


def _own_conditions(sch, realize: BlockRealize, bindings: list, loops: list[For]) -> list:
    """The terms of the moved block's own predicate, rewritten for its new bindings.

    A term that only keeps a binding inside its iteration domain (the guard of a split that
    does not divide) is left out: ``_domain_conds`` derives those for the new loops. Any other
    term (``wb.where(vi < 50)`` over a domain of 64) is the block's own and stays, with each
    old loop read through the new binding of the axis it fed (``i`` -> ``i_0 * 16 + ax0``), or
    as ``binding + c`` where the term is a binding shifted by a constant.
    """
    blk = realize.block
    an = Analyzer()
    for iv in blk.iter_vars:
        an.bind(iv.var, iv.dom)
    in_scope = {id(lp.loop_var) for lp in loops}
    old_loops = {id(a.loop_var) for a in sch.index().blocks[blk.name][1] if isinstance(a, For)} - in_scope
    through = {val: new for val, new in zip(realize.iter_values, bindings) if isinstance(val, Var)}
    out = []
    for term in _conjuncts(realize.predicate):
        shifted = _as_shifted_binding(term, realize, old_loops | in_scope, an)
        if shifted is not None:
            k, rest = shifted
            if an.can_prove(type(term)(blk.iter_vars[k].var + rest, IntImm(0, rest.dtype))):
                continue
            out.append(type(term)(bindings[k], an.simplify(-rest)))
            continue
        moved = substitute(term, through)
        if any(id(v) in old_loops for v in collect_vars(moved)):
            raise ComputeLocationError(
                f"cannot move block {blk.name}: the term `{term}` of its predicate uses loops that do not "
                "stay around it and is not a condition on one of its axes, so it could not be kept", node=realize)
        out.append(moved)
    return out


def _conjuncts(pred) -> list:
    if isinstance(pred, IntImm) and pred.value:
        return []
    return _conjuncts(pred.a) + _conjuncts(pred.b) if isinstance(pred, And) else [pred]


def _as_shifted_binding(term, realize: BlockRealize, loop_ids: set, an: Analyzer) -> tuple | None:
    """``(k, c)`` when ``term`` reads ``binding_k + c <op> 0`` with ``c`` free of loops (None otherwise)."""
    if not isinstance(term, CmpOp):
        return None
    diff = term.a - term.b
    for k, val in enumerate(realize.iter_values):
        rest = an.simplify(diff - val)
        if not any(id(v) in loop_ids for v in collect_vars(rest)):
            return k, rest
    return None



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


def _index_offset(e, ivs) -> tuple | None:
    """``(v, c)`` when the index ``e`` is ``v + c`` for an iteration variable ``v`` and a constant ``c``."""
    lin = linear(e)
    if lin is None:
        return None
    vs = [k for k in lin if k is not None]
    if len(vs) != 1 or vs[0] not in ivs or lin[vs[0]] != 1:
        return None
    return vs[0], lin.get(None, 0)


def _shift(lin: dict, c: int) -> dict:
    out = dict(lin)
    out[None] = out.get(None, 0) + c
    return out


def _index_split(e, ivs) -> tuple | None:
    """``(v, c, is_div)`` when the index ``e`` is ``v // c`` or ``v % c`` for an iteration variable ``v``
    and a positive constant ``c`` (a packed layout, ``B_global[vj // 16, vk, vj % 16]``)."""
    if isinstance(e, (FloorDiv, FloorMod)) and isinstance(e.a, Var) and e.a in ivs:
        c = as_int(e.b)
        if c is not None and c > 0:
            return e.a, c, isinstance(e, FloorDiv)
    return None


def _times(lin: dict, c: int) -> dict:
    return {k: v * c for k, v in lin.items()}


def _iter_dims_from(realize: BlockRealize, regions, buf, buf_dims) -> dict:
    """Map the block's iteration variables to the buffer dims they index as ``v`` or ``v + c``
    (``B[vi, vj + 1]``): ``{v: (lo - c, hi - c)}``, or ``{v: None}`` where that dim is unbounded.

    A variable indexing a dim only as ``v // c`` gets the rows ``[lo * c, hi * c + c - 1]``, narrowed
    by a dim indexed ``v % c`` to ``[lo * c + p, hi * c + q]`` (the smallest interval holding them)."""
    ivs = {iv.var: iv for iv in realize.block.iter_vars}
    out: dict = {}
    splits: dict = {}     # v -> {(c, is_div): dim}
    for r in regions:
        if r.buffer is not buf:
            continue
        for d, rng in enumerate(r.region):
            if as_int(rng.extent) != 1:
                continue
            hit = _index_offset(rng.min, ivs)
            if hit is None:
                split = _index_split(rng.min, ivs)
                if split is not None:
                    splits.setdefault(split[0], {}).setdefault(split[1:], d)
                continue
            if hit[0] in out:
                continue
            v, c = hit
            out[v] = None if buf_dims[d] is None else (_shift(buf_dims[d][0], -c), _shift(buf_dims[d][1], -c))
    for v, by in splits.items():
        if v not in out:
            out.update(_rows_of_split(ivs[v], by, buf_dims))
    return out


def _rows_of_split(iv, by: dict, buf_dims) -> dict:
    """``{v: (lo, hi)}`` from the dims indexed ``v // c`` (and ``v % c``), or ``{}`` when none bounds it;
    constant ends stay inside ``v``'s domain."""
    for (c, is_div), d in by.items():
        if not is_div or buf_dims[d] is None:
            continue
        lo, hi = _times(buf_dims[d][0], c), _shift(_times(buf_dims[d][1], c), c - 1)
        m = by.get((c, False))
        if m is not None and buf_dims[m] is not None:
            p, q = const_of(buf_dims[m][0]), const_of(buf_dims[m][1])
            if p is not None and q is not None and 0 <= p <= q < c:
                lo, hi = _shift(lo, p), _shift(hi, q - (c - 1))
        first, ext = as_int(iv.dom.min), as_int(iv.dom.extent)
        if first is not None and ext is not None:
            lo = {None: max(first, const_of(lo))} if const_of(lo) is not None else lo
            hi = {None: min(first + ext - 1, const_of(hi))} if const_of(hi) is not None else hi
        return {iv.var: (lo, hi)}
    return {}


def _guard_loaded_bindings(nest, idx, cons: list[str], f: For, l_anc: tuple, name: str, ln: str):
    """``nest`` with the consumers' guards on its block where its bindings load a buffer out of bounds without them.

    A region indexed by data (``take`` reads ``table[ids[v], ...]``) makes the moved block's bindings load
    too: ``v0 = min(max(ids[i_0 * 5 + i_1], 0), 19)``. Under a split that does not divide, the consumer's
    ``where(i_0 * 5 + i_1 < 5)`` keeps it from loading ``ids[5]``; the moved block takes the terms of its
    consumers' predicates that only use loops around it (they hold wherever a consumer reads), and is
    refused where those do not keep the loads in bounds either::

        for i_0, i_1 in wb.grid(3, 5):            for i_0, i_1 in wb.grid(3, 5):
            ...                                       with wb.block("table_global"):
                                            ->            v0 = wb.axis.spatial(20, min(max(ids[i_0 * 5 + i_1], 0), 19))
                                                          wb.where(i_0 * 5 + i_1 < 5)
    """
    from ..ir.functor import post_order_visit
    from ..ir.structural import structural_equal

    def loads_in(node) -> list:
        found: list = []
        post_order_visit(node, lambda n: found.append(n) if isinstance(n, BufferLoad) else None)
        return found

    fors = []
    realize = nest
    while isinstance(realize, For):
        fors.append(realize)
        realize = realize.body
    loads = loads_in(realize.iter_values)
    if not loads:
        return nest
    outer = _outer_loops(l_anc, f)
    an = Analyzer()
    for lp in outer + fors:
        an.bind(lp.loop_var, Range(lp.min, lp.extent))

    def out_of_bounds() -> list:
        return [ld for ld in loads if not all(an.can_prove(GE(i, IntImm(0, i.dtype))) and an.can_prove(LT(i, d))
                                              for i, d in zip(ld.indices, ld.buffer.shape))]

    if not out_of_bounds():
        return nest
    around = {id(lp.loop_var) for lp in outer}
    guards = None
    for c in cons:
        terms = [t for t in _conjuncts(idx.blocks[c][0].predicate)
                 if all(id(v) in around for v in collect_vars(t))]
        guards = terms if guards is None else [t for t in guards if any(structural_equal(t, u) for u in terms)]
    guard = logical_and(*guards) if guards else None
    if guard is None:
        bad = out_of_bounds()
    else:
        with an.constraint(guard):
            bad = out_of_bounds()
    in_predicate = loads_in(realize.predicate)   # a predicate's terms are all evaluated: a guard cannot protect them
    if bad or in_predicate:
        ld = bad[0] if bad else in_predicate[0]
        where = "" if bad else (f" in its predicate `{realize.predicate}`, whose terms are all evaluated, so the "
                                f"consumers' guard `{guard}` cannot keep it from running")
        raise ComputeLocationError(
            f"cannot compute block {name} at loop {ln}: the region its consumers read is indexed by data, and the "
            f"moved block would load {ld} outside the buffer {ld.buffer.name} in iterations where no consumer "
            f"runs{where}", node=f)
    realize = realize.replace(predicate=logical_and(guard, realize.predicate))
    for lp in reversed(fors):
        realize = lp.replace(body=realize)
    return realize


def _outer_loops(anc: tuple, f: For) -> list[For]:
    """Loop ``f`` and the loops around it."""
    return [a for a in anc if isinstance(a, For)] + [f]


def _needed_region(idx, cons: list[str], f: For, buf, atoms: AtomTable, shared_over: list[For]) -> list | None:
    """Per dim of ``buf``, the linear bounds its consumers inside loop ``f`` read per iteration (None: no read),
    also over the thread-bound loops ``shared_over`` (at or around ``f``) that share ``buf``;
    the opaque terms of fused loops (``f // 8``) are keys of ``atoms``."""
    from .legality import union

    region = None
    for c in cons:
        c_real, c_anc = idx.blocks[c]
        loops = loops_between(c_anc, f) + shared_over
        dims = region_under_loops(c_real, c_real.block.reads, buf, loops, atoms)
        if dims is None:
            continue
        region = dims if region is None else union(region, dims)
    return region


def _needed_iter_dims(idx, realize: BlockRealize, cons: list[str], f: For, l_anc: tuple) -> dict:
    """The range of each iteration variable that computes what the consumers in ``f`` read, over
    every buffer the block writes (a variable missing from the result keeps its whole domain).

    A buffer shared by the threads of a thread-bound loop at or around ``f`` (``shared`` scope
    under ``threadIdx``) covers what all of them read: see ``legality.shared_by_threads``."""
    from .legality import union

    blk = realize.block
    out: dict = {}
    whole: set = set()
    atoms = AtomTable()
    bufs = list({id(w.buffer): w.buffer for w in blk.writes}.values())
    for buf in bufs:
        region = _needed_region(idx, cons, f, buf, atoms, relaxed_thread_loops(_outer_loops(l_anc, f), buf.scope))
        if region is None:
            if [r for r in buffer_users(idx, buf)[1] if r != blk.name]:
                return {}       # read elsewhere: computed whole
            continue            # read by no block: nothing constrains it
        got = _iter_dims_from(realize, blk.writes, buf, region)
        for iv in blk.iter_vars:
            rng = got.get(iv.var)
            if rng is None:
                whole.add(iv.var)
            elif iv.var in out:
                out[iv.var] = union([out[iv.var]], [rng])[0]
            else:
                out[iv.var] = rng
    return {v: r for v, r in out.items() if v not in whole and r is not None}


@primitive("compute_location")
def compute_at(sch, block, loop, preserve_unit_loops: bool = False) -> Outcome:
    """Move a producer block under ``loop`` so that it computes, per iteration of the loop,
    exactly the region its consumers there read.

    >>> import workbench as wb
    >>> from workbench import te
    >>> A = te.placeholder((8, 8), "float32", name="A")
    >>> B = te.compute((8, 8), lambda i, j: A[i, j] * 2.0, name="B")
    >>> C = te.compute((8, 8), lambda i, j: B[i, j] + 1.0, name="C")
    >>> sch = wb.Schedule(wb.create_prim_func([A, C]))
    >>> print(sch.func.script())   # before
    @wb.prim_func
    def main(A: wb.Buffer((8, 8), "float32"), C: wb.Buffer((8, 8), "float32")):
        B = wb.alloc_buffer((8, 8), "float32")
        for i, j in wb.grid(8, 8):
            with wb.block("B"):
                v_i, v_j = wb.axis.remap("SS", [i, j])
                wb.reads(A[v_i, v_j])
                wb.writes(B[v_i, v_j])
                B[v_i, v_j] = A[v_i, v_j] * 2.0
        for i, j in wb.grid(8, 8):
            with wb.block("C"):
                v_i, v_j = wb.axis.remap("SS", [i, j])
                wb.reads(B[v_i, v_j])
                wb.writes(C[v_i, v_j])
                C[v_i, v_j] = B[v_i, v_j] + 1.0
    >>> i, j = sch.get_loops(sch.get_block("C"))
    >>> sch.compute_at(sch.get_block("B"), i)
    >>> print(sch.func.script())   # after
    @wb.prim_func
    def main(A: wb.Buffer((8, 8), "float32"), C: wb.Buffer((8, 8), "float32")):
        B = wb.alloc_buffer((8, 8), "float32")
        for i in wb.serial(8):
            for ax0 in wb.serial(8):
                with wb.block("B"):
                    v_i, v_j = wb.axis.remap("SS", [i, ax0])
                    wb.reads(A[v_i, v_j])
                    wb.writes(B[v_i, v_j])
                    B[v_i, v_j] = A[v_i, v_j] * 2.0
            for j in wb.serial(8):
                with wb.block("C"):
                    v_i, v_j = wb.axis.remap("SS", [i, j])
                    wb.reads(B[v_i, v_j])
                    wb.writes(C[v_i, v_j])
                    C[v_i, v_j] = B[v_i, v_j] + 1.0

    Unit loops are dropped unless ``preserve_unit_loops=True``. A block writing several
    buffers computes what the consumers read of any of them. Refused (the program is left
    as it was): a block writing an output of the function (only the part read inside the
    loop would be computed), and a block whose buffer another block also writes or reads in
    between, unless their regions are provably disjoint (as the two halves of a concatenation).
    A ``loop`` handle from ``sample_compute_location`` that names the root leaves the block
    where it is, as in TVM.

    Under thread-bound loops the block covers what every thread sharing its buffer reads, by
    the buffer's storage scope (as in TVM): ``shared`` relaxes the ``threadIdx`` and ``vthread``
    loops at and around ``loop`` (a block's threads fetch its tile together) and keeps
    ``blockIdx`` fixed; ``warp`` relaxes ``threadIdx.x``; ``local`` and ``global`` relax none.
    """
    if sch.is_root_mark(loop):
        sch.block_of(block, "the first argument of compute_at")
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
    _check_not_output(sch, idx, realize, cons, ln, f)
    _check_no_shared_writes(idx, name, cons, "compute", ln, f, l_anc)
    _check_crossed_blocks(idx, scope, name, f, cons, "compute", ln, moving_later=True)
    iv_dims = _needed_iter_dims(idx, realize, cons, f, l_anc)
    _check_bounded_where_shared(idx, realize, cons, iv_dims, ln, f)
    nest = _new_nest(sch, realize, iv_dims, f, l_anc, preserve_unit_loops)
    nest = _guard_loaded_bindings(nest, idx, cons, f, l_anc, name, ln)
    new_loop = _insert(f, nest, idx, cons, before=True)
    new_func = replace_many(sch.func, {id(realize): None, id(f): new_loop})
    _check_parallel_loops_stay_independent(new_func, name, f"cannot compute block {name} at loop {ln}")
    return Outcome(func=new_func)


def _check_bounded_where_shared(idx, realize: BlockRealize, cons: list[str], iv_dims: dict, ln: str, f: For) -> None:
    """A block computing more than one iteration of the loop needs (an axis it cannot bound) must not
    write a buffer that a consumer there updates in place: each iteration would overwrite the updates."""
    from .lookup import accessed

    blk = realize.block
    unbounded = [iv.var.name for iv in blk.iter_vars if iv.iter_type == IterType.SPATIAL and iv.var not in iv_dims]
    if not unbounded:
        return
    mine = accessed(blk, "write")
    for c in cons:
        shared = [r.buffer.name for r in blk.writes if id(r.buffer) in mine & accessed(idx.block(c), "write")]
        if shared:
            raise ComputeLocationError(
                f"cannot compute block {blk.name} at loop {ln}: the part of {shared[0]} that block {c} needs per "
                f"iteration cannot be bounded in {unbounded[0]}, so all of it would be recomputed each iteration, "
                f"overwriting what {c} has updated", node=f)


def _check_not_output(sch, idx, realize: BlockRealize, cons: list[str], ln: str, f: For) -> None:
    """compute_at computes only what the blocks in the loop read: a block writing a parameter is
    refused (as in TVM) unless one of those blocks provably reads all of what it writes there."""
    from .lookup import accessed

    params = {id(b): b for b in sch.func.buffer_map.values()}
    blk = realize.block
    for bid in accessed(blk, "write"):
        if bid not in params:
            continue
        mine = _full_box(blk, bid, "write")
        if any(_box_within(mine, _exact_read_box(idx.block(c), bid)) for c in cons):
            continue
        raise ComputeLocationError(
            f"cannot compute block {blk.name} at loop {ln}: it writes {params[bid].name}, an output of the function, "
            "and compute_at would compute only the part of it that the blocks inside that loop read", node=realize)


def _exact_read_box(blk: Block, buf_id: int) -> list | None:
    """The box of the buffer the block reads over its whole domain when that is exactly a box:
    each dim constant, or ``v + c`` for an iteration variable no other dim uses (else None)."""
    from ..ir.arith import Analyzer
    from ..ir.functor import collect_vars

    regions = [r for r in blk.reads if id(r.buffer) == buf_id]
    if len(regions) != 1:
        return None
    ivs = {iv.var: iv for iv in blk.iter_vars}
    an = Analyzer()
    used: set = set()
    out = []
    for rng in regions[0].region:
        hit = _index_offset(rng.min, ivs) if as_int(rng.extent) == 1 else None
        if hit is not None and hit[0] not in used:
            used.add(hit[0])
            dom = ivs[hit[0]].dom
            out.append((an.simplify(dom.min + hit[1]), an.simplify(dom.min + dom.extent - 1 + hit[1])))
        elif not any(v in ivs for v in collect_vars(rng.min)) and not any(v in ivs for v in collect_vars(rng.extent)):
            out.append((rng.min, an.simplify(rng.min + rng.extent - 1)))
        else:
            return None
    return out


def _box_within(inner: list | None, outer: list | None) -> bool:
    from ..ir.arith import Analyzer

    if inner is None or outer is None:
        return False
    an = Analyzer()
    return all(a is not None and b is not None and c is not None and d is not None and an.can_prove(c <= a)
               and an.can_prove(b <= d) for (a, b), (c, d) in zip(inner, outer))


def _full_box(blk: Block, buf_id: int, kind: str) -> list | None:
    """Inclusive ``[(lo, hi), ...]`` of the buffer in the block's declared regions over its whole
    iteration domain (None where unknown)."""
    from ..ir.arith import Analyzer

    regions = [r for r in (blk.reads if kind == "read" else blk.writes) if id(r.buffer) == buf_id]
    if len(regions) != 1:
        return None
    an = Analyzer()
    dom = {iv.var: iv.dom for iv in blk.iter_vars}
    return [(an.int_set(rng.min, dom).min, an.int_set(rng.min + rng.extent - 1, dom).max)
            for rng in regions[0].region]


def _provably_disjoint(a: list | None, b: list | None) -> bool:
    from ..ir.arith import Analyzer

    if a is None or b is None:
        return False
    an = Analyzer()
    for (alo, ahi), (blo, bhi) in zip(a, b):
        if any(x is None for x in (alo, ahi, blo, bhi)):
            continue
        if an.can_prove(ahi < blo) or an.can_prove(bhi < alo):
            return True
    return False


def _check_crossed_blocks(idx, scope, name: str, f: For, partners: list[str], verb: str, ln: str,
                          moving_later: bool) -> None:
    """Refuse when moving block ``name`` into loop ``f`` reorders its accesses with those of a block it
    crosses (one between it and the loop, or inside the loop) to elements they may share.

    Writes of the same buffer by a crossed block must touch provably disjoint regions (the two
    blocks of a concatenation), unless that block is a partner (a consumer inside the loop for
    compute_at, a producer for reverse_compute_at: ``_check_no_shared_writes`` judges those); a
    border block overwritten by an interior block must stay first. Reads against writes must be
    disjoint for blocks between the block and the loop; inside the loop they follow the
    per-iteration order (a copy-in reads the tile its copy-out writes back in that iteration).
    """
    from .lookup import accessed

    names = idx.blocks_in_scope(scope)
    inside = [k for k, n in enumerate(names) if _contains(idx, n, f)]
    pos = names.index(name)
    crossed = names[pos + 1: inside[-1] + 1] if moving_later else names[inside[0]: pos]
    mine = idx.block(name)
    m_reads, m_writes = accessed(mine, "read"), accessed(mine, "write")
    for other in crossed:
        ob = idx.block(other)
        o_reads, o_writes = accessed(ob, "read"), accessed(ob, "write")
        partner = other in partners
        in_loop = _contains(idx, other, f)   # a read/write pair there is left to the per-iteration order
        checks = [(m_reads & o_writes, "read", "write", in_loop or (partner and not moving_later)),
                  (m_writes & o_reads, "write", "read", in_loop or (partner and moving_later)),
                  (m_writes & o_writes, "write", "write", partner)]
        for common, my_kind, o_kind, expected in checks:
            if expected:
                continue
            for bid in common:
                if _provably_disjoint(_full_box(mine, bid, my_kind), _full_box(ob, bid, o_kind)):
                    continue
                buf = _buffer_named(mine, ob, bid)
                raise DependenceError(
                    f"cannot {verb} block {name} at loop {ln}: block {other} {o_kind}s {buf} too, and running "
                    f"{name} inside that loop would reorder their accesses to the elements of {buf} they may "
                    "share", node=f, detail="Only blocks writing provably disjoint parts of a buffer (the halves of "
                    "a concatenation) can move past each other.")


def _buffer_named(a: Block, b: Block, buf_id: int) -> str:
    from ..ir.functor import post_order_visit

    found = [r.buffer for blk in (a, b) for r in blk.reads + blk.writes if id(r.buffer) == buf_id]
    if not found:
        for blk in (a, b):
            post_order_visit(blk.body, lambda n: found.append(n.buffer) if isinstance(n, (BufferLoad, BufferStore))
                             and id(n.buffer) == buf_id else None)
    return found[0].name if found else "a buffer"


@primitive("compute_location")
def reverse_compute_at(sch, block, loop, preserve_unit_loops: bool = False) -> Outcome:
    """Move a consumer block under ``loop`` so that, per iteration of the loop, it consumes
    exactly the region its producers there have just written.

    >>> import workbench as wb
    >>> from workbench import te
    >>> A = te.placeholder((8, 8), "float32", name="A")
    >>> B = te.compute((8, 8), lambda i, j: A[i, j] * 2.0, name="B")
    >>> C = te.compute((8, 8), lambda i, j: B[i, j] + 1.0, name="C")
    >>> sch = wb.Schedule(wb.create_prim_func([A, C]))
    >>> print(sch.func.script())   # before
    @wb.prim_func
    def main(A: wb.Buffer((8, 8), "float32"), C: wb.Buffer((8, 8), "float32")):
        B = wb.alloc_buffer((8, 8), "float32")
        for i, j in wb.grid(8, 8):
            with wb.block("B"):
                v_i, v_j = wb.axis.remap("SS", [i, j])
                wb.reads(A[v_i, v_j])
                wb.writes(B[v_i, v_j])
                B[v_i, v_j] = A[v_i, v_j] * 2.0
        for i, j in wb.grid(8, 8):
            with wb.block("C"):
                v_i, v_j = wb.axis.remap("SS", [i, j])
                wb.reads(B[v_i, v_j])
                wb.writes(C[v_i, v_j])
                C[v_i, v_j] = B[v_i, v_j] + 1.0
    >>> i, j = sch.get_loops(sch.get_block("B"))
    >>> sch.reverse_compute_at(sch.get_block("C"), i)
    >>> print(sch.func.script())   # after
    @wb.prim_func
    def main(A: wb.Buffer((8, 8), "float32"), C: wb.Buffer((8, 8), "float32")):
        B = wb.alloc_buffer((8, 8), "float32")
        for i in wb.serial(8):
            for j in wb.serial(8):
                with wb.block("B"):
                    v_i, v_j = wb.axis.remap("SS", [i, j])
                    wb.reads(A[v_i, v_j])
                    wb.writes(B[v_i, v_j])
                    B[v_i, v_j] = A[v_i, v_j] * 2.0
            for ax0 in wb.serial(8):
                with wb.block("C"):
                    v_i, v_j = wb.axis.remap("SS", [i, ax0])
                    wb.reads(B[v_i, v_j])
                    wb.writes(C[v_i, v_j])
                    C[v_i, v_j] = B[v_i, v_j] + 1.0

    The block may write several buffers. Under thread-bound loops it consumes what all the
    threads sharing the buffer wrote, by its storage scope (see ``compute_at``). Refused: a block
    that reads more of a buffer than its producers inside the loop write (those iterations would
    never run), and a block crossing another access to the same elements (see ``compute_at``).
    """
    if sch.is_root_mark(loop):
        sch.block_of(block, "the first argument of reverse_compute_at")
        return Outcome()
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
    _check_crossed_blocks(idx, scope, name, f, prods, "reverse-compute", ln, moving_later=False)
    iv_dims: dict = {}
    atoms = AtomTable()
    for p in prods:
        _check_reduction_finished(idx, p, name, f, l_anc)
        for v, rng in _produced_iter_dims(idx, realize, p, f, l_anc, atoms).items():
            if v in iv_dims and (lin_sub(iv_dims[v][0], rng[0]) or lin_sub(iv_dims[v][1], rng[1])):
                raise RegionCoverError(
                    f"cannot reverse-compute block {name} at loop {ln}: its producers write different parts of what "
                    f"it reads per iteration of that loop, so no range of {v.name} is ready there", node=f)
            iv_dims[v] = rng
    _check_domain_covered(realize, iv_dims, f, l_anc, name, ln, _current_cover(sch, realize))
    nest = _new_nest(sch, realize, iv_dims, f, l_anc, preserve_unit_loops)
    new_loop = _insert(f, nest, idx, prods, before=False)
    new_func = replace_many(sch.func, {id(realize): None, id(f): new_loop})
    _check_parallel_loops_stay_independent(new_func, name, f"cannot reverse-compute block {name} at loop {ln}")
    return Outcome(func=new_func)


def _check_domain_covered(realize: BlockRealize, dims: dict, f: For, l_anc: tuple, name: str, ln: str,
                          cover: dict) -> None:
    """Over all iterations of the loops down to ``f``, the ranges the moved block gets must reach both ends of
    each of its axes' domains (or of the part ``cover`` says it ran where it was): a block after only some of
    its producers (one piece of a ``loop_partition`` writes elements 3..7, another 0..2 before the loop)
    would otherwise never run the other iterations."""
    loops = [a for a in l_anc if isinstance(a, For)] + [f]
    order = [lp.loop_var for lp in loops]
    an = Analyzer()
    for lp in loops:
        an.bind(lp.loop_var, Range(lp.min, lp.extent))
    for iv in realize.block.iter_vars:
        rng = dims.get(iv.var)
        low, extent = as_int(iv.dom.min), as_int(iv.dom.extent)
        if iv.var in cover:
            low, extent = cover[iv.var][0].value, cover[iv.var][1].value - cover[iv.var][0].value
        if rng is None or low is None or extent is None:
            continue
        first = an.const_int_bound(to_expr(rng[0], order)).min_value
        last = an.const_int_bound(to_expr(rng[1], order)).max_value
        missing = [f"[{low}, {first})" if isinstance(first, int) and first > low else None,
                   f"[{last + 1}, {low + extent})" if isinstance(last, int) and last < low + extent - 1 else None]
        missing = [m for m in missing if m]
        if missing:
            raise RegionCoverError(
                f"cannot reverse-compute block {name} at loop {ln}: the producers inside that loop cover "
                f"{iv.var.name} only from {first} to {last}, so the iterations with {iv.var.name} in "
                f"{' and '.join(missing)} would never run", node=f)


def _check_parallel_loops_stay_independent(func, name: str, what: str) -> None:
    """The parallel and vectorized loops around the moved block must still run their iterations at once:
    a reduction moved under a parallel loop that feeds its reduction axis would have every iteration
    accumulate into the same element (a race), as ``parallel`` itself refuses."""
    for loop in Index(func).loops_of(name):
        if loop.kind in (ForKind.PARALLEL, ForKind.VECTORIZED) and loop.thread is None:
            try:
                check_iterations_independent(loop, f"run block {name} inside the {loop.kind.value}")
            except DependenceError as err:
                reason = str(err.args[0]).split(": ", 1)[-1]
                raise DependenceError(f"{what}: inside the {loop.kind.value} loop {loop.loop_var.name}, {reason}",
                                      node=loop) from None


def _check_reduction_finished(idx, p: str, name: str, f: For, l_anc: tuple) -> None:
    """The producer must have finished its reduction inside the loop."""
    ln = f.loop_var.name
    p_real = idx.blocks[p][0]
    outer_loops = [a for a in l_anc if isinstance(a, For)] + [f]
    for iv, val in zip(p_real.block.iter_vars, p_real.iter_values):
        if iv.iter_type != IterType.REDUCE:
            continue
        for ol in outer_loops:
            if uses_var(val, ol.loop_var):
                where = (f"loop {ln} is itself a reduction loop of {p}" if ol is f else
                         f"loop {ln} is inside {p}'s reduction loop {ol.loop_var.name}")
                raise DependenceError(
                    f"cannot reverse-compute block {name} at loop {ln}: its producer block {p} has not "
                    f"finished its reduction there ({where})", node=f)


def _produced_iter_dims(idx, realize: BlockRealize, p: str, f: For, l_anc: tuple, atoms: AtomTable) -> dict:
    """Ranges of the consumer's iteration variables whose inputs producer ``p`` writes per iteration of ``f``,
    by all the threads that share the buffer (see ``_needed_iter_dims``); the opaque terms of fused loops,
    ``f // 8``, are keys of ``atoms``."""
    name, ln = realize.block.name, f.loop_var.name
    blk = realize.block
    p_real, p_anc = idx.blocks[p]
    loops = loops_between(p_anc, f)
    out: dict = {}
    for w in p_real.block.writes:
        if not any(r.buffer is w.buffer for r in blk.reads):
            continue
        shared_over = relaxed_thread_loops(_outer_loops(l_anc, f), w.buffer.scope)
        dims = region_under_loops(p_real, p_real.block.writes, w.buffer, loops + shared_over, atoms)
        _check_reads_matchable(realize, w.buffer, dims, name, ln, f)
        _check_reads_covered(realize, p_real.block, w.buffer, name, ln, f)
        got = _iter_dims_from(realize, blk.reads, w.buffer, dims)
        for v, rng in got.items():
            if rng is None:
                raise ComputeLocationError(f"cannot reverse-compute block {name} at loop {ln}: the region of "
                                           f"{w.buffer.name} its producer writes there cannot be bounded", node=f)
            out[v] = rng
    return out


def _check_reads_covered(realize: BlockRealize, p_blk: Block, buf, name: str, ln: str, f: For) -> None:
    """Every element the consumer reads at ``v + c`` must be written by the producer: otherwise the
    iterations reading the rest would never run once the consumer follows the producer's loop."""
    from ..ir.arith import Analyzer

    box = _full_box(p_blk, id(buf), "write")
    ivs = {iv.var: iv for iv in realize.block.iter_vars}
    an = Analyzer()
    for r in realize.block.reads:
        if r.buffer is not buf:
            continue
        for d, rng in enumerate(r.region):
            hit = _index_offset(rng.min, ivs) if as_int(rng.extent) == 1 else None
            if hit is None:
                continue
            dom = ivs[hit[0]].dom
            lo, hi = (None, None) if box is None else box[d]
            first, last = dom.min + hit[1], dom.min + dom.extent - 1 + hit[1]
            if lo is None or hi is None or not (an.can_prove(lo <= first) and an.can_prove(last <= hi)):
                raise RegionCoverError(
                    f"cannot reverse-compute block {name} at loop {ln}: it reads {buf.name}[{an.simplify(first)}:"
                    f"{an.simplify(last + 1)}] in dimension {d}, but its producer {p_blk.name} writes less of it, so "
                    "the iterations reading the rest would never run", node=f)


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


@primitive("compute_location")
def compute_inline(sch, block) -> Outcome:
    """Inline a spatial block into its consumers: every read of its buffer becomes its expression.

    >>> import workbench as wb
    >>> from workbench import te
    >>> A = te.placeholder((8, 8), "float32", name="A")
    >>> B = te.compute((8, 8), lambda i, j: A[i, j] * 2.0, name="B")
    >>> C = te.compute((8, 8), lambda i, j: B[i, j] + 1.0, name="C")
    >>> sch = wb.Schedule(wb.create_prim_func([A, C]))
    >>> print(sch.func.script())   # before
    @wb.prim_func
    def main(A: wb.Buffer((8, 8), "float32"), C: wb.Buffer((8, 8), "float32")):
        B = wb.alloc_buffer((8, 8), "float32")
        for i, j in wb.grid(8, 8):
            with wb.block("B"):
                v_i, v_j = wb.axis.remap("SS", [i, j])
                wb.reads(A[v_i, v_j])
                wb.writes(B[v_i, v_j])
                B[v_i, v_j] = A[v_i, v_j] * 2.0
        for i, j in wb.grid(8, 8):
            with wb.block("C"):
                v_i, v_j = wb.axis.remap("SS", [i, j])
                wb.reads(B[v_i, v_j])
                wb.writes(C[v_i, v_j])
                C[v_i, v_j] = B[v_i, v_j] + 1.0
    >>> sch.compute_inline(sch.get_block("B"))
    >>> print(sch.func.script())   # after
    @wb.prim_func
    def main(A: wb.Buffer((8, 8), "float32"), C: wb.Buffer((8, 8), "float32")):
        for i, j in wb.grid(8, 8):
            with wb.block("C"):
                v_i, v_j = wb.axis.remap("SS", [i, j])
                wb.reads(A[v_i, v_j])
                wb.writes(C[v_i, v_j])
                C[v_i, v_j] = A[v_i, v_j] * 2.0 + 1.0

    Refused: a block that is not one store at distinct iteration variables, one that writes
    an output of the function, and consumers that read elements outside the block's domain
    (its expression would be evaluated there).
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

    _check_reads_inside_domain(idx, realize, store, readers)
    _check_no_matched_reads(idx, buf, readers, name)

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


def _check_no_matched_reads(idx, buf, readers: list, name: str) -> None:
    """Refuse readers that see ``buf`` through a ``match_buffer`` (a tensorized block's operand view).

    Inlining replaces loads of ``buf``; a view reads it without a load of ``buf`` to replace, so the
    reader would read a buffer nothing writes any more (NaN after ``tensorize`` then ``compute_inline``
    of its padded operand)."""
    from ..ir.functor import post_order_visit

    for r in readers:
        viewers: list = []
        post_order_visit(idx.block(r), lambda n: viewers.append(n.name) if isinstance(n, Block) and any(
            m.source.buffer is buf for m in n.match_buffers) else None)
        if viewers:
            raise InlineError(f"cannot inline block {name}: block {viewers[0]} reads {buf.name} through a "
                              f"match_buffer view (as a tensorized block does), which inlining cannot rewrite",
                              node=idx.realize(r))


def _check_reads_inside_domain(idx, realize: BlockRealize, store: BufferStore, readers: list) -> None:
    """Every element a consumer reads must be one the inlined block computes: its expression is substituted
    at the consumer's indices, and outside the block's domain it can read out of bounds (a read_at copy of
    16 rows of a buffer whose producer wrote 4, each row copied from ``x[v0, ...]`` with ``x`` 4 rows long)."""
    from ..ir.arith import infer_block_access_regions

    an = Analyzer()
    blk, buf = realize.block, store.buffer
    doms = {iv.var: iv.dom for iv in blk.iter_vars}
    box = [doms[i] for i in store.indices]
    for r in readers:
        c_blk = idx.realize(r).block
        c_dom = {iv.var: iv.dom for iv in c_blk.iter_vars}
        for reg in infer_block_access_regions(c_blk)[0]:
            if reg.buffer is not buf:
                continue
            for d, (rng, dom) in enumerate(zip(reg.region, box)):
                lo = an.int_set(rng.min, c_dom).min
                hi = an.int_set(rng.min + rng.extent - 1, c_dom).max
                if lo is not None and hi is not None and an.can_prove(lo >= dom.min) and \
                        an.can_prove(hi <= dom.min + dom.extent - 1):
                    continue
                shown = f"{an.simplify(lo)}:{an.simplify(hi + 1)}" if lo is not None and hi is not None else "?"
                raise InlineError(
                    f"cannot inline block {blk.name}: block {r} reads {buf.name}[{shown}] in dimension {d}, but "
                    f"{blk.name} computes {buf.name}[{dom.min}:{an.simplify(dom.min + dom.extent)}] there, so its "
                    "expression would be evaluated outside its domain (where it may read out of bounds)",
                    node=realize)


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


@primitive("compute_location")
def reverse_compute_inline(sch, block) -> Outcome:
    """Inline a consumer block into its single producer: the producer writes the consumer's result directly.

    >>> import workbench as wb
    >>> from workbench import te
    >>> A = te.placeholder((8, 8), "float32", name="A")
    >>> B = te.compute((8, 8), lambda i, j: A[i, j] * 2.0, name="B")
    >>> C = te.compute((8, 8), lambda i, j: B[i, j] + 1.0, name="C")
    >>> sch = wb.Schedule(wb.create_prim_func([A, C]))
    >>> print(sch.func.script())   # before
    @wb.prim_func
    def main(A: wb.Buffer((8, 8), "float32"), C: wb.Buffer((8, 8), "float32")):
        B = wb.alloc_buffer((8, 8), "float32")
        for i, j in wb.grid(8, 8):
            with wb.block("B"):
                v_i, v_j = wb.axis.remap("SS", [i, j])
                wb.reads(A[v_i, v_j])
                wb.writes(B[v_i, v_j])
                B[v_i, v_j] = A[v_i, v_j] * 2.0
        for i, j in wb.grid(8, 8):
            with wb.block("C"):
                v_i, v_j = wb.axis.remap("SS", [i, j])
                wb.reads(B[v_i, v_j])
                wb.writes(C[v_i, v_j])
                C[v_i, v_j] = B[v_i, v_j] + 1.0
    >>> sch.reverse_compute_inline(sch.get_block("C"))
    >>> print(sch.func.script())   # after
    @wb.prim_func
    def main(A: wb.Buffer((8, 8), "float32"), C: wb.Buffer((8, 8), "float32")):
        for i, j in wb.grid(8, 8):
            with wb.block("B"):
                v_i, v_j = wb.axis.remap("SS", [i, j])
                wb.reads(A[v_i, v_j])
                wb.writes(C[v_i, v_j])
                C[v_i, v_j] = A[v_i, v_j] * 2.0 + 1.0

    The consumer may read the producer's buffer at any invertible affine map of its iteration
    variables (a reshape ``C[vi] = B[vi // 4, vi % 4]`` becomes ``C[vi * 4 + vj] = ...`` in the
    producer), as in TVM. Refused: a producer that writes less (or more) than the consumer
    reads, since the consumer's other iterations would never run.
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
    _check_sole_writer(idx, realize, store.buffer)
    _check_producer_store(p_real, p_store)
    first = _single_load_index(realize, store, buf)
    inverse = inverse_affine_map(first, {iv.var: iv.dom for iv in blk.iter_vars})
    if inverse is None:
        raise InlineError(f"cannot reverse-inline block {name}: it reads {buf.name} at "
                          f"[{', '.join(map(str, first))}], which is not an invertible affine map of its iteration "
                          "variables (such as [vi, vj] or [vi // 4, vi % 4])", node=realize)
    _check_image_is_produced(realize, p_real, p_store, buf, inverse.image)
    if not _predicate_implied(realize):
        raise InlineError(f"cannot reverse-inline block {name}: its predicate `{realize.predicate}` would be lost "
                          "in the producer's loops", node=realize)
    qmap = dict(zip(inverse.outputs, p_store.indices))
    umap = {u: substitute(e, qmap) for u, e in inverse.values.items()}
    value = ReplaceLoads(buf, lambda load: p_store.value).visit(store.value)
    new_store = _simplified_store(BufferStore(store.buffer, substitute(value, umap),
                                              tuple(substitute(i, umap) for i in store.indices)), p_blk)
    nb = refresh_regions(p_blk.replace(body=new_store))
    func = replace_many(sch.func, {id(realize): None, id(p_real): p_real.replace(block=nb)})
    return Outcome(func=_drop_alloc(func, buf))


def _check_sole_writer(idx, realize: BlockRealize, out) -> None:
    """The consumer must be the only block writing its output (a complete block, as in TVM): its
    stores move to the producer's place, ahead of any other writer that ran between them."""
    name = realize.block.name
    others = [w for w in buffer_users(idx, out)[0] if w != name]
    if others:
        raise InlineError(f"cannot reverse-inline block {name}: block {others[0]} also writes {out.name}, so "
                          f"moving {name}'s stores to its producer would reorder the writes", node=realize)


def _check_producer_store(p_real: BlockRealize, p_store: BufferStore) -> None:
    """The producer stores once per iteration at distinct iteration variables, each of them used."""
    p_blk = p_real.block
    p_vars = [iv.var for iv in p_blk.iter_vars]
    ids = [id(i) for i in p_store.indices]
    if not all(isinstance(i, Var) and i in p_vars for i in p_store.indices) or len(set(ids)) != len(ids):
        raise InlineError(f"cannot reverse-inline into block {p_blk.name}: it stores at indices that are not "
                          "distinct iteration variables of the block", node=p_real)
    unused = [iv.var.name for iv in p_blk.iter_vars if id(iv.var) not in ids and as_int(iv.dom.extent) != 1]
    if unused:
        raise InlineError(f"cannot reverse-inline into block {p_blk.name}: its iteration variable {unused[0]} does "
                          f"not index {p_store.buffer.name}, so it writes each element more than once", node=p_real)


def _single_load_index(realize: BlockRealize, store: BufferStore, buf) -> tuple:
    from ..ir.functor import post_order_visit
    from ..ir.structural import structural_equal

    loads: list[BufferLoad] = []
    post_order_visit(store.value, lambda n: loads.append(n) if isinstance(n, BufferLoad) and n.buffer is buf else None)
    first = loads[0].indices
    if not all(structural_equal(tuple(ld.indices), tuple(first)) for ld in loads):
        raise InlineError(f"cannot reverse-inline block {realize.block.name}: it reads {buf.name} at several "
                          "different indices, so no single element of the producer feeds one of its iterations",
                          node=realize)
    return tuple(first)


def _check_image_is_produced(realize: BlockRealize, p_real: BlockRealize, p_store: BufferStore, buf,
                             image: list) -> None:
    """The box the consumer reads must be exactly the box the producer writes (one producer
    iteration per consumer iteration): less and some of the consumer's output is never written."""
    from ..ir.arith import Analyzer

    an = Analyzer()
    doms = {iv.var: iv.dom for iv in p_real.block.iter_vars}
    for d, ((start, ext), pv) in enumerate(zip(image, p_store.indices)):
        dom = doms[pv]
        if not (an.can_prove_equal(start, dom.min) and an.can_prove_equal(ext, dom.extent)):
            raise InlineError(
                f"cannot reverse-inline block {realize.block.name}: it reads {buf.name}[{start}:"
                f"{an.simplify(start + ext)}] in dimension {d}, but its producer {p_real.block.name} writes "
                f"{buf.name}[{dom.min}:{an.simplify(dom.min + dom.extent)}] there, so the producer's loops cannot "
                "run exactly the consumer's iterations", node=realize)


def _predicate_implied(realize: BlockRealize) -> bool:
    """True when the block predicate only keeps each binding inside its iteration domain
    (``i * 5 + j < 32`` for ``vj = i * 5 + j`` over ``[0, 32)``)."""
    from ..ir.arith import Analyzer
    from ..ir.expr import And, CmpOp, convert
    from ..ir.functor import collect_vars

    pred = realize.predicate
    if isinstance(pred, IntImm) and pred.value:
        return True
    an = Analyzer()
    for iv in realize.block.iter_vars:
        an.bind(iv.var, iv.dom)
    conds, todo = [], [pred]
    while todo:
        c = todo.pop()
        if isinstance(c, And):
            todo += [c.a, c.b]
        else:
            conds.append(c)
    ivs = {iv.var for iv in realize.block.iter_vars}
    for c in conds:
        if not isinstance(c, CmpOp):
            return False
        diff = c.a - c.b
        ok = False
        for iv, val in zip(realize.block.iter_vars, realize.iter_values):
            rest = an.simplify(diff - val)
            if any(v not in ivs for v in collect_vars(rest)):
                continue
            ok = an.can_prove(type(c)(iv.var + rest, convert(0, iv.var.dtype)))
            if ok:
                break
        if not ok:
            return False
    return True


class _SimplifyIndices(Mutator):
    def __init__(self, an):
        self.an = an

    def visit_BufferLoad(self, n: BufferLoad):
        n2 = self.generic_visit(n)
        return n2.replace(indices=tuple(self.an.simplify(i) for i in n2.indices))


def _simplified_store(st: BufferStore, blk: Block) -> BufferStore:
    from ..ir.arith import Analyzer

    an = Analyzer()
    for iv in blk.iter_vars:
        an.bind(iv.var, iv.dom)
    value = _SimplifyIndices(an).visit(st.value)
    return BufferStore(st.buffer, value, tuple(an.simplify(i) for i in st.indices))
