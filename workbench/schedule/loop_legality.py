"""Legality checks of the loop primitives (split, fuse, reorder, parallel, vectorize).

* :func:`check_plain_loop`: ``split`` and ``fuse`` only take serial loops without
  annotations (TVM refuses annotated and thread-bound loops too, but silently makes a
  parallel or vectorized loop serial; here that is refused as well, so no loop kind is lost).
* :func:`check_init_stays_first`: ``reorder`` must not move a loop that feeds both a
  spatial and a reduction axis of a block with an ``init`` (made by fusing a spatial with
  a reduction loop) past another loop that feeds a reduction axis: the iteration that
  runs the init would no longer come first, and the init would wipe partial sums.
* :func:`check_iterations_independent`: ``parallel`` and ``vectorize`` need iterations
  that neither read nor write what another iteration writes.
"""
from __future__ import annotations

from typing import Iterable

from ..ir.expr import PrimExpr, Range, Var, as_int
from ..ir.functor import collect_vars, substitute, uses_var
from ..ir.stmt import Block, BlockRealize, For, ForKind, IterType
from ..ir.arith import Analyzer
from ..ir.arith.linear import linear, to_expr
from .errors import DependenceError, ScheduleArgumentError
from .tree import all_realizes, child_blocks, stmt_children


# split / fuse ----------------------------------------------------------------------------
def check_plain_loop(f: For, what: str) -> None:
    """Refuse a loop that is not serial or carries annotations (the loops ``what`` makes could not keep them)."""
    name = f.loop_var.name
    if f.kind == ForKind.THREAD_BINDING:
        raise ScheduleArgumentError(
            f"cannot {what} loop {name}: it is bound to {f.thread}; {what} the loop first, then bind one of "
            "the new loops", node=f,
            detail="A thread binding cannot be shared by several loops, so the new loops could not keep it.")
    if f.kind != ForKind.SERIAL:
        raise ScheduleArgumentError(
            f"cannot {what} loop {name}: it is {f.kind.value}; {what} the serial loop first, then make one of the "
            f"new loops {f.kind.value}", node=f,
            detail="TVM silently turns the new loops serial; workbench refuses rather than drop the loop kind.")
    if f.annotations:
        keys = ", ".join(repr(k) for k in f.annotations)
        raise ScheduleArgumentError(
            f"cannot {what} loop {name}: it carries the annotations {keys}, which the new loops cannot keep; "
            "remove them with sch.unannotate first and annotate a new loop afterwards", node=f,
            detail="An annotation such as pragma_unroll means something for one loop of a given extent; "
                   "it is not clear which of the new loops should carry it (TVM refuses too).")


# reorder ---------------------------------------------------------------------------------
def _fed(realize: BlockRealize, loops: Iterable[For]) -> dict:
    """``{id(loop var): set of IterTypes}`` of the block's axes that each loop's variable appears in."""
    out = {}
    for f in loops:
        kinds = {iv.iter_type for iv, val in zip(realize.block.iter_vars, realize.iter_values)
                 if uses_var(val, f.loop_var)}
        out[id(f.loop_var)] = kinds
    return out


def check_init_stays_first(realizes: Iterable[BlockRealize], chain: list[For], new_chain: list[For],
                           what: str) -> None:
    """Refuse a reorder that changes the order of a mixed spatial/reduction loop and a reduction loop.

    A block's ``init`` runs at the iteration where every reduction axis is at its minimum;
    it must come before every update of the same output element. ``split``/``fuse`` keep the
    order of iterations; ``reorder`` keeps it for each element as long as no loop that feeds
    both a spatial and a reduction axis (from ``fuse`` of a spatial and a reduction loop)
    changes places with another loop that feeds a reduction axis of that block.
    """
    old_pos = {id(f.loop_var): k for k, f in enumerate(chain)}
    new_pos = {id(f.loop_var): k for k, f in enumerate(new_chain)}
    for realize in realizes:
        if realize.block.init is None:
            continue
        fed = _fed(realize, chain)
        mixed = [f for f in chain if {IterType.SPATIAL, IterType.REDUCE} <= fed[id(f.loop_var)]]
        reducing = [f for f in chain if IterType.REDUCE in fed[id(f.loop_var)]]
        for m in mixed:
            for r in reducing:
                a, b = id(m.loop_var), id(r.loop_var)
                if a != b and (old_pos[a] < old_pos[b]) != (new_pos[a] < new_pos[b]):
                    raise DependenceError(
                        f"cannot {what}: loop {m.loop_var.name} feeds both a spatial and a reduction axis of block "
                        f"{realize.block.name}, and moving it past loop {r.loop_var.name} would run the block's init "
                        "after updates of the same element (wiping the partial sums)", node=m,
                        detail="Such a loop comes from fusing a spatial loop with a reduction loop; reorder the "
                               "loops before fusing them, or fuse only loops of one kind.")


