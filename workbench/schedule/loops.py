"""Loop transformations: ``split``, ``fuse``, ``reorder``, ``add_unit_loop``.

Each takes the schedule and handles and returns an :class:`Outcome` with the new
program; the ``Schedule`` methods of the same names record them.
"""
from __future__ import annotations

import numbers
from typing import Sequence

import numpy as np

from ..ir.arith import Analyzer
from ..ir.dtype import is_integer, max_value
from ..ir.expr import IntImm, PrimExpr, Var, as_int, convert, floordiv, floormod, logical_and
from ..ir.functor import collect_vars, substitute
from ..ir.stmt import BlockRealize, For, ForKind, IfThenElse
from .errors import NotAChainError, ScheduleArgumentError
from .loop_legality import check_init_stays_first, check_plain_loop
from .state import Outcome
from .trace import BlockRV, LoopRV
from .tree import child_blocks, fresh_name, rebuild
from .primitive import primitive


def loop_names(func) -> set[str]:
    from .tree import Index

    return {v.name for v in Index(func).loops}


def _size_vars(func) -> set[int]:
    """Ids of the variables a symbolic factor may use: the function's scalar parameters and buffer sizes."""
    exprs = [p for p in func.params if p.dtype != "handle"]
    for buf in func.buffer_map.values():
        exprs.extend(buf.shape)
        exprs.extend(buf.strides)
        if buf.elem_offset is not None:
            exprs.append(buf.elem_offset)
    return {id(v) for v in collect_vars(exprs)}


def _factor(f, loop: For, k: int, size_vars: set[int]) -> int | PrimExpr | None:
    """One split factor checked: None, a positive int that the loop's dtype can count, or an integer
    expression of the function's size variables."""
    name, dtype = loop.loop_var.name, loop.loop_var.dtype
    if f is None:
        return None
    if isinstance(f, IntImm) and is_integer(f.dtype):
        f = f.value
    if isinstance(f, PrimExpr):
        return _symbolic_factor(f, loop, k, size_vars)
    if isinstance(f, (bool, np.bool_)) or not isinstance(f, numbers.Integral):
        raise ScheduleArgumentError(
            f"cannot split loop {name}: factor {k} is {f!r}, expected an int or None", node=loop)
    value = int(f)
    if value <= 0:
        raise ScheduleArgumentError(
            f"cannot split loop {name}: factor {k} is {value}, but factors must be positive "
            f"(use None for the one factor to infer)", node=loop)
    if value > max_value(dtype):
        raise ScheduleArgumentError(
            f"cannot split loop {name}: factor {k} is {value}, more than a loop of dtype {dtype} can count "
            f"(at most {max_value(dtype)})", node=loop)
    return value


def _symbolic_factor(f: PrimExpr, loop: For, k: int, size_vars: set[int]) -> PrimExpr:
    name, dtype = loop.loop_var.name, loop.loop_var.dtype
    if not is_integer(f.dtype):
        raise ScheduleArgumentError(
            f"cannot split loop {name}: factor {k} is `{f}` of dtype {f.dtype}, expected an int or None", node=loop)
    if f.dtype != dtype:
        raise ScheduleArgumentError(
            f"cannot split loop {name}: factor {k} `{f}` is {f.dtype}, but the loop counts in {dtype}", node=loop)
    free = [v.name for v in collect_vars(f) if id(v) not in size_vars]
    if free:
        raise ScheduleArgumentError(
            f"cannot split loop {name}: factor {k} `{f}` uses {', '.join(free)}, which is not a size variable of "
            "the function (a dimension of one of its buffers), so its value would be unknown when the function "
            "runs", node=loop)
    return f


