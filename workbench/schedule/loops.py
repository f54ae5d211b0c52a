"""Loop transformations: ``split``, ``fuse``, ``reorder``, ``add_unit_loop``, ``merge``,
``reorder_block_iter_var`` (``loop_partition`` lives in :mod:`.loop_partition`).

Each takes the schedule and handles and returns an :class:`Outcome` with the new
program; the ``Schedule`` methods of the same names record them.
"""
from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np

from ..ir.arith import Analyzer
from ..ir.arith.linear import linear
from ..ir.dtype import is_integer, max_value
from ..ir.expr import (
    BufferLoad,
    IntImm,
    PrimExpr,
    Var,
    as_int,
    convert,
    floordiv,
    floormod,
    logical_and,
)
from ..ir.functor import collect_vars, post_order_visit, substitute, uses_var
from ..ir.stmt import Block, BlockRealize, For, ForKind, IfThenElse, SeqStmt
from .errors import DependenceError, NotAChainError, ScheduleArgumentError
from .loop_legality import check_init_stays_first, check_plain_loop, check_reuse_order_kept
from .primitive import primitive
from .state import Outcome
from .trace import BlockRV, LoopRV
from .tree import child_blocks, fresh_name, rebuild


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

    >>> import workbench as wb
    >>> from workbench import te
    >>> A = te.placeholder((8,), "float32", name="A")
    >>> B = te.compute((8,), lambda i: A[i] * 2.0, name="B")
    >>> sch = wb.Schedule(wb.create_prim_func([A, B]))
    >>> print(sch.func.script())        # before
    @wb.prim_func
    def main(A: wb.Buffer((8,), "float32"), B: wb.Buffer((8,), "float32")):
        for i in wb.serial(8):
            with wb.block("B"):
                v_i, = wb.axis.remap("S", [i])
                wb.reads(A[v_i])
                wb.writes(B[v_i])
                B[v_i] = A[v_i] * 2.0
    >>> (i,) = sch.get_loops(sch.get_block("B"))
    >>> io, ii = sch.split(i, factors=[None, 4])
    >>> print(sch.func.script())        # after
    @wb.prim_func
    def main(A: wb.Buffer((8,), "float32"), B: wb.Buffer((8,), "float32")):
        for i_0, i_1 in wb.grid(2, 4):
            with wb.block("B"):
                v_i = wb.axis.spatial(8, i_0 * 4 + i_1)
                wb.reads(A[v_i])
                wb.writes(B[v_i])
                B[v_i] = A[v_i] * 2.0
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
        _check_bounds_load_nothing(f_loop, factors)
        cond = value < (f_loop.min + f_loop.extent if as_int(f_loop.min) != 0 else f_loop.extent)
        body = _add_predicate(body, cond)
    for v, f in reversed(list(zip(new_vars, facs))):
        body = For(v, IntImm(0, dtype), convert(f, dtype), ForKind.SERIAL, body)
    new_func = rebuild(sch.func, anc, f_loop, body)
    return Outcome(func=new_func, outputs=[("loop", v) for v in new_vars])