def _disjunctions(pred) -> list:
    """The ``or`` terms anywhere in a predicate (rolling_buffer's reuse conditions)."""
    from ..ir.expr import Or
    from ..ir.functor import post_order_visit

    found: list = []
    post_order_visit(pred, lambda n: found.append(n) if isinstance(n, Or) else None)
    return found


def check_reuse_order_kept(realizes: Iterable[BlockRealize], chain: list[For], new_chain: list[For],
                           what: str) -> None:
    """Refuse a reorder that moves a loop used in a disjunction of a block's predicate.

    ``rolling_buffer`` makes a producer skip what an earlier iteration computed,
    ``wb.where(yy < 1 or ax0 >= 1)``: the skipped elements are those still held from the
    previous iteration *in the current loop order*. Moved past another loop (the column tile
    loop outside the rolled row loop), the rows cycling through the rolled window overwrite
    them before they are read again. Predicates that only guard a domain are conjunctions
    and are not affected.
    """
    old_pos = {id(f.loop_var): k for k, f in enumerate(chain)}
    new_pos = {id(f.loop_var): k for k, f in enumerate(new_chain)}
    moved = {k for k in old_pos
             if any((old_pos[k] < old_pos[o]) != (new_pos[k] < new_pos[o]) for o in old_pos if o != k)}
    for realize in realizes:
        ors = _disjunctions(realize.predicate)
        for term in ors:
            hit = [v for v in collect_vars(term) if id(v) in moved]
            if hit:
                raise DependenceError(
                    f"cannot {what}: block {realize.block.name} runs only where `{term}`, which skips elements an "
                    f"earlier iteration computed (rolling_buffer's reuse) and holds only in the current order of "
                    f"loop {hit[0].name}", node=realize,
                    detail="Reorder the loops before rolling_buffer.")


def check_no_reuse_across(f: For, what: str) -> None:
    """Refuse to run the iterations of ``f`` at once when a block under it skips, by a disjunction in its
    predicate over ``f`` (``rolling_buffer``'s ``wb.where(xx_0 < 1 or ax1 >= 1)``), elements an earlier
    iteration of ``f`` computed for a reader also under ``f``: that reader would race with the iteration
    that writes them."""
    blocks = all_realizes(f.body)
    for realize in blocks:
        ors = _disjunctions(realize.predicate)
        if not any(uses_var(term, f.loop_var) for term in ors):
            continue
        written = {id(w.buffer) for w in realize.block.writes}
        readers = [r.block.name for r in blocks if r is not realize
                   and any(id(rd.buffer) in written for rd in r.block.reads)]
        if readers:
            raise DependenceError(
                f"cannot {what} loop {f.loop_var.name}: block {realize.block.name} skips elements an earlier "
                f"iteration of it computed (its predicate `{realize.predicate}`, from rolling_buffer), and block "
                f"{readers[0]} reads them, so its iterations depend on each other", node=f)


# parallel / vectorize ----------------------------------------------------------------------
def _loops_below(f: For) -> list[For]:
    """Every loop inside ``f`` that is not inside a nested block."""
    out: list[For] = []

    def walk(s):
        if isinstance(s, BlockRealize):
            return
        if isinstance(s, For):
            out.append(s)
        for c in stmt_children(s):
            walk(c)

    walk(f.body)
    return out


def _local_buffers(f: For) -> set[int]:
    """Buffers allocated by blocks inside ``f``: each iteration has its own."""
    return {id(b) for r in all_realizes(f.body) for b in r.block.alloc_buffers}


def _bounds_of(lin: dict, relax: dict, skip) -> tuple[int, int] | None:
    """Constant ``(lo, hi)`` of the part of ``lin`` over ``relax`` vars (others but ``skip`` must be absent)."""
    part = {v: c for v, c in lin.items() if v is None or v is not skip}
    if any(v is not None and relax.get(v) is None for v in part):
        return None  # a variable absent, or varying over a domain that is not constant
    an = Analyzer()
    for v in part:
        if v is not None:
            lo, hi = relax[v]
            an.bind(v, (lo, hi + 1))
    b = an.const_int_bound(to_expr(part))
    return b.min_value, b.max_value