def _infer_factors(facs: list, f_loop: For, factors) -> list:
    """The factors with the None one inferred; refuses factors that cannot cover the loop."""
    name, dtype = f_loop.loop_var.name, f_loop.loop_var.dtype
    extent = as_int(f_loop.extent)
    facs = list(facs)
    nones = [k for k, f in enumerate(facs) if f is None]
    known = [f for f in facs if f is not None]
    symbolic = any(not isinstance(f, int) for f in known)
    prod_known = 1
    for f in known:
        if isinstance(f, int):
            prod_known *= f
    if nones and extent is not None and not symbolic:
        facs[nones[0]] = -(-extent // prod_known)
    elif nones:
        p = convert(prod_known, dtype)
        for f in known:
            if not isinstance(f, int):
                p = p * f
        facs[nones[0]] = floordiv(f_loop.extent + (p - 1), p)
    if all(isinstance(f, int) for f in facs):
        total = 1
        for f in facs:
            total *= f
        if extent is not None and total < extent:
            raise ScheduleArgumentError(
                f"cannot split loop {name}: the factors {list(factors)!r} multiply to {total}, but the loop has "
                f"extent {extent}; use None for one factor to infer it", node=f_loop)
        if total > max_value(dtype):
            raise ScheduleArgumentError(
                f"cannot split loop {name}: the factors {list(factors)!r} multiply to {total}, more than a loop of "
                f"dtype {dtype} can count (at most {max_value(dtype)})", node=f_loop)
    if not nones and (extent is None or symbolic):
        product = convert(facs[0], dtype)
        for f in facs[1:]:
            product = product * f
        if not Analyzer().can_prove(product >= f_loop.extent):
            raise ScheduleArgumentError(
                f"cannot split loop {name}: the factors {list(factors)!r} multiply to `{product}`, which cannot be "
                f"shown to reach the loop's extent `{f_loop.extent}`; use None for one factor to infer it",
                node=f_loop)
    return facs


@primitive("loops")
def split(sch, loop: LoopRV, factors: Sequence) -> Outcome:
    """Split ``loop`` into nested loops with the given extents, outermost first.

    At most one factor may be ``None``: it is inferred as ``ceil(extent / product of
    the others)``. When the factors do not divide the extent, or multiply to more than
    it (as in TVM: ``[4, 4]`` for extent 10), the blocks inside get a predicate
    (``wb.where``) so the program still computes exactly the same elements. Factors that
    multiply to less than the extent are refused.

    A factor is a positive int (numpy ints and sampled values too) or an integer
    expression of the function's size variables (``n`` of a buffer shape). The loop must
    be serial and carry no annotations: split first, then parallelize, vectorize, bind
    or annotate one of the new loops.

    Before::

        for i in range(128):
            with wb.block("B"):
                vi = wb.axis.spatial(128, i)
                B[vi] = A[vi] * 2.0

    ``sch.split(i, factors=[None, 32])`` gives::

        for i_0, i_1 in wb.grid(4, 32):
            with wb.block("B"):
                vi = wb.axis.spatial(128, i_0 * 32 + i_1)
                B[vi] = A[vi] * 2.0

    Example (``sch`` a Schedule, ``i`` a loop handle)::

        io, ii = sch.split(i, factors=[None, 32])
    """
    f_loop, anc = sch.loop_of(loop)
    name = f_loop.loop_var.name
    if isinstance(factors, (numbers.Integral, type(None))) or not hasattr(factors, "__len__"):
        raise ScheduleArgumentError(f"cannot split loop {name}: factors must be a list such as [None, 32], "
                                    f"got {factors!r}", node=f_loop)
    check_plain_loop(f_loop, "split")
    size_vars = _size_vars(sch.func)
    facs = [_factor(f, f_loop, k, size_vars) for k, f in enumerate(factors)]
    if len(facs) < 2:
        raise ScheduleArgumentError(f"cannot split loop {name}: give at least two factors, got {list(factors)!r}",
                                    node=f_loop)
    if sum(f is None for f in facs) > 1:
        raise ScheduleArgumentError(f"cannot split loop {name}: at most one factor may be None, got {list(factors)!r}",
                                    node=f_loop)
    facs = _infer_factors(facs, f_loop, factors)
    extent = as_int(f_loop.extent)
    dtype = f_loop.loop_var.dtype
    taken = loop_names(sch.func)
    new_vars = []
    for k in range(len(facs)):
        nm = fresh_name(f"{name}_{k}", taken)
        taken.add(nm)
        new_vars.append(Var(nm, dtype))
    # i = i_0 * (f1 * f2) + i_1 * f2 + i_2 (+ min)
    value: PrimExpr | None = None
    for k, v in enumerate(new_vars):
        stride = 1
        sym = None
        for f in facs[k + 1:]:
            if isinstance(f, int):
                stride *= f
            else:
                sym = f if sym is None else sym * f
        term = v * stride if sym is None else v * (sym * stride if stride != 1 else sym)
        value = term if value is None else value + term
    if not (as_int(f_loop.min) == 0):
        value = f_loop.min + value
    body = substitute(f_loop.body, {f_loop.loop_var: value})
    total = 1
    exact = all(isinstance(f, int) for f in facs) and extent is not None
    if exact:
        for f in facs:
            total *= f
    if not exact or total != extent:
        cond = value < (f_loop.min + f_loop.extent if as_int(f_loop.min) != 0 else f_loop.extent)
        body = _add_predicate(body, cond)
    for v, f in reversed(list(zip(new_vars, facs))):
        body = For(v, IntImm(0, dtype), convert(f, dtype), ForKind.SERIAL, body)
    new_func = rebuild(sch.func, anc, f_loop, body)
    return Outcome(func=new_func, outputs=[("loop", v) for v in new_vars])


def _add_predicate(body, cond):
    realizes = child_blocks(body) if not isinstance(body, BlockRealize) else [body]
    if not realizes:
        return IfThenElse(cond, body)
    from .tree import replace_many

    mapping = {id(r): r.replace(predicate=logical_and(r.predicate, cond)) for r in realizes}

    class _F:  # replace_many works on functions; wrap the statement
        def __init__(self, body):
            self.body = body

        def replace(self, body):
            return _F(body)

    return replace_many(_F(body), mapping).body


def _chain(sch, loops: Sequence[LoopRV], what: str) -> list[tuple[For, tuple]]:
    if not loops:
        raise ScheduleArgumentError(f"{what} needs at least one loop")
    found = [sch.loop_of(l) for l in loops]
    seen = set()
    for f, _ in found:
        if id(f) in seen:
            raise ScheduleArgumentError(f"{what}: loop {f.loop_var.name} is given twice", node=f)
        seen.add(id(f))
    return found


@primitive("loops")
def fuse(sch, *loops: LoopRV) -> Outcome:
    """Fuse perfectly nested loops (outermost first) into one loop.

    Before::

        for i, j in wb.grid(128, 64):
            with wb.block("B"):
                vi, vj = wb.axis.remap("SS", [i, j])
                B[vi, vj] = A[vi, vj]

    ``sch.fuse(i, j)`` gives::

        for i_j_fused in range(8192):
            with wb.block("B"):
                vi = wb.axis.spatial(128, i_j_fused // 64)
                vj = wb.axis.spatial(64, i_j_fused % 64)
                B[vi, vj] = A[vi, vj]

    The loops must be serial and carry no annotations (fuse first, then parallelize,
    vectorize, bind or annotate the fused loop). Fusing a spatial with a reduction loop
    is allowed, but ``reorder`` then refuses to move the fused loop (or its split parts)
    past a reduction loop, which would run the block's init after updates.
    """
    if len(loops) == 1 and isinstance(loops[0], (list, tuple)):
        loops = tuple(loops[0])
    found = _chain(sch, loops, "fuse")
    if len(found) == 1:
        return Outcome(outputs=("loop", found[0][0].loop_var))
    fors = [f for f, _ in found]
    for f in fors:
        check_plain_loop(f, "fuse")
    for outer, inner in zip(fors, fors[1:]):
        if outer.body is not inner:
            raise NotAChainError(
                f"cannot fuse loops {', '.join(f.loop_var.name for f in fors)}: loop {inner.loop_var.name} is not "
                f"the only statement directly inside loop {outer.loop_var.name}; fuse needs perfectly nested loops "
                "given outermost first", node=inner)
    for f in fors:
        if any(v is g.loop_var for g in fors for v in collect_vars([f.min, f.extent])):
            raise NotAChainError(f"cannot fuse: the extent of loop {f.loop_var.name} depends on another fused loop",
                                 node=f)
    dtype = fors[0].loop_var.dtype
    name = fresh_name("_".join(f.loop_var.name for f in fors) + "_fused", loop_names(sch.func))
    fused = Var(name, dtype)
    extent = fors[0].extent
    for f in fors[1:]:
        extent = extent * f.extent
    vmap = {}
    n = len(fors)
    for k, f in enumerate(fors):
        stride = IntImm(1, dtype)
        for g in fors[k + 1:]:
            stride = stride * g.extent
        if k == 0:
            e = floordiv(fused, stride)
        elif k == n - 1:
            e = floormod(fused, f.extent)
        else:
            e = floordiv(floormod(fused, f.extent * stride), stride)
        if as_int(f.min) != 0:
            e = f.min + e
        vmap[f.loop_var] = e
    body = substitute(fors[-1].body, vmap)
    new = For(fused, IntImm(0, dtype), extent, ForKind.SERIAL, body)
    new_func = rebuild(sch.func, found[0][1], fors[0], new)
    return Outcome(func=new_func, outputs=("loop", fused))


@primitive("loops")
def reorder(sch, *loops: LoopRV) -> Outcome:
    """Reorder loops of one chain of nested loops into the order given.

    The loops must lie on one line of single-child nesting; loops of the chain not
    named keep their places. A loop that feeds both a spatial and a reduction axis of a
    block with an init (made by ``fuse`` of a spatial and a reduction loop) cannot move
    past another loop that feeds a reduction axis: the init would no longer run before
    every update of its element (TVM allows this and computes wrong sums).

    Before::

        for i, j, k in wb.grid(64, 64, 64):
            with wb.block("C"): ...

    ``sch.reorder(k, i)`` gives::

        for k, j, i in wb.grid(64, 64, 64):
            with wb.block("C"): ...
    """
    if len(loops) == 1 and isinstance(loops[0], (list, tuple)):
        loops = tuple(loops[0])
    found = _chain(sch, loops, "reorder")
    given = {id(f): f for f, _ in found}
    # the outermost named loop is the one whose ancestors contain no other named loop
    outer = [(f, anc) for f, anc in found if not any(id(a) in given for a in anc)]
    names = ", ".join(f.loop_var.name for f, _ in found)
    if len(outer) != 1:
        raise NotAChainError(f"cannot reorder loops {names}: they are not nested in one chain "
                             "(no one of them is around all the others)", node=outer[1][0] if len(outer) > 1 else None)
    top, top_anc = outer[0]
    chain: list[For] = []
    cur = top
    remaining = set(given)
    while True:
        chain.append(cur)
        remaining.discard(id(cur))
        if not remaining:
            break
        if not isinstance(cur.body, For):
            missing = [given[k].loop_var.name for k in remaining]
            raise NotAChainError(
                f"cannot reorder loops {names}: loop {missing[0]} is not on the single-branch chain of loops below "
                f"loop {top.loop_var.name} (loop {cur.loop_var.name} has a body that is not a single loop)",
                node=given[next(iter(remaining))])
        cur = cur.body
    order = [f for f, _ in found]
    positions = [k for k, f in enumerate(chain) if id(f) in given]
    new_chain = list(chain)
    for pos, f in zip(positions, order):
        new_chain[pos] = f
    chain_vars = {id(f.loop_var) for f in chain}
    for k, f in enumerate(new_chain):
        for v in collect_vars([f.min, f.extent]):
            if id(v) in chain_vars:
                outer_vars = {id(g.loop_var) for g in new_chain[:k]}
                if id(v) not in outer_vars:
                    raise NotAChainError(f"cannot reorder: the extent of loop {f.loop_var.name} depends on loop "
                                         f"{v.name}, which would no longer be outside it", node=f)
    from .legality import check_affine
    from .tree import all_realizes

    check_affine(all_realizes(top), f"reorder loops {names}")
    check_init_stays_first(all_realizes(top), chain, new_chain, f"reorder loops {names}")
    body = chain[-1].body
    for f in reversed(new_chain):
        body = f.replace(body=body)
    new_func = rebuild(sch.func, top_anc, top, body)
    return Outcome(func=new_func)


@primitive("loops")
def add_unit_loop(sch, block_or_loop) -> Outcome:
    """Add a loop of extent 1 directly above a block or loop; returns its handle.

    Before::

        with wb.block("B"): ...

    ``sch.add_unit_loop(b)`` gives::

        for u in range(1):
            with wb.block("B"): ...
    """
    if isinstance(block_or_loop, LoopRV):
        node, anc = sch.loop_of(block_or_loop)
    elif isinstance(block_or_loop, BlockRV):
        node, anc = sch.block_of(block_or_loop)
        if node.block.name == "root":
            raise ScheduleArgumentError("cannot add a loop above the root block")
    else:
        raise ScheduleArgumentError(f"add_unit_loop needs a block or loop handle, got {block_or_loop!r}")
    u = Var(fresh_name("u", loop_names(sch.func)))
    new = For(u, IntImm(0), IntImm(1), ForKind.SERIAL, node)
    return Outcome(func=rebuild(sch.func, anc, node, new), outputs=("loop", u))