def _check_bounds_load_nothing(f_loop: For, factors) -> None:
    """Refuse an overshooting split when a loop (or ``if``) between ``f_loop`` and its blocks computes its bounds
    from a buffer load that uses ``f_loop``'s variable: the split's extra iterations are skipped only by the
    blocks' predicate, so those bounds would be computed there first, reading out of range."""
    var = f_loop.loop_var

    def loads_with_var(e) -> list:
        found = []
        post_order_visit(e, lambda n: found.append(n) if isinstance(n, BufferLoad)
                         and any(uses_var(i, lambda v: v is var) for i in n.indices) else None)
        return found

    stack = [f_loop.body]
    while stack:
        s = stack.pop()
        if isinstance(s, BlockRealize):
            continue
        if isinstance(s, SeqStmt):
            stack.extend(s.seq)
            continue
        exprs, what = (), ""
        if isinstance(s, For):
            exprs, what = (s.min, s.extent), f"loop {s.loop_var.name} inside computes its range"
            stack.append(s.body)
        elif isinstance(s, IfThenElse):
            exprs, what = (s.condition,), "an `if` inside computes its condition"
            stack.extend(x for x in (s.then_case, s.else_case) if x is not None)
        for e in exprs:
            hit = loads_with_var(e)
            if hit:
                raise ScheduleArgumentError(
                    f"cannot split loop {var.name} by {list(factors)!r}: the factors do not divide its extent "
                    f"{f_loop.extent}, and {what} from `{hit[0]}`, before any block's predicate could skip the "
                    f"extra iterations, so it would read {hit[0].buffer.name} out of range",
                    detail="Use factors whose product is the extent.", node=s)


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

    The loops must be serial and carry no annotations (fuse first, then parallelize,
    vectorize, bind or annotate the fused loop). Fusing a spatial with a reduction loop
    is allowed, but ``reorder`` then refuses to move the fused loop (or its split parts)
    past a reduction loop, which would run the block's init after updates.

    >>> import workbench as wb
    >>> from workbench import te
    >>> A = te.placeholder((4, 2), "float32", name="A")
    >>> B = te.compute((4, 2), lambda i, j: A[i, j] + 1.0, name="B")
    >>> sch = wb.Schedule(wb.create_prim_func([A, B]))
    >>> print(sch.func.script())        # before
    @wb.prim_func
    def main(A: wb.Buffer((4, 2), "float32"), B: wb.Buffer((4, 2), "float32")):
        for i, j in wb.grid(4, 2):
            with wb.block("B"):
                v_i, v_j = wb.axis.remap("SS", [i, j])
                wb.reads(A[v_i, v_j])
                wb.writes(B[v_i, v_j])
                B[v_i, v_j] = A[v_i, v_j] + 1.0
    >>> i, j = sch.get_loops(sch.get_block("B"))
    >>> fused = sch.fuse(i, j)
    >>> print(sch.func.script())        # after
    @wb.prim_func
    def main(A: wb.Buffer((4, 2), "float32"), B: wb.Buffer((4, 2), "float32")):
        for i_j_fused in wb.serial(8):
            with wb.block("B"):
                v_i = wb.axis.spatial(4, i_j_fused // 2)
                v_j = wb.axis.spatial(2, i_j_fused % 2)
                wb.reads(A[v_i, v_j])
                wb.writes(B[v_i, v_j])
                B[v_i, v_j] = A[v_i, v_j] + 1.0
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

    >>> import workbench as wb
    >>> from workbench import te
    >>> A = te.placeholder((4, 2), "float32", name="A")
    >>> B = te.compute((4, 2), lambda i, j: A[i, j] + 1.0, name="B")
    >>> sch = wb.Schedule(wb.create_prim_func([A, B]))
    >>> print(sch.func.script())        # before
    @wb.prim_func
    def main(A: wb.Buffer((4, 2), "float32"), B: wb.Buffer((4, 2), "float32")):
        for i, j in wb.grid(4, 2):
            with wb.block("B"):
                v_i, v_j = wb.axis.remap("SS", [i, j])
                wb.reads(A[v_i, v_j])
                wb.writes(B[v_i, v_j])
                B[v_i, v_j] = A[v_i, v_j] + 1.0
    >>> i, j = sch.get_loops(sch.get_block("B"))
    >>> sch.reorder(j, i)
    >>> print(sch.func.script())        # after
    @wb.prim_func
    def main(A: wb.Buffer((4, 2), "float32"), B: wb.Buffer((4, 2), "float32")):
        for j, i in wb.grid(2, 4):
            with wb.block("B"):
                v_i, v_j = wb.axis.remap("SS", [i, j])
                wb.reads(A[v_i, v_j])
                wb.writes(B[v_i, v_j])
                B[v_i, v_j] = A[v_i, v_j] + 1.0
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
    check_reuse_order_kept(all_realizes(top), chain, new_chain, f"reorder loops {names}")
    body = chain[-1].body
    for f in reversed(new_chain):
        body = f.replace(body=body)
    new_func = rebuild(sch.func, top_anc, top, body)
    return Outcome(func=new_func)


@primitive("loops")
def add_unit_loop(sch, block_or_loop) -> Outcome:
    """Add a loop of extent 1 directly above a block or loop; returns its handle.

    >>> import workbench as wb
    >>> from workbench import te
    >>> A = te.placeholder((8,), "float32", name="A")
    >>> B = te.compute((8,), lambda i: A[i] * 2.0, name="B")
    >>> sch = wb.Schedule(wb.create_prim_func([A, B]))
    >>> print(sch.func.script())        # before
    @wb.prim_func
    def main(A: wb.Buffer((8,), "float32"), B: wb.Buffer((8,), "float32")):
        for i in wb.serial(8):
            with wb.block("B"):
                v_i, = wb.axis.remap("S", [i])
                wb.reads(A[v_i])
                wb.writes(B[v_i])
                B[v_i] = A[v_i] * 2.0
    >>> u = sch.add_unit_loop(sch.get_block("B"))
    >>> print(sch.func.script())        # after
    @wb.prim_func
    def main(A: wb.Buffer((8,), "float32"), B: wb.Buffer((8,), "float32")):
        for i, u in wb.grid(8, 1):
            with wb.block("B"):
                v_i, = wb.axis.remap("S", [i])
                wb.reads(A[v_i])
                wb.writes(B[v_i])
                B[v_i] = A[v_i] * 2.0
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


# reorder_block_iter_var ------------------------------------------------------------------------
@primitive("loops")
def reorder_block_iter_var(sch, block: BlockRV, new_order: Sequence[int]) -> Outcome:
    """Permute the iteration variables of ``block``: ``new_order[k]`` is the old position of the new k-th one.

    Each variable keeps its binding, domain and kind, so the program computes the same;
    only the order in which the block lists its axes changes (what ``blockize``,
    ``tensorize`` and the block's signature see).

    >>> import workbench as wb
    >>> from workbench import te
    >>> A = te.placeholder((4, 4), "float32", name="A")
    >>> k = te.reduce_axis(4, name="k")
    >>> B = te.compute((4,), lambda i: te.sum(A[i, k], axis=k), name="B")
    >>> sch = wb.Schedule(wb.create_prim_func([A, B]))
    >>> print(sch.func.script())        # before
    @wb.prim_func
    def main(A: wb.Buffer((4, 4), "float32"), B: wb.Buffer((4,), "float32")):
        for i, k in wb.grid(4, 4):
            with wb.block("B"):
                v_i, v_k = wb.axis.remap("SR", [i, k])
                wb.reads(A[v_i, v_k])
                wb.writes(B[v_i])
                with wb.init():
                    B[v_i] = 0.0
                B[v_i] = B[v_i] + A[v_i, v_k]
    >>> sch.reorder_block_iter_var(sch.get_block("B"), [1, 0])
    >>> print(sch.func.script())        # after
    @wb.prim_func
    def main(A: wb.Buffer((4, 4), "float32"), B: wb.Buffer((4,), "float32")):
        for i, k in wb.grid(4, 4):
            with wb.block("B"):
                v_k, v_i = wb.axis.remap("RS", [k, i])
                wb.reads(A[v_i, v_k])
                wb.writes(B[v_i])
                with wb.init():
                    B[v_i] = 0.0
                B[v_i] = B[v_i] + A[v_i, v_k]
    """
    realize, anc = sch.block_of(block)
    blk = realize.block
    n = len(blk.iter_vars)
    if isinstance(new_order, (str, bytes)) or not hasattr(new_order, "__len__"):
        raise ScheduleArgumentError(f"cannot reorder the iteration variables of block {blk.name}: new_order must be a "
                                    f"list of positions such as {list(range(n))[::-1]}, got {new_order!r}", node=realize)
    order = list(new_order)
    if any(isinstance(k, (bool, np.bool_)) or not isinstance(k, numbers.Integral) for k in order) or \
            sorted(int(k) for k in order) != list(range(n)):
        raise ScheduleArgumentError(
            f"cannot reorder the iteration variables of block {blk.name}: new_order {order!r} is not a permutation of "
            f"0..{n - 1} (the block has {n} iteration variable{'s' if n != 1 else ''})", node=realize)
    order = [int(k) for k in order]
    if order == list(range(n)):
        return Outcome()
    new_block = blk.replace(iter_vars=tuple(blk.iter_vars[k] for k in order))
    new_realize = realize.replace(iter_values=tuple(realize.iter_values[k] for k in order), block=new_block)
    return Outcome(func=rebuild(sch.func, anc, realize, new_realize))


# merge -----------------------------------------------------------------------------------------
def _merge_nests(found: list[tuple[For, tuple]], names: str) -> tuple[SeqStmt, tuple, list[list[For]]]:
    """The loop nests to merge: for each given loop, the loops from the sequence that holds all the
    nests (below the loops' lowest common ancestor) down to it, outermost first; with that sequence
    and its ancestors."""
    chains = [anc + (f,) for f, anc in found]
    depth = 0
    while all(len(c) > depth for c in chains) and all(c[depth] is chains[0][depth] for c in chains):
        depth += 1
    for (f, _), c in zip(found, chains):
        if len(c) == depth:
            raise NotAChainError(f"cannot merge loops {names}: loop {f.loop_var.name} contains another of the loops; "
                                 "merge takes loops of separate nests side by side", node=f)
    parent = chains[0][depth - 1]
    if not isinstance(parent, SeqStmt):
        raise NotAChainError(f"cannot merge loops {names}: they are not side by side in one sequence of statements",
                             node=found[0][0])
    nests = [list(c[depth:]) for c in chains]
    for (f, _), nest in zip(found, nests):
        for s in nest:
            if isinstance(s, (Block, BlockRealize)):
                name = s.name if isinstance(s, Block) else s.block.name
                raise NotAChainError(f"cannot merge loops {names}: loop {f.loop_var.name} is inside block {name}, "
                                     "so the loops are not in one block scope", node=f)
    for (f, _), nest in zip(found, nests):
        for k, s in enumerate(nest):
            if k > 0 and isinstance(nest[k - 1], For) and not isinstance(s, For):
                held = "several statements" if isinstance(s, SeqStmt) else f"a {type(s).__name__}"
                raise NotAChainError(f"cannot merge loops {names}: the nest of loop {f.loop_var.name} is not perfect: "
                                     f"loop {nest[k - 1].loop_var.name} holds {held}, not just the next loop",
                                     node=nest[k - 1])
            if not isinstance(s, For):
                raise NotAChainError(f"cannot merge loops {names}: loop {f.loop_var.name} is not perfectly nested "
                                     f"below the statements that hold the other loops (a {type(s).__name__} lies "
                                     "between)", node=f)
    return parent, chains[0][:depth - 1], nests


def _check_mergeable_shapes(nests: list[list[For]], names: str) -> None:
    """Same depth, serial plain loops starting at 0, one dtype per level."""
    if len({len(n) for n in nests}) != 1:
        depths = ", ".join(f"{n[-1].loop_var.name}: {len(n)}" for n in nests)
        raise ScheduleArgumentError(f"cannot merge loops {names}: their nests below the common parent have different "
                                    f"depths ({depths}); give loops at the same depth", node=nests[0][-1])
    for nest in nests:
        for f in nest:
            check_plain_loop(f, "merge")
            if as_int(f.min) != 0:
                raise ScheduleArgumentError(f"cannot merge loop {f.loop_var.name}: it starts at {f.min}, and merge "
                                            "needs loops that start at 0", node=f)
    for level in range(len(nests[0])):
        dtypes = {n[level].loop_var.dtype for n in nests}
        if len(dtypes) != 1:
            raise ScheduleArgumentError(f"cannot merge loops {names}: the loops at depth {level} count in different "
                                        f"dtypes ({', '.join(sorted(dtypes))})", node=nests[0][level])


class _Access:
    """One buffer access of a block inside a nest, at loop level: ``dims`` are ``(min, extent)`` per
    dimension over the merged loops (None when unknown), ``relax`` the inclusive ranges of the loops
    between the merged loops and the block."""

    def __init__(self, block: str | None, buffer, is_write: bool, dims, relax):
        self.block, self.buffer, self.is_write, self.dims, self.relax = block, buffer, is_write, dims, relax


def _loose_accesses(stmt) -> list[tuple]:
    """``(buffer, is_write)`` of the loads and stores of ``stmt`` that are not inside a block."""
    from ..ir.functor import Visitor
    from ..ir.stmt import BufferStore

    out: list[tuple] = []

    class V(Visitor):
        def visit_BlockRealize(self, n):
            return None

        def visit_BufferStore(self, n: BufferStore):
            out.append((n.buffer, True))
            self.generic_visit(n)

        def visit_BufferLoad(self, n: BufferLoad):
            out.append((n.buffer, False))
            self.generic_visit(n)

    V().visit(stmt)
    return out


def _nest_accesses(sch, nest: list[For], vmap: dict) -> list[_Access]:
    from .legality import loops_between, relax_map

    inner = nest[-1]
    idx = sch.index()
    out = []
    for realize in child_blocks(inner):
        blk = realize.block
        relax = relax_map(loops_between(idx.blocks[blk.name][1], inner))
        bind = {iv.var: substitute(val, vmap) for iv, val in zip(blk.iter_vars, realize.iter_values)}
        bind.update(vmap)   # a block without iteration variables may use the loops directly
        for is_write, regions in ((False, blk.reads), (True, blk.writes)):
            for r in regions:
                dims = None if relax is None else [(substitute(g.min, bind), substitute(g.extent, bind))
                                                   for g in r.region]
                out.append(_Access(blk.name, r.buffer, is_write, dims, relax))
    out.extend(_Access(None, buf, w, None, None) for buf, w in _loose_accesses(inner.body))
    return out


def _side_bounds(lin: dict, relax: dict) -> tuple[int, int] | None:
    lo = hi = lin.get(None, 0)
    for v, c in lin.items():
        if v is None:
            continue
        r = relax.get(v)
        if r is None:
            return None
        lo += min(c * r[0], c * r[1])
        hi += max(c * r[0], c * r[1])
    return lo, hi


def _no_multiple_in(a: int, lo: int, hi: int, d_max: int | None) -> bool:
    """Whether no ``d`` in ``[1, d_max]`` has ``a * d`` in ``[lo, hi]``."""
    if d_max is not None and d_max < 1:
        return True
    if a == 0:
        return not lo <= 0 <= hi
    if a < 0:
        a, lo, hi = -a, -hi, -lo
    d_lo = max(1, -(-lo // a))
    d_hi = hi // a if d_max is None else min(hi // a, d_max)
    return d_lo > d_hi


def _dim_keeps_apart(p: tuple, q: tuple, p_relax: dict, q_relax: dict, merged: list[Var], ranges: list, k: int) -> bool:
    """Whether, in one dimension, the access ``p`` at an iteration later at merged level ``k`` (the same at
    the outer levels) never meets the access ``q``: ``p_relax``/``q_relax`` range over each side's own loops."""
    lp, lq = linear(p[0]), linear(q[0])
    ep, eq = as_int(p[1]), as_int(q[1])
    if lp is None or lq is None or ep is None or eq is None:
        return False
    key = merged[k]
    a = lp.get(key, 0)
    if lq.get(key, 0) != a:
        return False
    later = {merged[j]: ranges[j] for j in range(k + 1, len(merged))}
    if any(r is None for r in later.values()):
        return False
    p_side = {v: c for v, c in lp.items() if v is not key}
    q_side = {v: c for v, c in lq.items() if v is not key}
    for v in {v for v in list(p_side) + list(q_side) if v is not None}:
        if v in later or v in p_relax or v in q_relax:
            continue
        if p_side.get(v, 0) != q_side.get(v, 0):   # the same value on both sides: it must cancel
            return False
        p_side.pop(v, None)
        q_side.pop(v, None)
    bp = _side_bounds(p_side, {**p_relax, **later})
    bq = _side_bounds(q_side, {**q_relax, **later})
    if bp is None or bq is None:
        return False
    lo = bq[0] - bp[1] - ep + 1
    hi = bq[1] - bp[0] + eq - 1
    r = ranges[k]
    return _no_multiple_in(a, lo, hi, None if r is None else r[1] - r[0])


def _later_never_meets(p: _Access, q: _Access, merged: list[Var], ranges: list) -> bool:
    """Whether ``p`` in any later iteration of the merged loops never touches what ``q`` touches now."""
    if p.dims is None or q.dims is None:
        return False
    for k in range(len(merged)):
        if not any(_dim_keeps_apart(pd, qd, p.relax, q.relax, merged, ranges, k) for pd, qd in zip(p.dims, q.dims)):
            return False
    return True


def _merge_conflict(p: _Access, q: _Access, names: str) -> DependenceError:
    buf = p.buffer.name
    pb = f"block {p.block}" if p.block else "a statement"
    qb = f"block {q.block}" if q.block else "a statement"
    if p.is_write and q.is_write:
        clause = f"{pb} and {qb} write the same elements of buffer {buf} in different iterations"
    elif p.is_write:
        clause = f"{qb} reads elements of buffer {buf} that {pb} writes only in a later iteration"
    else:
        clause = f"{qb} writes elements of buffer {buf} that {pb} still reads in a later iteration"
    return DependenceError(
        f"cannot merge loops {names}: {clause}, so interleaving their iterations would change the result",
        detail="Merged loops run the nests' bodies one after the other in each iteration; a later nest may only "
               "use what an earlier one wrote in the same or an earlier iteration.")


def _check_merge_dependences(accesses: list[list[_Access]], merged: list[Var], ranges: list, names: str) -> None:
    for pi, p_list in enumerate(accesses):
        for q_list in accesses[pi + 1:]:
            for p in p_list:
                for q in q_list:
                    if p.buffer is q.buffer and (p.is_write or q.is_write) and \
                            not _later_never_meets(p, q, merged, ranges):
                        raise _merge_conflict(p, q, names)


def _touched(stmt) -> tuple[set[int], set[int]]:
    """Ids of the buffers ``stmt`` reads and writes (loads, stores and block regions)."""
    from ..ir.functor import post_order_visit

    reads: set[int] = set()
    writes: set[int] = set()

    def visit(n):
        from ..ir.expr import BufferLoad
        from ..ir.stmt import BufferStore

        if isinstance(n, BufferLoad):
            reads.add(id(n.buffer))
        elif isinstance(n, BufferStore):
            writes.add(id(n.buffer))
        elif isinstance(n, Block):
            reads.update(id(r.buffer) for r in n.reads)
            writes.update(id(r.buffer) for r in n.writes)

    post_order_visit(stmt, visit)
    return reads, writes


def _check_crossed(parent: SeqStmt, tops: list[For], names: str) -> None:
    """The merged loop goes where the last nest is: earlier nests move past the statements in between,
    which must not touch what they write nor write what they read."""
    pos = {id(s): k for k, s in enumerate(parent.seq)}
    last = max(pos[id(t)] for t in tops)
    top_ids = {id(t) for t in tops}
    for t in tops:
        t_reads, t_writes = _touched(t)
        for s in parent.seq[pos[id(t)] + 1:last]:
            if id(s) in top_ids:
                continue
            s_reads, s_writes = _touched(s)
            if t_writes & (s_reads | s_writes) or s_writes & t_reads:
                blocks = [r.block.name for r in ([s] if isinstance(s, BlockRealize) else child_blocks(s))]
                what = f"block {blocks[0]}" if blocks else "a statement"
                raise DependenceError(
                    f"cannot merge loops {names}: the merged loop takes the place of the last nest, and the nest of "
                    f"loop {t.loop_var.name} would move past {what}, which uses a buffer it writes or writes one it "
                    "reads", node=t)


@primitive("loops")
def merge(sch, *loops: LoopRV) -> Outcome:
    """Merge loops of separate nests into one loop whose body runs the nests' bodies in turn.

    Each given loop, with the loops above it up to the sequence that holds all the nests,
    forms a nest; the nests must have the same depth, the same extents level by level,
    loops starting at 0 that are serial without annotations, and each loop the only
    statement of the one above. The merged loops are named after the first given loop's
    nest (``i_m``) and put where the last nest was; the innermost one is returned.

    Merging interleaves the nests' iterations, so it is refused unless it is provably safe:
    a later nest may read what an earlier one writes only at elements written in the same
    or an earlier iteration (TVM merges without checking). The bodies keep their program
    order whatever the order of the arguments.

    >>> import workbench as wb
    >>> from workbench import te
    >>> A = te.placeholder((8,), "float32", name="A")
    >>> B = te.compute((8,), lambda i: A[i] * 2.0, name="B")
    >>> C = te.compute((8,), lambda i: B[i] + 1.0, name="C")
    >>> sch = wb.Schedule(wb.create_prim_func([A, C]))
    >>> print(sch.func.script())        # before
    @wb.prim_func
    def main(A: wb.Buffer((8,), "float32"), C: wb.Buffer((8,), "float32")):
        B = wb.alloc_buffer((8,), "float32")
        for i in wb.serial(8):
            with wb.block("B"):
                v_i, = wb.axis.remap("S", [i])
                wb.reads(A[v_i])
                wb.writes(B[v_i])
                B[v_i] = A[v_i] * 2.0
        for i in wb.serial(8):
            with wb.block("C"):
                v_i, = wb.axis.remap("S", [i])
                wb.reads(B[v_i])
                wb.writes(C[v_i])
                C[v_i] = B[v_i] + 1.0
    >>> m = sch.merge(sch.get_loops(sch.get_block("B"))[0], sch.get_loops(sch.get_block("C"))[0])
    >>> print(sch.func.script())        # after
    @wb.prim_func
    def main(A: wb.Buffer((8,), "float32"), C: wb.Buffer((8,), "float32")):
        B = wb.alloc_buffer((8,), "float32")
        for i_m in wb.serial(8):
            with wb.block("B"):
                v_i, = wb.axis.remap("S", [i_m])
                wb.reads(A[v_i])
                wb.writes(B[v_i])
                B[v_i] = A[v_i] * 2.0
            with wb.block("C"):
                v_i, = wb.axis.remap("S", [i_m])
                wb.reads(B[v_i])
                wb.writes(C[v_i])
                C[v_i] = B[v_i] + 1.0
    """
    if len(loops) == 1 and isinstance(loops[0], (list, tuple)):
        loops = tuple(loops[0])
    found = _chain(sch, loops, "merge")
    names = ", ".join(f.loop_var.name for f, _ in found)
    if len(found) < 2:
        raise ScheduleArgumentError(f"merge needs at least two loops, got {names}", node=found[0][0])
    parent, parent_anc, nests = _merge_nests(found, names)
    _check_mergeable_shapes(nests, names)
    taken = loop_names(sch.func)
    merged = []
    for f in nests[0]:
        merged.append(Var(fresh_name(f"{f.loop_var.name}_m", taken), f.loop_var.dtype))
        taken.add(merged[-1].name)
    vmaps = [{f.loop_var: m for f, m in zip(nest, merged)} for nest in nests]
    extents = [substitute(f.extent, vmaps[0]) for f in nests[0]]
    an = Analyzer()
    for nest, vmap in zip(nests[1:], vmaps[1:]):
        for level, (f, ext) in enumerate(zip(nest, extents)):
            if not an.can_prove_equal(substitute(f.extent, vmap), ext):
                raise ScheduleArgumentError(
                    f"cannot merge loops {names}: loop {f.loop_var.name} has extent {f.extent}, but loop "
                    f"{nests[0][level].loop_var.name} at the same depth has extent {nests[0][level].extent}", node=f)
    pos = {id(s): k for k, s in enumerate(parent.seq)}
    order = sorted(range(len(nests)), key=lambda n: pos[id(nests[n][0])])
    ranges = [(0, as_int(e) - 1) if as_int(e) is not None else None for e in extents]
    accesses = [_nest_accesses(sch, nests[n], vmaps[n]) for n in order]
    _check_merge_dependences(accesses, merged, ranges, names)
    _check_crossed(parent, [nests[n][0] for n in order], names)
    body = SeqStmt(tuple(substitute(nests[n][-1].body, vmaps[n]) for n in order))
    for m, ext in reversed(list(zip(merged, extents))):
        body = For(m, IntImm(0, m.dtype), ext, ForKind.SERIAL, body)
    tops = {id(nests[n][0]) for n in order}
    last = nests[order[-1]][0]
    items = [body if s is last else s for s in parent.seq if s is last or id(s) not in tops]
    new_func = rebuild(sch.func, parent_anc, parent, items)
    return Outcome(func=new_func, outputs=("loop", merged[-1]))