def _separated(w_dims, x_dims, key: Var, relax: dict) -> bool:
    """Whether some dimension keeps the boxes apart whenever ``key`` differs between the two accesses.

    Each access is a list of ``(min, extent)`` per dimension. A dimension separates when
    both minimums are ``a * key + (terms the same on both sides) + (terms over relax)``
    with the same ``a != 0`` and each box is narrower than ``|a|`` beyond the other's start.
    """
    for (wmin, wext), (xmin, xext) in zip(w_dims, x_dims):
        lw, lx = linear(wmin), linear(xmin)
        we, xe = as_int(wext), as_int(xext)
        if lw is None or lx is None or we is None or xe is None:
            continue
        a = lw.get(key, 0)
        if a == 0 or lx.get(key, 0) != a:
            continue
        same = {v for v in set(lw) | set(lx) if v is not None and v is not key and v not in relax}
        if any(lw.get(v, 0) != lx.get(v, 0) for v in same):
            continue
        lw = {v: c for v, c in lw.items() if v not in same}
        lx = {v: c for v, c in lx.items() if v not in same}
        bw, bx = _bounds_of(lw, relax, key), _bounds_of(lx, relax, key)
        if bw is None or bx is None:
            continue
        w_lo, w_hi = bw[0], bw[1] + we - 1
        x_lo, x_hi = bx[0], bx[1] + xe - 1
        if w_hi - x_lo < abs(a) and x_hi - w_lo < abs(a):
            return True
    return False


def _dims(region) -> list[tuple[PrimExpr, PrimExpr]]:
    return [(r.min, r.extent) for r in region.region]


def _iter_domains(block: Block) -> dict:
    out = {}
    for iv in block.iter_vars:
        lo, ext = as_int(iv.dom.min), as_int(iv.dom.extent)
        out[iv.var] = (lo, lo + ext - 1) if lo is not None and ext is not None and ext > 0 else None
    return out


def _race(what: str, f: For, clause: str) -> DependenceError:
    return DependenceError(
        f"cannot {what} loop {f.loop_var.name}: {clause}, so its iterations are not independent", node=f,
        detail="Only loops whose iterations touch disjoint elements of every buffer they write can run "
               "their iterations at once; keep this loop serial or parallelize another one.")


def _one_to_one(w, x, keyed: list, relax: dict) -> bool:
    """Whether ``w`` and ``x`` access the same single element, through an index that is one-to-one in the
    varying axes it uses and uses every axis in ``keyed`` (``B_p[v1 // 32, v0, v1 % 32]``)."""
    from ..ir.arith import detect_iter_map
    from ..ir.structural import structural_equal

    if any(as_int(r.extent) != 1 for r in list(w.region) + list(x.region)):
        return False
    mins = [r.min for r in w.region]
    if not all(structural_equal(a, r.min) for a, r in zip(mins, x.region)):
        return False
    used = [v for v in collect_vars(mins) if v in relax]  # the others are the same in every iteration
    if any(relax[v] is None for v in used) or not all(any(v is u for u in used) for v in keyed):
        return False
    doms = {v: Range.from_begin_end(relax[v][0], relax[v][1] + 1) for v in used}
    return detect_iter_map(mins, doms, check_level="bijective") is not None


def _check_block_itself(realize: BlockRealize, f: For, inside: set, local: set, what: str) -> None:
    """Distinct iterations of ``f`` run the block at distinct points of the axes ``f`` feeds:
    those points must not touch what another one writes."""
    block = realize.block
    keyed = [iv.var for iv, val in zip(block.iter_vars, realize.iter_values) if uses_var(val, f.loop_var)]
    relax = _iter_domains(block)
    # axes bound only to loops outside f are the same in every iteration: they stay symbolic
    for iv, val in zip(block.iter_vars, realize.iter_values):
        if not any(id(v) in inside for v in collect_vars(val)):
            relax.pop(iv.var, None)
    if not keyed:
        return  # the same block points in every iteration: judged in terms of loops
    for w in block.writes:
        if id(w.buffer) in local:
            continue
        others = [r for r in list(block.writes) + list(block.reads) if r.buffer is w.buffer]
        for x in others:
            if _one_to_one(w, x, keyed, relax):
                continue
            for key in keyed:
                rest = {v: b for v, b in relax.items() if v is not key}
                if not _separated(_dims(w), _dims(x), key, rest):
                    raise _race(what, f, f"block {block.name} reads elements of buffer {w.buffer.name} that another "
                                         "iteration writes" if any(x is r for r in block.reads) else
                                f"block {block.name} writes the same elements of buffer {w.buffer.name} in several "
                                "iterations")


def _feeds(realize: BlockRealize, f: For) -> bool:
    return any(uses_var(val, f.loop_var) for val in realize.iter_values)


def _loop_level(realize: BlockRealize, region) -> list[tuple[PrimExpr, PrimExpr]]:
    vmap = {iv.var: val for iv, val in zip(realize.block.iter_vars, realize.iter_values)}
    return [(substitute(m, vmap), e) for m, e in _dims(region)]


def _covers(w_dims, x_dims, relax: dict) -> bool:
    """Whether the box ``x`` lies inside the box ``w`` in the same iteration (all dims linear)."""
    for (wmin, wext), (xmin, xext) in zip(w_dims, x_dims):
        lw, lx = linear(wmin), linear(xmin)
        we, xe = as_int(wext), as_int(xext)
        if lw is None or lx is None or we is None or xe is None:
            return False
        same = {v for v in set(lw) | set(lx) if v is not None and v not in relax}
        if any(lw.get(v, 0) != lx.get(v, 0) for v in same):
            return False
        bw = _bounds_of({v: c for v, c in lw.items() if v not in same}, relax, None)
        bx = _bounds_of({v: c for v, c in lx.items() if v not in same}, relax, None)
        if bw is None or bx is None or bx[0] < bw[0] or bx[1] + xe > bw[1] + we:
            return False
    return True


def _check_between_blocks(blocks: list[BlockRealize], f: For, relax: dict, local: set, what: str) -> None:
    """A block must not read or write what another block writes in another iteration of ``f``
    (nor read what it writes itself, when its axes do not depend on ``f``).

    Accesses are compared in terms of loops (``f``'s variable symbolic, loops inside ``f``
    relaxed); when an index is not linear in them, the pair is not judged. A read that the
    writer covers in the same iteration, earlier, is fine: other iterations only write the
    same values again (a producer computed at this loop with overlapping tiles).
    """
    for p_pos, p in enumerate(blocks):
        for w in p.block.writes:
            if id(w.buffer) in local:
                continue
            w_dims = _loop_level(p, w)
            for q_pos, q in enumerate(blocks):
                if q is p and _feeds(p, f):
                    continue  # judged by _check_block_itself
                writes = [] if q is p else [(False, r) for r in q.block.writes]
                for is_read, x in writes + [(True, r) for r in q.block.reads]:
                    if x.buffer is not w.buffer:
                        continue
                    x_dims = _loop_level(q, x)
                    if any(linear(m) is None for m, _ in w_dims + x_dims):
                        continue
                    if _separated(w_dims, x_dims, f.loop_var, relax):
                        continue
                    if is_read and p_pos < q_pos and _covers(w_dims, x_dims, relax):
                        continue
                    writer = "it" if q is p else f"block {p.block.name}"
                    raise _race(what, f, f"block {q.block.name} reads elements of buffer {w.buffer.name} that {writer} "
                                         "writes in another iteration" if is_read else
                                f"blocks {p.block.name} and {q.block.name} write the same elements of buffer "
                                f"{w.buffer.name} in different iterations")


def check_iterations_independent(f: For, what: str) -> None:
    """Refuse to run the iterations of ``f`` at once when one reads or writes what another writes.

    Checked per block (a block reading a buffer it writes at another index through an axis
    that ``f`` feeds, e.g. ``B[vi] = B[vi - 1] + A[vi]``) and between blocks inside ``f``.
    Buffers allocated inside ``f`` are private to an iteration.
    """
    below = _loops_below(f)
    inside = {id(f.loop_var)} | {id(g.loop_var) for g in below}
    local = _local_buffers(f)
    blocks = child_blocks(f)
    for realize in blocks:
        _check_block_itself(realize, f, inside, local, what)
    relax = {}
    for g in below:
        lo, ext = as_int(g.min), as_int(g.extent)
        relax[g.loop_var] = (lo, lo + ext - 1) if lo is not None and ext is not None and ext > 0 else None
    _check_between_blocks(blocks, f, relax, local, what)
